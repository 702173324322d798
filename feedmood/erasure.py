"""Durable erasure: recorded with the change that asks for it, finished whatever fails in between.

``erasure_record`` writes an :class:`ErasureRequest` inside the caller's
transaction (consent withdrawal, "erase my readings", account deletion), so the
promise commits or rolls back with the change itself.  After commit it is run
at once; if that fails (database error, lock timeout, a file that cannot be
deleted) the retried task ``feedmood.tasks.erase_user_data`` and then the
periodic ``sweep_erasures`` (beat) finish it.  A run has two steps:

1. rows, in one transaction: ``signals.erasure_due`` asks every app to delete
   its rows of the user and name its files; an ``account`` request then deletes
   the user (everything cascades).  Any error rolls the step back;
2. files: each listed file is deleted; those that fail stay listed for the next run.

The sweep also deletes media files that no row references (a crash between
writing a file and its row, a lost on-commit delete), once they are older
than ``FEEDMOOD_ORPHAN_FILE_GRACE_SECONDS``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import DatabaseError, connection, transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from feedmood import signals
from feedmood.models import ErasureRequest, Post, Reaction
from feedmood.tasks_utils import run_on_commit

logger = logging.getLogger(__name__)

#: Media directory -> (app label, model, file field) of the rows that own its files.
MEDIA_OWNERS: dict[str, tuple[str, str, str]] = {
    "posts": ("feedmood", "Post", "image"),
    "selfies": ("emotion", "ImageAnalysis", "image"),
}


def erasure_record(*, user: AbstractBaseUser, scope: str) -> ErasureRequest:
    """Record an erasure of ``user``'s data in the current transaction; it runs after commit."""
    request = ErasureRequest.objects.create(user_id=user.pk, scope=scope)
    run_on_commit(lambda: erasure_start(request_id=request.pk))
    return request


def erasure_start(*, request_id: int) -> bool:
    """Run the request now; if it cannot finish, hand it to the retried task (the sweep is the last resort)."""
    if erasure_run(request_id=request_id):
        return True
    from feedmood.tasks import erase_user_data

    erase_user_data.apply_async(args=[request_id], countdown=settings.FEEDMOOD_ERASURE_RETRY_SECONDS)
    return False


def erasure_run(*, request_id: int) -> bool:
    """Advance one request as far as possible; True when it is complete (or someone else holds it)."""
    try:
        with transaction.atomic():
            request = (
                ErasureRequest.objects.select_for_update(skip_locked=True)
                .filter(pk=request_id, completed_at__isnull=True)
                .first()
            )
            if request is None:
                return True  # done already, or being run right now by another worker
            if request.rows_erased_at is None:
                _erase_rows(request)
    except DatabaseError as exc:
        _record_failure(request_id, f"rows: {type(exc).__name__}: {exc}")
        return False
    return _erase_files(request)


def _erase_rows(request: ErasureRequest) -> None:
    """Step 1 (inside the request's transaction): every app's rows, then the account itself."""
    with connection.cursor() as cursor:  # a blocked erasure fails and is retried rather than hanging
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true)", [f"{int(settings.FEEDMOOD_ERASURE_LOCK_TIMEOUT_MS)}ms"]
        )
    files = set(request.files)
    if request.scope == ErasureRequest.Scope.ACCOUNT:
        files.update(Post.objects.filter(author_id=request.user_id).exclude(image="").values_list("image", flat=True))
    for _, names in signals.erasure_due.send(sender=ErasureRequest, user_id=request.user_id, scope=request.scope):
        files.update(names or ())
    if request.scope == ErasureRequest.Scope.ACCOUNT:
        liked = list(Reaction.objects.filter(user_id=request.user_id).values_list("post_id", flat=True))
        get_user_model().objects.filter(pk=request.user_id).delete()
        _recount_likes(liked)
        user_id = request.user_id
        run_on_commit(lambda: signals.account_erased.send(sender=ErasureRequest, user_id=user_id))
    request.files = sorted(files)
    request.rows_erased_at = timezone.now()
    request.attempts += 1
    request.save(update_fields=["files", "rows_erased_at", "attempts"])


