"""The dashboard forgets its cached aggregates as soon as a person's emotion data is erased.

It listens to the erasure events the apps send after commit, so no app needs to know the dashboard exists.
"""

from __future__ import annotations

from typing import Any

from dashboard.views import forget_cached_aggregates
from emotion import signals as emotion_signals
from feedmood import signals as social_signals


def on_emotion_data_erased(sender: Any, **kwargs: Any) -> None:
    forget_cached_aggregates()


def connect() -> None:
    """Connect the receivers (called once from ``DashboardConfig.ready``)."""
    for signal, name in (
        (emotion_signals.readings_erased, "readings_erased"),
        (social_signals.consent_withdrawn, "consent_withdrawn"),
        (social_signals.account_erased, "account_erased"),
    ):
        signal.connect(on_emotion_data_erased, dispatch_uid=f"dashboard.{name}")
