"""Recommender tunables: ``settings.RECOMMENDER_<NAME>``, declared with their meaning and environment
variable in ``config/settings.py`` ("Recommender" block)."""

from __future__ import annotations

from typing import Any

from django.conf import settings


def get(name: str) -> Any:
    """``settings.RECOMMENDER_<name>`` (read on every call, so overrides in tests apply at once)."""
    return getattr(settings, f"RECOMMENDER_{name}")
