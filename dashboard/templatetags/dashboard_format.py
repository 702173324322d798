"""Number formatting filters of the admin dashboard (``{% load dashboard_format %}``)."""

from __future__ import annotations

import math
from typing import Any

from django import template

from dashboard.charts import fmt_ms, fmt_number

register = template.Library()


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


@register.filter
def intcomma_plain(value: Any) -> str:
    """``12345`` -> ``12,345`` (locale-independent); ``None`` -> ``–``."""
    v = _finite(value)
    return fmt_number(v, 0) if v is not None else "–"


@register.filter
def pct(value: Any) -> str:
    """A share as a whole percentage: ``0.934`` -> ``93%``."""
    v = _finite(value)
    return f"{100 * v:.0f}%" if v is not None else "–"


@register.filter
def pct1(value: Any) -> str:
    """A share with one decimal: ``0.7123`` -> ``71.2%``."""
    v = _finite(value)
    return f"{100 * v:.1f}%" if v is not None else "–"


@register.filter
def dec3(value: Any) -> str:
    v = _finite(value)
    return f"{v:.3f}" if v is not None else "–"


@register.filter
def ms(value: Any) -> str:
    """Milliseconds: ``850.0`` -> ``850 ms``, ``1520`` -> ``1.5 s``."""
    return fmt_ms(_finite(value))
