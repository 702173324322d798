"""Hostile clients for ``bench/load_test.py``: each runs in its own thread until ``stop_at``.

- password guessing on ``/api/auth/token/`` with a random ``X-Forwarded-For`` each time (and on the admin login);
- ``POST /api/selfies/?wait=10`` floods from one account, 4 threads at once;
- poison images: 16-bit grey PNGs of 4000x4000 (decoded by the worker) and 6000x6000 (over its pixel limit);
- oversized bodies: 300 MiB announced (64 KiB sent), a 3 MB form field, 1,001 form fields;
- a health probe every 0.2 s (its latency is the figure that must stay low).
Hostile accounts are named ``hostile*`` so the load test can tell their uploads apart.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import numpy as np
import requests
from PIL import Image

HEALTH = "GET /api/health/ (probe)"
PASSWORD = "Hostile-Password-42"
HOSTILE_PREFIX = "hostile"


def _gradient_png(side: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.tile(np.linspace(0, 65535, side, dtype=np.uint16), (side, 1))).save(buf, format="PNG")
    return buf.getvalue()


def _account(base: str) -> str:
    name = f"{HOSTILE_PREFIX}{os.urandom(3).hex()}"
    r = requests.post(f"{base}/api/auth/signup/", json={"username": name, "password": PASSWORD}, timeout=30)
    r.raise_for_status()
    token = r.json()["token"]
    requests.patch(
        f"{base}/api/me/", json={"emotion_consent": True}, headers={"Authorization": f"Token {token}"}, timeout=30
    ).raise_for_status()
    return token


def _loop(stop_at: float, pause: float, step: Callable[[], None]) -> None:
    while time.monotonic() < stop_at:
        with contextlib.suppress(requests.RequestException):  # recorded by the step when it matters
            step()
        time.sleep(pause)


def _timed(stats: Any, name: str, ok: tuple[int, ...], call: Callable[[], Any]) -> Any:
    t0 = time.perf_counter()
    try:
        response = call()
    except requests.RequestException as exc:
        stats.record(name, t0, None, ok, exc)
        return None
    stats.record(name, t0, response, ok)
    return response


def _raw_huge_post(base: str, token: str) -> SimpleNamespace:
    url = urlparse(base)
    with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
        sock.sendall(
            (
                f"POST /api/posts/ HTTP/1.1\r\nHost: {url.hostname}\r\nAuthorization: Token {token}\r\n"
                f"Content-Type: multipart/form-data; boundary=B\r\nContent-Length: {300 * 1024 * 1024}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            + b"--B\r\n"
            + b"x" * 65536
        )
        head = sock.recv(4096).decode("latin-1")
    parts = head.split(" ", 2)
    return SimpleNamespace(status_code=int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0, text=head[:200])


def start_hostile_clients(base: str, victim: str, stop_at: float, stats: Any) -> list[threading.Thread]:
    """Start every hostile client (daemon threads); ``victim`` is a real username whose password is guessed."""
    token = _account(base)
    auth = {"Authorization": f"Token {token}"}
    rng = random.Random(27)
    anon = requests.Session()
    big16, huge16 = _gradient_png(4000), _gradient_png(6000)

    def guess() -> None:
        spoofed = f"{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        _timed(
            stats,
            "hostile: POST /api/auth/token/ (spoofed XFF)",
            (400, 429),
            lambda: anon.post(
                f"{base}/api/auth/token/",
                json={"username": victim, "password": os.urandom(6).hex()},
                headers={"X-Forwarded-For": spoofed},
                timeout=30,
            ),
        )

    admin = requests.Session()

    def admin_guess() -> None:
        admin.get(f"{base}/admin/login/", timeout=30)
        _timed(
            stats,
            "hostile: POST /admin/login/",
            (200,),
            lambda: admin.post(
                f"{base}/admin/login/",
                data={
                    "username": victim,
                    "password": os.urandom(6).hex(),
                    "csrfmiddlewaretoken": admin.cookies.get("csrftoken", ""),
                },
                timeout=30,
            ),
        )

    face = Image.new("RGB", (320, 240), (128, 128, 128))
    buf = io.BytesIO()
    face.save(buf, format="JPEG")
    plain_jpeg = buf.getvalue()

    def flood() -> None:
        _timed(
            stats,
            "hostile: POST /api/selfies/?wait=10",
            (200, 202, 429),
            lambda: requests.post(
                f"{base}/api/selfies/?wait=10",
                files={"image": ("s.jpg", plain_jpeg, "image/jpeg")},
                headers=auth,
                timeout=60,
            ),
        )

    def poison() -> None:
        _timed(
            stats,
            "hostile: POST /api/selfies/ (16-bit 4000x4000)",
            (202, 429),
            lambda: requests.post(
                f"{base}/api/selfies/", files={"image": ("p.png", big16, "image/png")}, headers=auth, timeout=60
            ),
        )
        _timed(
            stats,
            "hostile: POST /api/posts/ (16-bit 6000x6000)",
            (201, 429),
            lambda: requests.post(
                f"{base}/api/posts/", files={"image": ("p.png", huge16, "image/png")}, headers=auth, timeout=60
            ),
        )

    def oversized() -> None:
        t0 = time.perf_counter()
        try:
            stats.record("hostile: POST /api/posts/ (300 MiB announced)", t0, _raw_huge_post(base, token), (413,))
        except OSError as exc:
            stats.record("hostile: POST /api/posts/ (300 MiB announced)", t0, None, (413,), exc)
        _timed(
            stats,
            "hostile: POST /api/posts/ (3 MB form field)",
            (413,),
            lambda: requests.post(
                f"{base}/api/posts/", files={"text": (None, "a" * 3_000_000)}, headers=auth, timeout=60
            ),
        )
        _timed(
            stats,
            "hostile: PATCH /api/me/ (1,001 fields)",
            (400,),
            lambda: requests.patch(
                f"{base}/api/me/",
                data="&".join(f"f{i}=1" for i in range(1001)),
                headers={**auth, "Content-Type": "application/x-www-form-urlencoded"},
                timeout=60,
            ),
        )

    probe = requests.Session()

    def health() -> None:
        _timed(stats, HEALTH, (200,), lambda: probe.get(f"{base}/api/health/", timeout=30))

    plan = [(guess, 0.05), (admin_guess, 0.5), (poison, 2.0), (oversized, 1.0), (health, 0.2)]
    plan += [(flood, 0.5)] * 4
    threads = [threading.Thread(target=_loop, args=(stop_at, pause, step), daemon=True) for step, pause in plan]
    for thread in threads:
        thread.start()
    return threads


def summary(db_url: str, stats: Any) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(db_url) as conn:
        statuses = dict(
            conn.execute(
                "SELECT a.status, count(*) FROM emotion_imageanalysis a JOIN auth_user u ON u.id = a.owner_id "
                f"WHERE u.username LIKE '{HOSTILE_PREFIX}%%' GROUP BY a.status"
            ).fetchall()
        )
    return {"hostile_analysis_statuses": statuses}


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "Hostile clients (status codes):",
        "",
        "| client | requests | p95 ms | status codes |",
        "|---|---|---|---|",
    ]
    for name, codes in result["status_counts"].items():
        if name.startswith("hostile") or name == HEALTH:
            e = result["endpoints"].get(name, {})
            lines.append(f"| `{name}` | {e.get('requests')} | {e.get('p95_ms')} | {dict(sorted(codes.items()))} |")
    lines += ["", f"Analyses of the hostile account's uploads: {result['hostile']['hostile_analysis_statuses']}."]
    return lines
