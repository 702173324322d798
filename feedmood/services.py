"""Write operations of the social core (HackSoft style: all writes go through here).

Services raise ``django.core.exceptions.ValidationError`` / ``PermissionDenied``;
the API's exception handler turns them into 400 / 403 JSON responses.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from feedmood import signals
from feedmood.accounts import token_issue
from feedmood.erasure import erasure_record
from feedmood.images import validate_image_upload
from feedmood.models import POST_TEXT_MAX_LENGTH, ErasureRequest, Follow, Post, Profile, Reaction
from feedmood.tasks_utils import run_on_commit

logger = logging.getLogger(__name__)
User = get_user_model()

PROFILE_EDITABLE_FIELDS = (
    "display_name",
    "emotion_consent",
    "mood_policy",
    "mood_strength",
    "mood_half_life_hours",
)


# --- Users and profiles ---------------------------------------------------------


def profile_get_or_create(*, user: AbstractBaseUser) -> Profile:
    """Return the user's profile, creating it if a legacy user has none."""
    try:
        return user.profile
    except Profile.DoesNotExist:
        profile, _ = Profile.objects.get_or_create(user=user)
        return profile


@transaction.atomic
def user_signup(
    *, username: str, password: str, display_name: str = "", email: str = ""
) -> tuple[AbstractBaseUser, str]:
    """Create a user (password checked by Django's validators), its profile and an API token; returns the key.

    ``email`` is optional (it is where password-reset mail goes).
    """
    username = (username or "").strip()
    email = (email or "").strip()
    user = User(username=username, email=email)
    errors: dict[str, list[str]] = {}
    try:
        user.full_clean(exclude=["password"], validate_unique=False)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if username and User.objects.filter(username__iexact=username).exists():
        errors.setdefault("username", []).append("A user with that username already exists.")
    if email and User.objects.filter(email__iexact=email).exists():
        errors.setdefault("email", []).append("An account with that email already exists.")
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        errors["password"] = list(exc.messages)
    if display_name and len(display_name) > Profile._meta.get_field("display_name").max_length:
        errors["display_name"] = ["Ensure this field has no more than 80 characters."]
    if errors:
        raise ValidationError(errors)

    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # lost a race with a concurrent sign-up of the same name
        raise ValidationError({"username": ["A user with that username already exists."]}) from None
    profile = profile_get_or_create(user=user)
    if display_name:
        profile.display_name = display_name
        profile.save(update_fields=["display_name", "updated_at"])
    return user, token_issue(user=user)


@transaction.atomic
def profile_update(*, user: AbstractBaseUser, data: dict[str, Any]) -> Profile:
    """Update the editable profile fields present in ``data``.

    Consent transitions stamp ``emotion_consent_at`` and send
    ``consent_granted`` / ``consent_withdrawn`` after commit; a withdrawal records
    the durable erasure of the user's emotion data in the same transaction.
    """
    unknown = set(data) - set(PROFILE_EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(unknown)})
    profile = Profile.objects.select_for_update().get(pk=profile_get_or_create(user=user).pk)
    was_consenting = profile.emotion_consent
    changed: list[str] = []
    for name, value in data.items():
        if getattr(profile, name) != value:
            setattr(profile, name, value)
            changed.append(name)
    if not changed:
        return profile

    if "emotion_consent" in changed:
        profile.emotion_consent_at = timezone.now() if profile.emotion_consent else None
        changed.append("emotion_consent_at")
    profile.full_clean(exclude=["user"])
    profile.save(update_fields=[*changed, "updated_at"])

    if was_consenting and not profile.emotion_consent:
        erasure_record(user=user, scope=ErasureRequest.Scope.EMOTION)
        run_on_commit(lambda: signals.consent_withdrawn.send(sender=Profile, user=user, profile=profile))
    elif not was_consenting and profile.emotion_consent:
        run_on_commit(lambda: signals.consent_granted.send(sender=Profile, user=user, profile=profile))
    return profile


# --- Posts ------------------------------------------------------------------------


