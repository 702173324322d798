"""Bad input never produces a 500: malformed bodies, bad uploads, throttling, handlers."""

from __future__ import annotations

import json
import os
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from feedmood.models import Post
from tests.conftest import make_image_bytes

pytestmark = pytest.mark.django_db


def _bomb_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _truncated_png() -> bytes:
    import io

    from PIL import Image

    img = Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()[:3000]


BAD_UPLOADS = [
    ("random", os.urandom(4096), "Not an image"),
    ("zero", b"", "Not an image"),
    ("truncated", _truncated_png(), "Not an image"),
    ("gif", make_image_bytes("GIF"), "Unsupported image format GIF; use JPEG, PNG or WebP."),
    ("bomb", _bomb_png(), "too many pixels"),
]


@pytest.mark.parametrize(("label", "data", "message"), BAD_UPLOADS, ids=[b[0] for b in BAD_UPLOADS])
def test_bad_uploads_are_400(auth_client, label: str, data: bytes, message: str) -> None:
    upload = SimpleUploadedFile("photo.png", data, content_type="image/png")
    resp = auth_client.post("/api/posts/", {"text": "x", "image": upload}, format="multipart")
    assert resp.status_code == 400, resp.content
    assert message in resp.json()["image"][0]
    assert Post.objects.count() == 0


def test_upload_too_big(auth_client, settings) -> None:
    settings.FEEDMOOD_MAX_UPLOAD_BYTES = 1000
    data = make_image_bytes("PNG") + b"\0" * 2000
    resp = auth_client.post("/api/posts/", {"image": SimpleUploadedFile("a.png", data)}, format="multipart")
    assert resp.status_code == 400
    assert resp.json() == {"image": [f"Image is too large ({len(data)} bytes; the limit is 1000)."]}


def test_upload_too_many_pixels(auth_client, settings) -> None:
    settings.FEEDMOOD_MAX_IMAGE_PIXELS = 100
    resp = auth_client.post(
        "/api/posts/",
        {"image": SimpleUploadedFile("a.png", make_image_bytes("PNG", size=(20, 20)))},
        format="multipart",
    )
    assert resp.status_code == 400
    assert resp.json() == {"image": ["Image has too many pixels (20x20 = 400; the limit is 100)."]}


def test_image_field_not_a_file(auth_client) -> None:
    resp = auth_client.post("/api/posts/", {"text": "x", "image": "not-a-file"})
    assert resp.status_code == 400 and resp.json()["image"]


@pytest.mark.parametrize(
    "body",
    ['{"text": ', "not json at all", "[1, 2, 3]", '"just a string"', "null", '{"text": {"nested": 1}}', "\xff\xfe"],
)
def test_malformed_json_is_400(auth_client, body: str) -> None:
    resp = auth_client.generic(
        "POST", "/api/posts/", body.encode("utf-8", "surrogateescape"), content_type="application/json"
    )
    assert resp.status_code == 400, resp.content
    assert resp.json()


def test_nan_json_rejected(auth_client) -> None:
    resp = auth_client.generic("PATCH", "/api/me/", b'{"mood_strength": NaN}', content_type="application/json")
    assert resp.status_code == 400 and "JSON parse error" in resp.json()["detail"]


def test_unsupported_media_type_415(auth_client) -> None:
    resp = auth_client.generic("POST", "/api/posts/", b"<xml/>", content_type="application/xml")
    assert resp.status_code == 415 and resp.json()["detail"]


def test_unknown_api_path_json_404(settings) -> None:
    settings.DEBUG = False
    resp = APIClient().get("/api/nope/")
    assert resp.status_code == 404
    assert resp.json() == {"detail": "Not found."}


def test_unexpected_error_is_generic_500(auth_client, monkeypatch) -> None:
    from feedmood import selectors

    def boom(**kwargs):
        raise RuntimeError("secret internals: /etc/shadow")

    monkeypatch.setattr(selectors, "post_list", boom)
    resp = auth_client.get("/api/posts/")
    assert resp.status_code == 500
    assert resp.json() == {"detail": "Internal server error"}
    assert b"secret" not in resp.content and b"Traceback" not in resp.content


def test_user_throttle(auth_client) -> None:
    rates = {"user": "3/min", "anon": "100/min", "uploads": "100/min"}
    with override_settings(REST_FRAMEWORK={**_rf(), "DEFAULT_THROTTLE_RATES": rates}):
        codes = [auth_client.get("/api/me/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_anon_throttle(api_client) -> None:
    rates = {"user": "100/min", "anon": "2/min", "uploads": "100/min"}
    with override_settings(REST_FRAMEWORK={**_rf(), "DEFAULT_THROTTLE_RATES": rates}):
        codes = [api_client.post("/api/auth/token/", {"username": "x", "password": "y"}).status_code for _ in range(3)]
    assert codes == [400, 400, 429]


def test_upload_throttle_counts_only_writes(auth_client) -> None:
    rates = {"user": "100/min", "anon": "100/min", "uploads": "2/min"}
    with override_settings(REST_FRAMEWORK={**_rf(), "DEFAULT_THROTTLE_RATES": rates}):
        codes = [auth_client.post("/api/posts/", {"text": f"p{i}"}).status_code for i in range(3)]
        reads = [auth_client.get("/api/posts/").status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    assert reads == [200, 200, 200]
    throttled = auth_client.post("/api/posts/", {"text": "again"})
    assert throttled.status_code in (201, 429)


def _rf() -> dict:
    from django.conf import settings

    return dict(settings.REST_FRAMEWORK)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
FIELDS = st.sampled_from(
    [
        "text",
        "image",
        "display_name",
        "mood_strength",
        "mood_policy",
        "emotion_consent",
        "mood_half_life_hours",
        "username",
        "password",
        "page",
    ]
)


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(payload=st.one_of(JSONISH, st.dictionaries(FIELDS, JSONISH, max_size=4)))
def test_fuzzed_json_never_500(auth_client, payload) -> None:
    for method, url in [
        ("post", "/api/posts/"),
        ("patch", "/api/me/"),
        ("post", "/api/auth/signup/"),
        ("post", "/api/auth/token/"),
    ]:
        resp = getattr(auth_client, method)(url, data=json.dumps(payload), content_type="application/json")
        assert resp.status_code < 500, (url, payload, resp.content)
