"""DRF exception handler: clear JSON errors, never a stack trace.

- Django ``ValidationError`` (raised by services) -> 400 ``{"field": ["message"]}``
  (or ``{"detail": ...}`` / ``{"non_field_errors": [...]}`` when not field-bound).
- ``IntegrityError`` -> 409 ``{"detail": "..."}`` (a race the services did not absorb).
- Django's request errors for bad input (``RequestDataTooBig`` -> 413, ``TooManyFieldsSent``,
  ``TooManyFilesSent`` and other ``SuspiciousOperation`` -> 400) and values the database
  refuses (``DataError``, e.g. NUL characters or out-of-range numbers) -> 400.
- storage errors: disk full or quota (``ENOSPC``, ``EDQUOT``, ``EFBIG``) -> 507, I/O errors
  and read-only or exhausted file systems -> 503 with ``Retry-After``.
- anything else unexpected -> logged, 500 ``{"detail": "Internal server error"}``.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

logger = logging.getLogger("feedmood.api")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Translate service-layer exceptions, then defer to DRF's handler."""
    if isinstance(exc, DjangoValidationError):
        detail = as_serializer_error(exc)
        if NON_FIELD_ERRORS in detail:  # Django's "__all__" -> DRF's "non_field_errors"
            detail.setdefault(api_settings.NON_FIELD_ERRORS_KEY, []).extend(detail.pop(NON_FIELD_ERRORS))
        exc = exceptions.ValidationError(detail)

    response = drf_exception_handler(exc, context)
    if response is not None:
        return response

    set_rollback()
    translated = bad_input_response(exc) or storage_error_response(exc)
    if translated is not None:
        return translated
    if isinstance(exc, IntegrityError):
        logger.warning("Integrity error in %s: %s", _view_name(context), exc)
        return Response(
            {"detail": "The request conflicts with the current state of the resource."},
            status=status.HTTP_409_CONFLICT,
        )
    logger.exception("Unhandled error in %s", _view_name(context), exc_info=exc)
    return Response({"detail": "Internal server error"}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def _view_name(context: dict[str, Any]) -> str:
    view = context.get("view")
    return type(view).__name__ if view is not None else "unknown view"


#: errno values meaning "no room to write": 507 Insufficient Storage.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: errno values of a failing or unavailable file system: 503, worth retrying later.
STORAGE_UNAVAILABLE_ERRNOS = frozenset({errno.EIO, errno.EROFS, errno.ENFILE, errno.EMFILE, errno.ENOMEM})
STORAGE_RETRY_AFTER_SECONDS = 60


def bad_input_response(exc: Exception) -> Response | None:
    """4xx for request errors Django or the database driver raise on hostile input; ``None`` otherwise."""
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": f"Request body too large: {exc}"}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exc, SuspiciousOperation):  # TooManyFieldsSent, TooManyFilesSent, malformed multipart, ...
        return Response({"detail": f"Bad request: {exc}"}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, DataError) or _is_nul_value_error(exc):
        return Response(
            {"detail": "A value in the request cannot be stored (e.g. a NUL character or a number out of range)."},
            status=status.HTTP_400_BAD_REQUEST,
        )
    return None


def _is_nul_value_error(exc: Exception) -> bool:
    """psycopg refuses NUL characters in strings with a plain ValueError before sending the query."""
    return type(exc) is ValueError and "NUL" in str(exc)


def storage_error_response(exc: Exception) -> Response | None:
    """507 when the media storage is full, 503 when it fails; ``None`` for other exceptions."""
    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    if exc.errno in NO_SPACE_ERRNOS:
        logger.error("Media storage is full: %s", exc)
        return Response(
            {"detail": "The server has no room to store this upload right now. Nothing was saved; try again later."},
            status=status.HTTP_507_INSUFFICIENT_STORAGE,
        )
    if exc.errno in STORAGE_UNAVAILABLE_ERRNOS:
        logger.error("Media storage failed: %s", exc)
        return Response(
            {"detail": "Storage is temporarily unavailable. Nothing was saved; try again later."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_SECONDS)},
        )
    return None
