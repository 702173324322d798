"""Consent to emotion analysis: the check every path that face-analyses an image runs.

No image of a user without ``Profile.emotion_consent`` is ever face-analysed: consent is checked when a
selfie or post image is queued (``emotion.submission``), when the task claims it and again, under the
profile's row lock, before readings are stored (``emotion.analysis``).
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from feedmood.models import Profile

CONSENT_ENDPOINT = "/api/me/"


class ConsentRequired(PermissionDenied):
    """The user has not opted in to emotion analysis (the API answers 403)."""

    def __init__(self) -> None:
        super().__init__(
            "Emotion analysis is off for your account. Opt in with "
            f'PATCH {CONSENT_ENDPOINT} {{"emotion_consent": true}} to analyse selfies; '
            "you can withdraw at any time and your readings are then erased."
        )


def consents(*, user_id: int, lock: bool = False) -> bool:
    """Whether the user opted in to emotion analysis (``lock``: hold their profile row until commit)."""
    profiles = Profile.objects.filter(user_id=user_id)
    if lock:
        profiles = profiles.select_for_update()
    return bool(profiles.values_list("emotion_consent", flat=True).first())