def _recount_likes(post_ids: list[int]) -> None:
    """The posts the erased account liked lose its likes from their counts too."""
    count = Reaction.objects.filter(post_id=OuterRef("pk"), kind=Reaction.Kind.LIKE).order_by()
    count = count.values("post_id").annotate(n=Count("pk")).values("n")
    Post.objects.filter(pk__in=post_ids).update(like_count=Coalesce(Subquery(count), 0))


def _erase_files(request: ErasureRequest) -> bool:
    """Step 2: delete the listed files; those that fail stay listed. True when none is left."""
    left, errors = [], []
    for name in request.files:
        try:
            default_storage.delete(name)
        except OSError as exc:
            left.append(name)
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    done = not left
    try:
        ErasureRequest.objects.filter(pk=request.pk).update(
            files=left,
            last_error="; ".join(errors)[:2000],
            completed_at=timezone.now() if done else None,
        )
    except DatabaseError:
        logger.warning("Could not record the progress of erasure %s", request.pk, exc_info=True)
        return False
    if not done:
        logger.warning("Erasure %s left %d file(s) for a later run: %s", request.pk, len(left), errors[:3])
    return done


def _record_failure(request_id: int, error: str) -> None:
    logger.warning("Erasure %s failed, a later run will finish it: %s", request_id, error)
    try:
        ErasureRequest.objects.filter(pk=request_id).update(last_error=error[:2000])
    except DatabaseError:
        logger.warning("Could not record the failure of erasure %s", request_id, exc_info=True)


# --- The periodic sweep ----------------------------------------------------------------------------


def erasure_sweep(*, min_age_seconds: float | None = None, batch_size: int = 200) -> dict[str, int]:
    """Beat: finish open requests older than ``min_age_seconds`` and delete orphaned media files."""
    if min_age_seconds is None:
        min_age_seconds = settings.FEEDMOOD_ERASURE_SWEEP_MIN_AGE_SECONDS
    cutoff = timezone.now() - timedelta(seconds=min_age_seconds)
    ids = list(
        ErasureRequest.objects.filter(completed_at__isnull=True, created_at__lte=cutoff).values_list("pk", flat=True)[
            :batch_size
        ]
    )
    completed = sum(erasure_run(request_id=pk) for pk in ids)
    orphans = media_orphans_sweep()
    return {"open": len(ids), "completed": completed, "orphan_files": orphans}


def media_orphans_sweep(*, grace_seconds: float | None = None) -> int:
    """Delete files under the media directories of ``MEDIA_OWNERS`` that no row references; returns how many.

    Only files older than ``grace_seconds`` go: an upload's file is written before its row commits.
    """
    if grace_seconds is None:
        grace_seconds = settings.FEEDMOOD_ORPHAN_FILE_GRACE_SECONDS
    cutoff = timezone.now() - timedelta(seconds=grace_seconds)
    deleted = 0
    for directory, (app_label, model_name, field) in MEDIA_OWNERS.items():
        try:
            _, names = default_storage.listdir(directory)
        except FileNotFoundError:
            continue
        model = apps.get_model(app_label, model_name)
        for chunk in _chunks([f"{directory}/{name}" for name in names], 500):
            referenced = set(model.objects.filter(**{f"{field}__in": chunk}).values_list(field, flat=True))
            for name in chunk:
                if name not in referenced and _older_than(name, cutoff):
                    deleted += _delete_quietly(name)
    if deleted:
        logger.info("Deleted %d orphaned media file(s)", deleted)
    return deleted


def _older_than(name: str, cutoff) -> bool:
    try:
        return default_storage.get_modified_time(name) <= cutoff
    except OSError:
        return False


def _delete_quietly(name: str) -> int:
    try:
        default_storage.delete(name)
        return 1
    except OSError:
        logger.warning("Could not delete orphaned media file %s", name, exc_info=True)
        return 0


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
