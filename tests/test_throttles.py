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
