"""Recommender app: mood-aware ranking of the home feed."""

from django.apps import AppConfig


class RecommenderConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "recommender"
    verbose_name = "FeedMood recommender"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_delete, post_save

        from emotion import signals as emotion_signals
        from feedmood import signals as social_signals
        from feedmood.models import Follow, Post, Profile, Reaction
        from recommender import receivers

        emotion_signals.analysis_finished.connect(
            receivers.on_analysis_finished, dispatch_uid="recommender.analysis_finished"
        )
        emotion_signals.model_activated.connect(
            receivers.on_model_activated, dispatch_uid="recommender.model_activated"
        )
        emotion_signals.readings_erased.connect(
            receivers.on_readings_erased, dispatch_uid="recommender.readings_erased"
        )
        social_signals.consent_withdrawn.connect(
            receivers.on_consent_withdrawn, dispatch_uid="recommender.consent_withdrawn"
        )
        social_signals.erasure_due.connect(receivers.on_erasure_due, dispatch_uid="recommender.erasure_due")
        post_delete.connect(receivers.on_user_deleted, sender=get_user_model(), dispatch_uid="recommender.user_deleted")
        post_save.connect(receivers.on_profile_saved, sender=Profile, dispatch_uid="recommender.profile_saved")
        social_signals.post_created.connect(receivers.on_post_created, dispatch_uid="recommender.post_created")
        post_save.connect(receivers.on_follow_changed, sender=Follow, dispatch_uid="recommender.follow_saved")
        post_delete.connect(receivers.on_follow_changed, sender=Follow, dispatch_uid="recommender.follow_deleted")
        post_delete.connect(receivers.on_post_deleted, sender=Post, dispatch_uid="recommender.post_deleted")
        post_save.connect(receivers.on_reaction_changed, sender=Reaction, dispatch_uid="recommender.reaction_saved")
        post_delete.connect(receivers.on_reaction_changed, sender=Reaction, dispatch_uid="recommender.reaction_deleted")
