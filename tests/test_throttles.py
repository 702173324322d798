"""Throttles key on the real client, failed logins lock out (API token and admin), signups have their own
rate, and throttled responses carry RateLimit-* headers."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.conftest import PROJECT_DIR

PASSWORD = "pw-Alice-123456"


@pytest.fixture
def rates(settings):
    def _set(**rates: str) -> None:
        base = {"user": "1000/min", "anon": "1000/min", "uploads": "1000/min", "signup": "1000/min"}
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {**base, **rates}}

    return _set


def _token(client: APIClient, username: str, password: str, **extra: Any) -> Any:
    return client.post("/api/auth/token/", {"username": username, "password": password}, format="json", **extra)


def test_spoofed_x_forwarded_for_does_not_escape_the_anon_throttle(db, rates) -> None:
    rates(anon="5/min")
    client = APIClient()
    codes = [_token(client, "x", "y", HTTP_X_FORWARDED_FOR=f"10.{i}.0.1").status_code for i in range(8)]
    assert codes == [400] * 5 + [429] * 3, codes


def test_num_proxies_comes_from_the_environment() -> None:
    code = "import config.settings as s; print(s.REST_FRAMEWORK['NUM_PROXIES'])"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(PROJECT_DIR)}

    def run(**extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=PROJECT_DIR,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout.split()[-1]

    assert (run(), run(FEEDMOOD_NUM_PROXIES="1")) == ("0", "1")


def test_failed_logins_lock_the_account_on_the_token_endpoint(make_user, rates, settings) -> None:
    rates()
    settings.FEEDMOOD_LOGIN_MAX_FAILURES = 3
    make_user(username="alice", password=PASSWORD)
    client = APIClient()
    for _ in range(2):
        _token(client, "alice", "nope")
    assert _token(client, "alice", PASSWORD).status_code == 200  # a success clears the count
    wrong = [_token(client, "alice", "nope", REMOTE_ADDR=f"198.51.100.{i}").status_code for i in range(3)]
    locked = _token(client, "alice", PASSWORD, REMOTE_ADDR="198.51.100.99")
    assert wrong == [400] * 3
    assert locked.status_code == 429 and int(locked["Retry-After"]) > 0, locked.content
    assert "failed logins" in locked.json()["detail"]
    make_user(username="bob", password=PASSWORD)
    assert _token(client, "bob", PASSWORD).status_code == 200  # other accounts are not locked


@pytest.fixture
def admin_login(make_user, client):
    make_user(username="boss", password=PASSWORD, is_staff=True, is_superuser=True)

    def _login(username: str, password: str, ip: str = "192.0.2.1") -> bool:
        response = client.post(
            "/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=ip
        )
        return response.status_code == 302 and "_auth_user_id" in client.session

    return _login


def test_failed_logins_lock_the_account_on_the_admin_login(admin_login, settings) -> None:
    settings.FEEDMOOD_LOGIN_MAX_FAILURES = 3
    assert not any(admin_login("boss", "nope", ip=f"192.0.2.{i}") for i in range(3))
    assert admin_login("boss", PASSWORD, ip="192.0.2.200") is False


def test_failed_admin_logins_from_one_address_lock_that_address(admin_login, settings) -> None:
    settings.FEEDMOOD_LOGIN_MAX_FAILURES_PER_IP = 5
    for i in range(5):
        admin_login(f"guess{i}", "nope", ip="192.0.2.66")
    assert admin_login("boss", PASSWORD, ip="192.0.2.66") is False
    assert admin_login("boss", PASSWORD, ip="192.0.2.67") is True


def test_attempts_refused_by_the_lockout_count_against_nothing(admin_login, make_user, settings) -> None:
    """A locked account's further attempts check no password and add no failure: they do not lock the address."""
    settings.FEEDMOOD_LOGIN_MAX_FAILURES = 3
    settings.FEEDMOOD_LOGIN_MAX_FAILURES_PER_IP = 5
    make_user(username="deputy", password=PASSWORD, is_staff=True)
    assert not any(admin_login("boss", "nope", ip="192.0.2.70") for _ in range(3))
    assert not any(admin_login("boss", PASSWORD, ip="192.0.2.70") for _ in range(4))  # locked: refused
    assert admin_login("deputy", PASSWORD, ip="192.0.2.70") is True  # 3 failures from the address, not 7


def test_signup_has_its_own_throttle(db, rates) -> None:
    rates(signup="2/min")
    client = APIClient()
    codes = [
        client.post(
            "/api/auth/signup/", {"username": f"u{uuid.uuid4().hex[:8]}", "password": PASSWORD + str(i)}, format="json"
        ).status_code
        for i in range(3)
    ]
    assert codes == [201, 201, 429], codes


