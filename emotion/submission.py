"""Submitting images for emotion analysis: selfies (upload) and post images (read in place).

Both check consent first and queue ``emotion.tasks.analyze_image`` on the ``fer`` queue after commit.
"""

from __future__ import annotations

from typing import IO

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from emotion.consent import ConsentRequired, consents
from emotion.models import ImageAnalysis
from emotion.privacy import delete_file_quietly
from feedmood.images import validate_image_upload
from feedmood.models import Post
from feedmood.services import profile_get_or_create
from feedmood.tasks_utils import enqueue_on_commit


def selfie_submit(*, user: AbstractBaseUser, uploaded_file: IO[bytes] | None) -> ImageAnalysis:
    """Accept a selfie for analysis: consent check, decode validation, private storage.

    Raises ``ConsentRequired`` (403) without consent and ``ValidationError``
    (400) for anything that is not an acceptable image.  The analysis is
    queued on the ``fer`` queue once the transaction commits.
    """
    if not profile_get_or_create(user=user).emotion_consent:
        raise ConsentRequired()
    try:
        validated = validate_image_upload(uploaded_file, owner_id=user.pk)
    except ValidationError as exc:
        raise ValidationError({"image": exc.messages}) from None

    analysis = ImageAnalysis(
        owner=user,
        source=ImageAnalysis.Source.SELFIE,
        image_width=validated.info.width,
        image_height=validated.info.height,
    )
    analysis.image.save(validated.filename, ContentFile(validated.data), save=False)
    stored_name = analysis.image.name
    try:
        with transaction.atomic():
            analysis.save()
            _enqueue(analysis)
    except Exception:
        delete_file_quietly(stored_name)  # no row, so no orphan file either
        raise
    return analysis


def post_image_submit(*, post: Post) -> ImageAnalysis | None:
    """Queue an analysis of a post's image (read in place, never copied).

    ``None`` if the post has no image or its author has not opted in to emotion analysis.
    """
    if not post.image or not consents(user_id=post.author_id):
        return None
    with transaction.atomic():
        analysis = ImageAnalysis.objects.create(
            owner_id=post.author_id,
            source=ImageAnalysis.Source.POST,
            post=post,
            image_width=post.image_width,
            image_height=post.image_height,
        )
        _enqueue(analysis)
    return analysis


def _enqueue(analysis: ImageAnalysis) -> None:
    from emotion.tasks import analyze_image  # tasks import the services: resolved at call time

    enqueue_on_commit(analyze_image, analysis.pk)
