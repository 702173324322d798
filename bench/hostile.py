"""Hostile clients for ``bench/load_test.py``: each runs in its own thread, as fast as it can, until ``stop_at``.

- password guessing on ``/api/auth/token/`` with a random ``X-Forwarded-For`` each time, against a real user;
- admin-login guessing against a staff account, as a browser would: fetch the form, post it with its CSRF token;
- ``POST /api/selfies/?wait=10`` floods from one account, 4 threads at once;
- poison images: 16-bit grey PNGs of 4000x4000 (decoded by the worker) and 6000x6000 (over its pixel limit);
- oversized bodies: 300 MiB announced (64 KiB sent), a 3 MB form field, 1,001 form fields;
- a health probe every 0.2 s on a new connection each time (its latency is the figure that must stay low),
  from a thread of the load clients' process and, as kubelet probes, from a process of its own
  (:func:`start_own_process_probe`): the first also waits for the clients' own interpreter lock.

Each attack has its own account (an attacker would not spend one account's upload budget on two
attacks); hostile accounts are named ``hostile*`` so the load test can tell their uploads apart.
After the run, :func:`lockout_checks` shows from another loopback address (its own rate-limit and
lockout buckets) that the guessed accounts refuse even their right password while a control
account logs in.
"""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode, urlparse

import numpy as np
import requests
from PIL import Image

HEALTH = "GET /api/health/ (probe)"
HEALTH_OWN_PROCESS = "GET /api/health/ (probe, own process)"
PASSWORD = "Hostile-Password-42"
STAFF_PASSWORD = "Staff-Password-42-load"
HOSTILE_PREFIX = "hostile"
#: Address the lockout checks come from (Linux routes all of 127/8 to loopback).
CHECK_ADDRESS = "127.0.0.2"
DESCRIPTION = (
    "token-endpoint password guessing with a random X-Forwarded-For (1 thread), admin-login guessing with the "
    "form's CSRF token (1), `?wait=10` selfie floods from one account (4), poison 16-bit PNGs of 16 and 36 MP "
    "(1), oversized bodies (1); plus a health probe every 0.2 s, from a thread of the load clients and from a process "
    "of its own."
)
LOCKOUT_DETAIL = "Too many failed logins"
#: The password-guessing client (its answers count the passwords the server checked).
TOKEN_GUESSING = "hostile: POST /api/auth/token/ (spoofed XFF)"
#: Failed logins per username before the lockout (``FEEDMOOD_LOGIN_MAX_FAILURES``), set for the server.
LOGIN_MAX_FAILURES = 10
ADMIN_REFUSED = "Please enter the correct username and password"


def is_hostile(name: str) -> bool:
    return name.startswith("hostile") or name in (HEALTH, HEALTH_OWN_PROCESS)


def start_own_process_probe(base: str, seconds: float, out: str) -> subprocess.Popen:
    """The same probe (every 0.2 s, a new connection each time) from a process of its own for ``seconds``;
    it writes ``[[milliseconds, status], ...]`` to ``out`` (status 0: no answer)."""
    return subprocess.Popen([sys.executable, __file__, "probe", base, str(seconds), out])


def _probe_main(base: str, seconds: float, out: str) -> None:
    samples = []
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        try:
            status = requests.get(f"{base}/api/health/", headers={"Connection": "close"}, timeout=30).status_code
        except requests.RequestException:
            status = 0
        samples.append([(time.perf_counter() - t0) * 1000.0, status])
        time.sleep(0.2)
    with open(out, "w") as f:
        json.dump(samples, f)


def record_own_process_probe(stats: Any, out: str) -> None:
    """Add the own-process probe's samples to ``stats`` (as ``HEALTH_OWN_PROCESS``)."""
    with open(out) as f:
        samples = json.load(f)
    with stats.lock:
        for ms, status in samples:
            stats.lat[HEALTH_OWN_PROCESS].append(ms)
            if status:
                stats.status_counts[HEALTH_OWN_PROCESS][status] += 1
                stats.server_errors += status >= 500
            if status != 200:
                stats.errors[HEALTH_OWN_PROCESS] += 1


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
        if pause:
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


