"""DRF exception handler: clear JSON errors, never a stack trace.

- Django ``ValidationError`` (raised by services) -> 400 ``{"field": ["message"]}``
  (or ``{"detail": ...}`` / ``{"non_field_errors": [...]}`` when not field-bound).
- ``IntegrityError`` -> 409 ``{"detail": "..."}`` (a race the services did not absorb).
- anything else unexpected -> logged, 500 ``{"detail": "Internal server error"}``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
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