def test_rate_limit_headers_count_down_and_reach_zero(db, rates) -> None:
    rates(anon="3/min")
    client = APIClient()
    responses = [_token(client, "x", "y") for _ in range(4)]
    assert [r["RateLimit-Limit"] for r in responses] == ["3"] * 4
    assert [r["RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert all(0 < int(r["RateLimit-Reset"]) <= 60 for r in responses)
    assert responses[-1].status_code == 429


def test_rate_limit_headers_show_the_tightest_limit(make_user, client_for, rates) -> None:
    rates(user="10/min", uploads="2/min")
    client = client_for(make_user(username="alice"))
    first = client.post("/api/posts/", {"text": "hi"}, format="json")
    assert first.status_code == 201
    assert (first["RateLimit-Limit"], first["RateLimit-Remaining"]) == ("2", "1")
    read = client.get("/api/posts/")  # reads are not uploads: the user rate applies
    assert (read["RateLimit-Limit"], read["RateLimit-Remaining"]) == ("10", "8")


# --- The refusal box (feedmood.throttle_box) ------------------------------------------------------


class _NoCache:
    """Stands in for the throttles' cache: any use of it fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the throttle cache was used ({name})")


@pytest.fixture
def now(monkeypatch) -> list[float]:
    """The throttles' clock (and so the box's), set by the test: ``now[0] = ...``."""
    from rest_framework import throttling

    clock = [1_000_000.0]
    monkeypatch.setattr(throttling.SimpleRateThrottle, "timer", staticmethod(lambda: clock[0]))
    return clock


@pytest.fixture
def boxed(make_user, client_for, rates, now):
    """alice has posted twice at a 2/min upload rate (at t and t + 10 s); her third post, at t + 20 s, is
    refused by the throttle (free again at t + 60 s)."""
    rates(uploads="2/min")
    client = client_for(make_user(username="alice"))
    start = now[0]
    for offset in (0, 10):
        now[0] = start + offset
        assert client.post("/api/posts/", {"text": "hi"}, format="json").status_code == 201
    now[0] = start + 20
    refused = client.post("/api/posts/", {"text": "hi"}, format="json")
    assert refused.status_code == 429
    return client, refused, start


def test_a_refused_client_is_answered_from_the_box_without_database_or_cache(
    boxed, now, monkeypatch, django_assert_num_queries
) -> None:
    from rest_framework import throttling

    client, refused, _ = boxed
    monkeypatch.setattr(throttling.SimpleRateThrottle, "cache", _NoCache())
    with django_assert_num_queries(0):
        again = client.post("/api/posts/", {"text": "hi"}, format="json")
    assert again.status_code == 429
    assert again.json() == refused.json() == {"detail": "Request was throttled. Expected available in 40 seconds."}
    assert again["Retry-After"] == refused["Retry-After"] == "40"
    assert (again["RateLimit-Limit"], again["RateLimit-Remaining"], again["RateLimit-Reset"]) == ("2", "0", "40")


def test_the_box_ends_exactly_when_the_throttle_frees_a_request(boxed, now, django_assert_num_queries) -> None:
    client, _, start = boxed
    now[0] = start + 59.5
    with django_assert_num_queries(0):
        last = client.post("/api/posts/", {"text": "hi"}, format="json")
    assert (last.status_code, last["Retry-After"]) == (429, "1")
    now[0] = start + 60  # the first post leaves the window: the throttle allows, so must the box
    assert client.post("/api/posts/", {"text": "hi"}, format="json").status_code == 201


def test_the_box_covers_only_that_client_view_and_method(boxed, make_user, client_for) -> None:
    from feedmood.throttle_box import box

    client, _, _ = boxed
    assert len(box) == 1
    post = client.get("/api/posts/").json()["results"][0]
    assert client.get("/api/posts/").status_code == 200  # another method
    assert client.post(f"/api/posts/{post['id']}/like/").status_code in (200, 201)  # another view
    bob = client_for(make_user(username="bob"))
    assert bob.post("/api/posts/", {"text": "hi"}, format="json").status_code == 201  # another client
    assert len(box) == 1


def test_an_anonymous_client_is_boxed_by_its_address_only(db, rates) -> None:
    from feedmood.throttle_box import box

    rates(anon="2/min")
    client = APIClient()
    codes = [_token(client, "x", "y", REMOTE_ADDR="198.51.100.1").status_code for _ in range(3)]
    assert codes == [400, 400, 429] and len(box) == 1
    assert _token(client, "x", "y", REMOTE_ADDR="198.51.100.1").status_code == 429
    assert _token(client, "x", "y", REMOTE_ADDR="198.51.100.2").status_code == 400


def test_a_credential_that_does_not_authenticate_never_gets_an_entry(db, rates, make_user, client_for) -> None:
    from feedmood.throttle_box import box

    rates(anon="1/min")
    forged = APIClient()
    forged.credentials(HTTP_AUTHORIZATION="Token forged-key")
    assert forged.get("/api/posts/").status_code == 401  # refused by authentication, never throttled
    for extra in ({"HTTP_AUTHORIZATION": "Basic Zm9vOmJhcg=="}, {"HTTP_COOKIE": "sessionid=forged"}):
        client = APIClient()
        codes = [_token(client, "x", "y", **extra).status_code for _ in range(3)]
        assert codes[1:] == [429, 429]  # anonymous, refused by the anon rate of their address, not boxed
    assert len(box) == 0


def test_the_box_is_bounded_and_keeps_the_recently_used(settings) -> None:
    from feedmood.throttle_box import box
    from feedmood.throttling import Refusal

    settings.FEEDMOOD_REFUSAL_BOX_SIZE = 3
    refusal = Refusal(oldest=100.0, duration=60.0, limit=1)
    for key in "abc":
        box.add(key, refusal)
    assert box.get("a", 120.0) is refusal  # a is used: b is now the least recently used
    box.add("d", refusal)
    assert len(box) == 3 and box.get("b", 120.0) is None and box.get("a", 120.0) is refusal
    settings.FEEDMOOD_REFUSAL_BOX_SIZE = 0  # off
    box.add("e", refusal)
    assert len(box) == 0
