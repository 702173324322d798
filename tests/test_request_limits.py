"""Oversized request bodies are refused from Content-Length, before the server reads (or spools) them."""

from __future__ import annotations

import socket
from urllib.parse import urlparse

import pytest
from rest_framework.authtoken.models import Token

HUGE = 300 * 1024 * 1024


def _raw_post(live_server_url: str, path: str, headers: dict[str, str], body: bytes) -> bytes:
    """Send headers and only the first bytes of the announced body; return what the server answers."""
    url = urlparse(live_server_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {url.hostname}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()
        )
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)  # old code: the server waits for the 300 MiB body -> socket.timeout
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.mark.parametrize("path", ["/api/posts/", "/api/selfies/"])
def test_a_300_mib_body_is_refused_before_it_is_read(live_server, make_user, path: str) -> None:
    token = Token.objects.create(user=make_user(username="alice", emotion_consent=True))
    answer = _raw_post(live_server.url, path, {
        "Authorization": f"Token {token.key}",
        "Content-Type": "multipart/form-data; boundary=BoUnDaRy",
        "Content-Length": str(HUGE),
    }, b"--BoUnDaRy\r\n" + b"x" * 65536)  # fmt: skip
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line, answer[:500]
    assert b"Request body too large" in rest


def test_a_malformed_content_length_is_400(client) -> None:
    response = client.post("/api/auth/token/", data=b"{}", content_type="application/json", CONTENT_LENGTH="12x")
    assert response.status_code == 400 and "Content-Length" in response.json()["detail"]
