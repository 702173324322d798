"""The OpenAPI schema through schemathesis against the live server.

Every operation in ``/api/schema/`` gets schema-generated (and negative)
requests, authenticated as a real user with emotion consent; the checks:
no 5xx whatever the input, and every 4xx is JSON with a message.  Bounded: a few examples
per operation.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hsettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def api_schema(live_server, transactional_db, make_user, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100000/min", "anon": "100000/min", "uploads": "100000/min"},
    }
    from feedmood.accounts import token_issue

    user = make_user(username="fuzzer", emotion_consent=True)
    other = make_user(username="bob")
    from feedmood import services

    services.post_create(author=other, text="a post to like")
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    schema.config.headers = {"Authorization": f"Token {token_issue(user=user)}"}
    return schema


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hsettings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_never_5xx(case) -> None:
    from django.contrib.auth import get_user_model
    from schemathesis.checks import not_a_server_error

    from feedmood.accounts import token_issue

    # A fresh token per case: a fuzzed logout or password change revokes the one it used.
    key = token_issue(user=get_user_model().objects.get(username="fuzzer"))
    response = case.call(headers={"Authorization": f"Token {key}"})
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:  # a client error says what was wrong
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/json"), (case.path, content_type, response.text[:300])
        body = response.json()
        assert isinstance(body, dict) and body and all(body.values()), (case.method, case.path, body)
    if case.method.upper() == "GET" and case.path == "/api/me/":
        assert response.status_code == 200, "the token header was not sent"
