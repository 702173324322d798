"""Emotion app: facial-emotion recognition of selfies and post images."""

from django.apps import AppConfig


class EmotionConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "emotion"
    verbose_name = "Emotion analysis"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from emotion import receivers
        from emotion.models import ImageAnalysis
        from feedmood import signals

        signals.post_created.connect(receivers.on_post_created, dispatch_uid="emotion.post_created")
        signals.erasure_due.connect(receivers.on_erasure_due, dispatch_uid="emotion.erasure_due")
        signals.export_requested.connect(receivers.on_export_requested, dispatch_uid="emotion.export_requested")
        post_delete.connect(
            receivers.on_analysis_deleted, sender=ImageAnalysis, dispatch_uid="emotion.analysis_deleted"
        )
