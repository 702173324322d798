"""OpenAPI schema, offline Swagger UI, migrations in sync."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db
CDN = re.compile(r"jsdelivr|unpkg|cdnjs|googleapis|cloudflare", re.I)


def test_schema_endpoint() -> None:
    resp = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert resp.status_code == 200
    schema = resp.json()
    assert schema["openapi"].startswith("3.")
    for path in ["/api/auth/signup/", "/api/posts/", "/api/posts/{post_id}/like/", "/api/users/{username}/follow/"]:
        assert path in schema["paths"]
    public = schema["components"]["schemas"]["PublicProfile"]["properties"]
    assert "emotion_consent" not in public and "mood_policy" not in public


def test_swagger_ui_is_offline() -> None:
    client = APIClient()
    resp = client.get("/api/docs/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert not CDN.search(html), CDN.search(html)
    assets = re.findall(r"""(?:src|href)=["']([^"']+\.(?:js|css|png))["']""", html)
    assert any("swagger-ui-bundle.js" in a for a in assets), assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        static = client.get(asset)
        assert static.status_code == 200, asset
        b"".join(static.streaming_content) if static.streaming else static.content


def test_redoc_is_offline() -> None:
    resp = APIClient().get("/api/redoc/")
    assert resp.status_code == 200 and not CDN.search(resp.content.decode())


def test_spectacular_validate_fail_on_warn(tmp_path) -> None:
    out = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.read_text().startswith("openapi: 3")


def test_no_missing_migrations() -> None:
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


def test_health() -> None:
    resp = APIClient().get("/api/health/")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
