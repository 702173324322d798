"""Account lifecycle (writes): API tokens, password change and reset, account deletion.

- a token's key is shown once; only its SHA-256 is stored, with an expiry
  (``FEEDMOOD_TOKEN_TTL_HOURS``); every sign-in issues a new one and a user keeps
  at most ``FEEDMOOD_TOKENS_PER_USER`` (the oldest go);
- logout revokes the token used; a password change or reset revokes them all;
- deleting the account (re-authenticated with the password) deactivates it and
  records a durable ``account`` erasure in the same transaction: every row and
  file of the person goes right after commit, or by the retried task and sweep.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from feedmood.authentication import key_digest
from feedmood.erasure import erasure_record
from feedmood.models import ApiToken, ErasureRequest, Profile

logger = logging.getLogger(__name__)
User = get_user_model()

RESET_CONFIRM_ENDPOINT = "/api/auth/password-reset/confirm/"


# --- Tokens ---------------------------------------------------------------------------------------


@transaction.atomic
def token_issue(*, user: AbstractBaseUser) -> str:
    """A new API token for ``user``; returns the key (shown once, never stored)."""
    key = secrets.token_urlsafe(32)
    now = timezone.now()
    ApiToken.objects.create(
        user=user, digest=key_digest(key), expires_at=now + timedelta(hours=settings.FEEDMOOD_TOKEN_TTL_HOURS)
    )
    live = ApiToken.objects.filter(user=user).order_by("-created_at", "-pk")
    ApiToken.objects.filter(user=user, expires_at__lte=now).delete()
    stale = list(live.values_list("pk", flat=True)[settings.FEEDMOOD_TOKENS_PER_USER :])
    ApiToken.objects.filter(pk__in=stale).delete()
    return key


def token_revoke(*, token: ApiToken) -> None:
    """Logout: this token stops working at once."""
    ApiToken.objects.filter(pk=token.pk).delete()


def tokens_revoke_all(*, user: AbstractBaseUser) -> int:
    """Every token of ``user`` stops working; returns how many there were."""
    return ApiToken.objects.filter(user=user).delete()[0]


# --- Passwords -------------------------------------------------------------------------------------


def _set_new_password(user: AbstractBaseUser, new_password: str, *, field: str = "new_password") -> None:
    try:
        validate_password(new_password, user=user)
    except ValidationError as exc:
        raise ValidationError({field: list(exc.messages)}) from None
    user.set_password(new_password)
    user.save(update_fields=["password"])
    tokens_revoke_all(user=user)


@transaction.atomic
def password_change(*, user: AbstractBaseUser, old_password: str, new_password: str) -> str:
    """Change the password (the current one is required); revokes every token, returns a new key."""
    if not user.check_password(old_password):
        raise ValidationError({"old_password": ["Your current password is not correct."]})
    _set_new_password(user, new_password)
    return token_issue(user=user)


def password_reset_request(*, email: str) -> int:
    """Mail a reset token to every active account with ``email``; returns how many (never shown to the caller)."""
    email = (email or "").strip()
    sent = 0
    for user in User.objects.filter(email__iexact=email, is_active=True) if email else []:
        if not user.has_usable_password():
            continue
        uid = urlsafe_base64_encode(force_bytes(user.pk))
        token = default_token_generator.make_token(user)
        send_mail(
            subject="Reset your FeedMood password",
            message=(
                f"Someone asked to reset the password of the FeedMood account {user.get_username()!r}.\n"
                f"If it was you, POST {RESET_CONFIRM_ENDPOINT} with\n"
                f'  {{"uid": "{uid}", "token": "{token}", "new_password": "..."}}\n'
                f"within {settings.PASSWORD_RESET_TIMEOUT // 60} minutes. Otherwise ignore this mail.\n"
            ),
            from_email=None,
            recipient_list=[user.email],
        )
        sent += 1
    return sent


@transaction.atomic
def password_reset_confirm(*, uid: str, token: str, new_password: str) -> AbstractBaseUser:
    """Set a new password with a mailed reset token; revokes every API token of the account."""
    invalid = ValidationError({"token": ["This reset link is invalid or has expired: ask for a new one."]})
    try:
        user = User.objects.select_for_update().get(pk=int(force_str(urlsafe_base64_decode(uid))), is_active=True)
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        raise invalid from None
    if not default_token_generator.check_token(user, token):
        raise invalid
    _set_new_password(user, new_password)  # the new hash also invalidates this reset token
    return user


# --- Deletion -------------------------------------------------------------------------------------


@transaction.atomic
def account_delete(*, user: AbstractBaseUser, password: str) -> ErasureRequest:
    """Delete the account, re-authenticated with ``password``: everything of the person goes.

    In this transaction the account is closed (inactive, no password, no token,
    no consent, so no analysis of theirs can run) and the durable erasure is
    recorded; the rows and files go right after commit (retried and swept if not).
    """
    if not password or not user.check_password(password):
        raise ValidationError({"password": ["Your password is not correct: the account was not deleted."]})
    user = User.objects.select_for_update().get(pk=user.pk)
    user.is_active = False
    user.set_unusable_password()
    user.save(update_fields=["is_active", "password"])
    tokens_revoke_all(user=user)
    Profile.objects.filter(user=user).update(emotion_consent=False, emotion_consent_at=None)
    return erasure_record(user=user, scope=ErasureRequest.Scope.ACCOUNT)
