"""Small reusable validators."""

import math

from django.core.exceptions import ValidationError


def validate_finite(value: float) -> None:
    """Reject NaN and +/-infinity (range validators let NaN through)."""
    if value is not None and not math.isfinite(value):
        raise ValidationError("Enter a finite number.", code="not_finite")