def _token_outcome(r: requests.Response) -> str:
    if r.status_code == 429:
        return "429 lockout" if LOCKOUT_DETAIL in r.text else "429 rate limit"
    return {400: "400 password checked", 200: "200 LOGGED IN"}.get(r.status_code, str(r.status_code))


def _form_token(html: str) -> str:
    m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    return m.group(1) if m else ""


def start_hostile_clients(base: str, victim: str, staff: str, stop_at: float, stats: Any) -> list[threading.Thread]:
    """Start every hostile client (daemon threads).

    ``victim`` is a real username whose password is guessed on the token endpoint, ``staff`` a
    staff username guessed on the admin login.
    """
    flood_auth = {"Authorization": f"Token {_account(base)}"}
    poison_auth = {"Authorization": f"Token {_account(base)}"}
    oversized_token = _account(base)
    oversized_auth = {"Authorization": f"Token {oversized_token}"}
    rng = random.Random(27)
    anon = requests.Session()
    big16, huge16 = _gradient_png(4000), _gradient_png(6000)

    def guess() -> None:
        name = TOKEN_GUESSING
        spoofed = f"{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        r = _timed(
            stats,
            name,
            (400, 429),
            lambda: anon.post(
                f"{base}/api/auth/token/",
                json={"username": victim, "password": os.urandom(6).hex()},
                headers={"X-Forwarded-For": spoofed},
                timeout=30,
            ),
        )
        if r is not None:
            stats.note(name, _token_outcome(r))

    admin = requests.Session()

    def admin_guess() -> None:
        form = _timed(
            stats, "hostile: GET /admin/login/", (200,), lambda: admin.get(f"{base}/admin/login/", timeout=30)
        )
        if form is None or form.status_code != 200:
            return
        name = "hostile: POST /admin/login/"
        r = _timed(
            stats,
            name,
            (200,),
            lambda: admin.post(
                f"{base}/admin/login/",
                data={
                    "username": staff,
                    "password": os.urandom(6).hex(),
                    "csrfmiddlewaretoken": _form_token(form.text),
                },
                allow_redirects=False,
                timeout=30,
            ),
        )
        if r is not None:
            refused = r.status_code == 200 and ADMIN_REFUSED in r.text
            stats.note(name, "refused (login form again)" if refused else f"{r.status_code} (not refused)")

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
                headers=flood_auth,
                timeout=60,
            ),
        )

    def poison() -> None:
        _timed(
            stats,
            "hostile: POST /api/selfies/ (16-bit 4000x4000)",
            (202, 429),
            lambda: requests.post(
                f"{base}/api/selfies/", files={"image": ("p.png", big16, "image/png")}, headers=poison_auth, timeout=60
            ),
        )
        _timed(
            stats,
            "hostile: POST /api/posts/ (16-bit 6000x6000)",
            (201, 429),
            lambda: requests.post(
                f"{base}/api/posts/", files={"image": ("p.png", huge16, "image/png")}, headers=poison_auth, timeout=60
            ),
        )

    def oversized() -> None:
        t0 = time.perf_counter()
        try:
            response = _raw_huge_post(base, oversized_token)
            stats.record("hostile: POST /api/posts/ (300 MiB announced)", t0, response, (413,))
        except OSError as exc:
            stats.record("hostile: POST /api/posts/ (300 MiB announced)", t0, None, (413,), exc)
        _timed(
            stats,
            "hostile: POST /api/posts/ (3 MB form field)",
            (413, 429),
            lambda: requests.post(
                f"{base}/api/posts/", files={"text": (None, "a" * 3_000_000)}, headers=oversized_auth, timeout=60
            ),
        )
        _timed(
            stats,
            "hostile: PATCH /api/me/ (1,001 fields)",
            (400, 429),
            lambda: requests.patch(
                f"{base}/api/me/",
                data="&".join(f"f{i}=1" for i in range(1001)),
                headers={**oversized_auth, "Content-Type": "application/x-www-form-urlencoded"},
                timeout=60,
            ),
        )

    def health() -> None:
        # A new connection each time, as kubelet and Docker health checks do (no keep-alive pinning the
        # probe to one server process).
        _timed(
            stats,
            HEALTH,
            (200,),
            lambda: requests.get(f"{base}/api/health/", headers={"Connection": "close"}, timeout=30),
        )

    plan = [(guess, 0.0), (admin_guess, 0.0), (poison, 0.0), (oversized, 0.0), (health, 0.2)]
    plan += [(flood, 0.0)] * 4
    threads = [threading.Thread(target=_loop, args=(stop_at, pause, step), daemon=True) for step, pause in plan]
    for thread in threads:
        thread.start()
    return threads


