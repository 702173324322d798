"""Request errors Django or the database driver raise on hostile input are 4xx with a message, never 500.

Run against PostgreSQL in CI (.ci/run): a NUL character in a username path is refused only there.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings

FORM = "application/x-www-form-urlencoded"
BODY_ENDPOINTS = [
    ("post", "/api/selfies/"),
    ("post", "/api/posts/"),
    ("patch", "/api/me/"),
    ("post", "/api/auth/token/"),
]
USER_PATHS = ["/api/users/x%00y/", "/api/users/x%00y/followers/", "/api/users/x%00y/following/"]


@pytest.fixture
def client(make_user, client_for):
    return client_for(make_user(username="alice", emotion_consent=True))


def _send(client: Any, method: str, path: str, body: bytes, content_type: str) -> Any:
    return getattr(client, method)(path, data=body, content_type=content_type)


def _assert_4xx_with_message(response: Any, expected: int) -> None:
    assert response.status_code == expected, (response.status_code, response.content[:300])
    assert response.json()["detail"]


@pytest.mark.parametrize("method,path", BODY_ENDPOINTS)
def test_multipart_field_over_the_memory_limit_is_413(client, method: str, path: str) -> None:
    boundary = "BoUnDaRy"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="text"\r\n\r\n'.encode()
        + b"a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    _assert_4xx_with_message(_send(client, method, path, body, f"multipart/form-data; boundary={boundary}"), 413)


@pytest.mark.parametrize("method,path", BODY_ENDPOINTS)
def test_too_many_form_fields_is_400(client, method: str, path: str) -> None:
    body = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)).encode()
    _assert_4xx_with_message(_send(client, method, path, body, FORM), 400)


@pytest.mark.parametrize("method,path", BODY_ENDPOINTS)
def test_too_many_multipart_fields_is_400(client, method: str, path: str) -> None:
    boundary = "BoUnDaRy"
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="f"\r\n\r\n1\r\n'
    body = (part * (settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1) + f"--{boundary}--\r\n").encode()
    _assert_4xx_with_message(_send(client, method, path, body, f"multipart/form-data; boundary={boundary}"), 400)


@pytest.mark.parametrize("path", USER_PATHS)
def test_nul_in_username_path_is_400(client, path: str) -> None:
    _assert_4xx_with_message(client.get(path), 400)


@pytest.mark.parametrize("method", ["post", "delete"])
def test_nul_in_follow_path_is_400(client, method: str) -> None:
    _assert_4xx_with_message(getattr(client, method)("/api/users/x%00y/follow/"), 400)
