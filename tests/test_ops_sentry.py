"""Sentry: events carry no credentials, request bodies, local variables or emotion data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from django.test import Client
from sentry_sdk.transport import Transport

from feedmood.observability.redaction import REDACTED
from feedmood.observability.sentry import init_sentry, scrub_event

TOKEN = "fedcba9876543210fedcba9876543210fedcba98"


def test_scrubber_strips_credentials_bodies_locals_and_emotion_data() -> None:
    event = {
        "message": f"login with Token {TOKEN}",
        "request": {
            "url": f"https://x.example/api/feed/?token={TOKEN}",
            "query_string": f"token={TOKEN}&page=2",
            "headers": {"Authorization": f"Token {TOKEN}", "Cookie": "sessionid=abc", "User-Agent": "curl"},
            "cookies": {"sessionid": "abc"},
            "data": {"image": "....", "probabilities": {"happiness": 0.9}},
            "env": {"REMOTE_ADDR": "10.1.2.3"},
        },
        "exception": {
            "values": [
                {
                    "type": "ValueError",
                    "value": f"bad Token {TOKEN}",
                    "stacktrace": {
                        "frames": [{"function": "analyse", "vars": {"probabilities": "{'happiness': 0.9}"}}]
                    },
                }
            ]
        },
        "extra": {"readings": [0.1, 0.9], "valence": 0.4, "analysis_id": 7},
        "breadcrumbs": {"values": [{"message": f"auth Bearer {TOKEN}", "data": {"confidence": 0.93}}]},
        "user": {"id": 5, "email": "a@example.com", "ip_address": "10.1.2.3"},
    }
    scrubbed = scrub_event(json.loads(json.dumps(event)), {})
    text = json.dumps(scrubbed)
    assert TOKEN not in text and "sessionid=abc" not in text and "10.1.2.3" not in text
    assert "0.9" not in text and "0.93" not in text and "happiness" not in text
    assert scrubbed["request"]["data"] == REDACTED and scrubbed["request"]["headers"]["User-Agent"] == "curl"
    assert "vars" not in scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert scrubbed["extra"] == {"readings": REDACTED, "valence": REDACTED, "analysis_id": 7}
    assert scrubbed["user"] == {"id": 5}
    assert scrubbed["exception"]["values"][0]["type"] == "ValueError"  # still useful


class CapturingTransport(Transport):
    """Keeps envelopes in memory instead of sending them (no network)."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


@pytest.fixture
def sentry_events() -> Iterator[list[dict[str, Any]]]:
    transport = CapturingTransport()
    assert init_sentry("https://public@sentry.invalid/1", environment="test", transport=transport)
    try:
        yield transport.events
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init(dsn=None)  # back to the disabled client for the other tests


def test_init_is_a_no_op_without_a_dsn() -> None:
    assert init_sentry(None, environment="test") is False
    assert init_sentry("", environment="test") is False


@pytest.mark.django_db
@pytest.mark.urls("tests.ops_urls")
def test_a_failing_request_reaches_sentry_scrubbed(sentry_events: list[dict[str, Any]]) -> None:
    client = Client(raise_request_exception=False)
    response = client.post(
        "/ops-test/fail/",
        data=json.dumps({"probabilities": {"happiness": 0.8123, "sadness": 0.1877}, "password": "hunter22"}),
        content_type="application/json", HTTP_AUTHORIZATION=f"Token {TOKEN}",
    )  # fmt: skip
    assert response.status_code == 500
    sentry_sdk.flush(timeout=5)
    assert len(sentry_events) == 1
    event = sentry_events[0]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"  # the error itself is reported
    text = json.dumps(event)
    for secret in (TOKEN, "hunter22", "0.8123", "0.1877"):
        assert secret not in text, secret