def _request(
    base: str, method: str, path: str, body: str = "", headers: dict[str, str] | None = None
) -> tuple[int, http.client.HTTPMessage, str]:
    """One request from ``CHECK_ADDRESS``: a fresh client as far as rate limits and address lockouts go."""
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30, source_address=(CHECK_ADDRESS, 0))
    try:
        conn.request(method, path, body=body.encode() if body else None, headers=headers or {})
        r = conn.getresponse()
        return r.status, r.headers, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def _token_login(base: str, username: str, password: str) -> tuple[int, str]:
    status, _, text = _request(
        base,
        "POST",
        "/api/auth/token/",
        json.dumps({"username": username, "password": password}),
        {"Content-Type": "application/json"},
    )
    return status, text


def lockout_checks(
    base: str, *, victim: str, staff: str, control: str, control_password: str, checked: int, max_failures: int
) -> list[dict]:
    """After the guessing: a control account logs in; the guesser tested at most ``max_failures`` of the victim's
    passwords (``checked``), and if it reached that limit the victim's right password is refused. Below the limit
    the guesser's address was locked out first (its failures on the admin login count too): the account stays
    open to its owner, as it should. The staff account guessed on the admin login is refused its right password."""
    checks = []
    status, text = _token_login(base, control, control_password)
    checks.append({"check": "control user, right password, token endpoint", "status": status, "passed": status == 200})
    status, text = _token_login(base, victim, control_password)
    locked = status == 429 and LOCKOUT_DETAIL in text
    checks.append(
        {
            "check": f"guessed user ({checked} passwords checked, limit {max_failures}), right password, token endpoint",
            "status": status,
            "detail": text[:120],
            "passed": checked <= max_failures and (locked if checked >= max_failures else status == 200),
        }
    )
    status, headers, text = _request(base, "GET", "/admin/login/")
    cookie = "; ".join(c.split(";", 1)[0] for c in headers.get_all("Set-Cookie") or [])
    form = urlencode({"username": staff, "password": STAFF_PASSWORD, "csrfmiddlewaretoken": _form_token(text)})
    status, headers, text = _request(
        base,
        "POST",
        "/admin/login/",
        form,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie},
    )
    checks.append(
        {
            "check": "guessed staff account, right password, admin login",
            "status": status,
            "passed": status == 200 and ADMIN_REFUSED in text,
        }
    )
    return checks


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
        "Hostile clients and the probe (status codes; what the answers meant):",
        "",
        "| client | requests | p50 ms | p95 ms | status codes | outcomes |",
        "|---|---|---|---|---|---|",
    ]
    for name, codes in result["status_counts"].items():
        if is_hostile(name):
            e = result["endpoints"].get(name, {})
            outcomes = result["outcomes"].get(name, {})
            lines.append(
                f"| `{name}` | {e.get('requests')} | {e.get('p50_ms')} | {e.get('p95_ms')} "
                f"| {dict(sorted(codes.items()))} | {outcomes or ''} |"
            )
    lines += ["", f"Analyses of the hostile accounts' uploads: {result['hostile']['hostile_analysis_statuses']}."]
    lines += ["", "Lockout, checked after the run from another address (its own rate-limit and address buckets):", ""]
    lines += [
        f"- {c['check']}: {c['status']} -> {'as expected' if c['passed'] else '**NOT as expected**'}"
        for c in result.get("lockout_checks", [])
    ]
    return lines


if __name__ == "__main__" and sys.argv[1:2] == ["probe"]:
    _probe_main(sys.argv[2], float(sys.argv[3]), sys.argv[4])
