"""Signal receivers of the social core (connected in ``FeedmoodConfig.ready``)."""

from typing import Any

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from feedmood.models import Profile


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="feedmood.profile_for_new_user")
def create_profile_for_new_user(sender: Any, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    """Every user gets a Profile, whoever created it (sign-up, admin, createsuperuser)."""
    if created and not raw:
        Profile.objects.get_or_create(user=instance)