def post_create(*, author: AbstractBaseUser, text: str = "", image: Any = None) -> Post:
    """Create a post with text and/or an image (an uploaded file, validated by decoding).

    Sends ``signals.post_created(sender=Post, post=post)`` after commit.
    """
    text = text or ""
    if len(text) > POST_TEXT_MAX_LENGTH:
        raise ValidationError({"text": [f"Ensure this field has no more than {POST_TEXT_MAX_LENGTH} characters."]})
    if not text.strip() and image is None:
        raise ValidationError({"non_field_errors": ["A post needs text, an image, or both."]})
    validated = None
    if image is not None:
        try:
            validated = validate_image_upload(image, owner_id=author.pk)
        except ValidationError as exc:
            raise ValidationError({"image": exc.messages}) from None

    post = Post(author=author, text=text)
    stored_name = ""
    if validated is not None:
        post.image_width, post.image_height = validated.info.width, validated.info.height
        post.image.save(validated.filename, ContentFile(validated.data), save=False)
        stored_name = post.image.name
    try:
        with transaction.atomic():
            post.save()
            run_on_commit(lambda: signals.post_created.send(sender=Post, post=post))
    except Exception:
        # The row was not written: do not leave an orphan file behind.
        if stored_name:
            _delete_file_quietly(post.image.storage, stored_name)
        raise
    return post


@transaction.atomic
def post_delete(*, post: Post, user: AbstractBaseUser) -> None:
    """Delete a post; only its author may. The image file is removed after commit."""
    if post.author_id != user.pk:
        raise PermissionDenied("You can only delete your own posts.")
    image_name = post.image.name if post.image else ""
    storage = post.image.storage
    post.delete()
    if image_name:
        run_on_commit(lambda: _delete_file_quietly(storage, image_name))


def _delete_file_quietly(storage: Any, name: str) -> None:
    try:
        storage.delete(name)
    except OSError:
        logger.warning("Could not delete media file %s", name, exc_info=True)


def post_recount_likes(*, post_id: int) -> int | None:
    """Recompute ``like_count`` from the reactions table; returns it (None if no such post)."""
    count = Reaction.objects.filter(post_id=post_id, kind=Reaction.Kind.LIKE).count()
    updated = Post.objects.filter(pk=post_id).update(like_count=count)
    return count if updated else None


# --- Follows -----------------------------------------------------------------------


def follow(*, follower: AbstractBaseUser, followee: AbstractBaseUser) -> tuple[Follow, bool]:
    """Follow ``followee`` (idempotent). Returns ``(follow, created)``."""
    if follower.pk == followee.pk:
        raise ValidationError("You cannot follow yourself.", code="self_follow")
    try:
        with transaction.atomic():
            return Follow.objects.get_or_create(follower=follower, followee=followee)
    except IntegrityError:  # concurrent duplicate
        return Follow.objects.get(follower=follower, followee=followee), False


def unfollow(*, follower: AbstractBaseUser, followee: AbstractBaseUser) -> bool:
    """Stop following (idempotent). Returns whether a follow was removed."""
    deleted, _ = Follow.objects.filter(follower=follower, followee=followee).delete()
    return deleted > 0


# --- Reactions -----------------------------------------------------------------------


@transaction.atomic
def like(*, user: AbstractBaseUser, post: Post) -> tuple[bool, int]:
    """Like a post (idempotent). Returns ``(created, like_count)``."""
    try:
        with transaction.atomic():
            _, created = Reaction.objects.get_or_create(user=user, post=post, kind=Reaction.Kind.LIKE)
    except IntegrityError:  # concurrent duplicate
        created = False
    if created:
        Post.objects.filter(pk=post.pk).update(like_count=F("like_count") + 1)
    return created, _like_count(post)


@transaction.atomic
def unlike(*, user: AbstractBaseUser, post: Post) -> tuple[bool, int]:
    """Remove a like (idempotent). Returns ``(removed, like_count)``."""
    deleted, _ = Reaction.objects.filter(user=user, post=post, kind=Reaction.Kind.LIKE).delete()
    if deleted:
        Post.objects.filter(pk=post.pk, like_count__gte=deleted).update(like_count=F("like_count") - deleted)
    return deleted > 0, _like_count(post)


def _like_count(post: Post) -> int:
    count = Post.objects.filter(pk=post.pk).values_list("like_count", flat=True).first() or 0
    post.like_count = count
    return count
