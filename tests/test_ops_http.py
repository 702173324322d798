"""HTTP for operators and browser clients: CORS from env (none by default), ``/`` to the docs, API login link."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.test_settings import PROJECT_DIR, _clean_env

pytestmark = pytest.mark.django_db

APP = "https://app.example.com"


def preflight(client, origin: str):
    return client.options("/api/posts/", HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                          HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type")  # fmt: skip


def test_no_origin_is_allowed_by_default(api_client) -> None:
    assert "access-control-allow-origin" not in preflight(api_client, APP).headers
    assert "access-control-allow-origin" not in api_client.get("/api/health/live", HTTP_ORIGIN=APP).headers


def test_listed_origins_get_cors_headers(api_client, settings) -> None:
    settings.CORS_ALLOWED_ORIGINS = [APP]
    response = preflight(api_client, APP)
    assert response.status_code == 200 and response["Access-Control-Allow-Origin"] == APP
    assert "authorization" in response["Access-Control-Allow-Headers"]
    response = api_client.get("/api/health/live", HTTP_ORIGIN=APP)
    assert (
        response["Access-Control-Allow-Origin"] == APP and "X-Request-ID" in response["Access-Control-Expose-Headers"]
    )
    assert "access-control-allow-origin" not in preflight(api_client, "https://evil.example.com").headers


@pytest.mark.slow
def test_allowed_origins_come_from_the_environment() -> None:
    script = "import json, config.settings as s; print(json.dumps(s.CORS_ALLOWED_ORIGINS))"
    run = lambda **env: subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, env=_clean_env(**env),  # noqa: E731
                                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert json.loads(run().stdout) == []
    out = run(CORS_ALLOWED_ORIGINS=f"{APP}, https://admin.example.com")
    assert json.loads(out.stdout) == [APP, "https://admin.example.com"], out.stderr


def test_site_root_leads_to_the_api_docs(api_client) -> None:
    response = api_client.get("/")
    assert response.status_code == 302 and response["Location"] == "/api/docs/"
    assert api_client.get(response["Location"]).status_code == 200


def test_browsable_api_has_a_login_link(api_client) -> None:
    response = api_client.get("/api/me/", HTTP_ACCEPT="text/html")
    assert response.status_code in (401, 403)
    assert "href='/api-auth/login/?next=/api/me/'>Log in</a>" in response.content.decode()
    assert api_client.get("/api-auth/login/").status_code == 200
