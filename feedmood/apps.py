"""App config of the social core (label ``feedmood``)."""

from django.apps import AppConfig


class FeedmoodConfig(AppConfig):
    """Social core: profiles, posts, follows and reactions."""

    name = "feedmood"
    label = "feedmood"
    verbose_name = "FeedMood social core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from feedmood import lockout, receivers  # noqa: F401  (connects signal receivers)
