"""Property-based fuzzing of every write endpoint: never a 5xx.

JSON endpoints get arbitrary JSON (unicode edge cases, wrong types, huge
numbers, NaN/Infinity literals, oversized bodies); multipart endpoints get
mutated images and wrong fields; user paths get arbitrary usernames (NUL
included).  Every 4xx must be JSON with a message.  Bounded: ~40 examples per
property.  CI runs them against PostgreSQL (``.ci/run``), which refuses values
SQLite accepts.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.conftest import make_image_bytes

FUZZ = hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))

NASTY_TEXT = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud7ff",
            "\ufeff",
            "\u202e",
            "𝕳𝖊𝖑𝖑𝖔",
            "👩‍👩‍👧‍👦" * 50,
            "a" * 100_000,
            "../../etc/passwd",
            "' OR 1=1 --",
            "<script>alert(1)</script>",
            "NaN",
            "Infinity",
            "-0",
            "1e309",
            "%00",
            "null",
        ]
    ),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    NASTY_TEXT,
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NASTY_TEXT, inner, max_size=4), max_leaves=12
)

FIELDS = [
    "username",
    "password",
    "display_name",
    "text",
    "emotion_consent",
    "mood_policy",
    "mood_strength",
    "mood_half_life_hours",
    "image",
    "policy",
    "strength",
    "page_size",
    "cursor",
    "email",
    "old_password",
    "new_password",
    "uid",
    "token",
]
OBJECTS = st.one_of(JSON, st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6))

RAW_BODIES = st.one_of(
    st.binary(max_size=2000),
    st.sampled_from(
        [
            b"{",
            b"[]",
            b"NaN",
            b'{"mood_strength": NaN}',
            b'{"mood_strength": Infinity}',
            b'{"mood_half_life_hours": -Infinity}',
            b'{"a": 1e999}',
            b"\xff\xfe{}",
            b'"' + b"x" * 3_000_000 + b'"',
            b"[" * 5000 + b"]" * 5000,
        ]
    ),
)

WRITE_ENDPOINTS = [
    ("post", "/api/auth/signup/"),
    ("post", "/api/auth/token/"),
    ("patch", "/api/me/"),
    ("post", "/api/posts/"),
    ("patch", "/api/me/mood-settings/"),
    ("post", "/api/selfies/"),
    ("post", "/api/users/bob/follow/"),
    ("post", "/api/posts/1/like/"),
    ("delete", "/api/me/"),
    ("post", "/api/me/password/"),
    ("post", "/api/auth/password-reset/"),
    ("post", "/api/auth/password-reset/confirm/"),
]


@pytest.fixture
def fuzz_client(make_user, client_for, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"user": "100000/min", "anon": "100000/min", "uploads": "100000/min"},
    }
    alice = make_user(username="alice", emotion_consent=True)
    make_user(username="bob")
    return client_for(alice)


def assert_not_5xx(response: Any, what: Any) -> None:
    """No 5xx; and every 4xx is JSON with a message (``{"detail": ...}`` or field errors), no traceback."""
    assert response.status_code < 500, (what, response.status_code, response.content[:500])
    if response.status_code >= 400:
        assert response.get("Content-Type", "").startswith("application/json"), (
            what,
            response.status_code,
            response.content[:300],
        )
        body = response.json()
        assert isinstance(body, dict) and body and all(body.values()), (what, body)
        assert "Traceback" not in response.content.decode(errors="replace")


@pytest.mark.parametrize(("method", "path"), WRITE_ENDPOINTS)
@FUZZ
@given(body=OBJECTS)
def test_json_bodies_never_5xx(fuzz_client, method: str, path: str, body: Any) -> None:
    response = getattr(fuzz_client, method)(path, data=json.dumps(body), content_type="application/json")
    assert_not_5xx(response, body)


@pytest.mark.parametrize(("method", "path"), WRITE_ENDPOINTS)
@hsettings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    raw=RAW_BODIES,
    ctype=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded",
            "application/xml",
        ]
    ),
)
def test_raw_bodies_never_5xx(fuzz_client, method: str, path: str, raw: bytes, ctype: str) -> None:
    response = getattr(fuzz_client, method)(path, data=raw, content_type=ctype)
    assert_not_5xx(response, (raw[:100], ctype))


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["policy", "strength", "page_size", "cursor", "page", "x"]), NASTY_TEXT, max_size=4
    )
)
def test_query_params_never_5xx(fuzz_client, params: dict[str, str]) -> None:
    params = {k: v.replace("\x00", "") if k != "cursor" else v for k, v in params.items()}
    for path in ("/api/feed/", "/api/posts/", "/api/me/emotions/", "/api/users/bob/followers/", "/api/me/mood/"):
        assert_not_5xx(fuzz_client.get(path, params), (path, params))


@FUZZ
@given(username=NASTY_TEXT, suffix=st.sampled_from(["", "followers/", "following/", "follow/"]))
@example(username="x\x00y", suffix="")
@example(username="x\x00y", suffix="followers/")
@example(username="x\x00y", suffix="following/")
@example(username="\x00", suffix="follow/")
def test_username_paths_never_5xx(fuzz_client, username: str, suffix: str) -> None:
    from urllib.parse import quote

    path = f"/api/users/{quote(username[:200], safe='')}/{suffix}"
    for method in ("get", "post", "delete") if suffix == "follow/" else ("get",):
        assert_not_5xx(getattr(fuzz_client, method)(path), (method, path))


SEED_IMAGES = [
    make_image_bytes("JPEG", (40, 30)),
    make_image_bytes("PNG", (40, 30)),
    make_image_bytes("WEBP", (40, 30)),
]


@st.composite
def mutated_images(draw: Any) -> bytes:
    data = bytearray(draw(st.sampled_from(SEED_IMAGES)))
    op = draw(st.sampled_from(["flip", "truncate", "splice", "random", "keep"]))
    if op == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif op == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif op == "splice":
        pos = draw(st.integers(0, len(data) - 1))
        data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
    elif op == "random":
        data = bytearray(draw(st.binary(max_size=512)))
    return bytes(data)


@FUZZ
@given(
    data=mutated_images(), name=NASTY_TEXT, field=st.sampled_from(["image", "file", "images", "Image"]), text=NASTY_TEXT
)
def test_multipart_post_never_5xx(fuzz_client, data: bytes, name: str, field: str, text: str) -> None:
    name = name.replace("\x00", "")[:200]
    if name.replace("\\", "/").rsplit("/", 1)[-1] in {"", ".", ".."}:
        name += "x"  # SimpleUploadedFile itself refuses these (client side)
    upload = SimpleUploadedFile(name, data, content_type="image/jpeg")
    response = fuzz_client.post("/api/posts/", {field: upload, "text": text.replace("\x00", "")}, format="multipart")
    assert_not_5xx(response, (len(data), name, field))


@FUZZ
@given(
    data=mutated_images(),
    field=st.sampled_from(["image", "selfie", "file"]),
    wait=st.sampled_from(["", "0", "-1", "1e309", "nan", "abc", "0.1"]),
)
def test_multipart_selfie_never_5xx(fuzz_client, data: bytes, field: str, wait: str) -> None:
    upload = SimpleUploadedFile("s.jpg", data, content_type="image/jpeg")
    response = fuzz_client.post(f"/api/selfies/?wait={wait}", {field: upload}, format="multipart")
    assert_not_5xx(response, (len(data), field, wait))
    if response.status_code in (200, 201, 202):
        analysis = fuzz_client.get(f"/api/analyses/{response.json()['id']}/").json()
        assert analysis["status"] in ("done", "no_face", "failed", "pending", "processing"), analysis


def test_oversized_upload_is_413_or_400(fuzz_client, settings) -> None:
    settings.FEEDMOOD_MAX_UPLOAD_BYTES = 1000
    upload = SimpleUploadedFile("big.png", make_image_bytes("PNG", (400, 400)), content_type="image/png")
    response = fuzz_client.post("/api/posts/", {"image": upload}, format="multipart")
    assert response.status_code in (400, 413), response.content
