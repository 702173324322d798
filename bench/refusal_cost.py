"""Server CPU per request of the hostile clients of ``bench/load_test.py`` and of the health probe, in-process.

Drives the whole Django stack (middleware, sessions, DRF, token authentication, throttles, the view)
with Django's test client, DEBUG=0 and the production rates, on PostgreSQL and a Redis cache, and
measures each request's CPU time in this thread (the client's own share included, the same for both
modes; gunicorn's HTTP parsing and PostgreSQL's backend are not), its wall time, SQL queries and
Redis round trips (one command or pipeline sent). Each client's throttle windows are filled first
(histories written to the cache as the throttles keep them), so its requests are refused as in the
load test. Two modes in the same run: ``stack`` (``FEEDMOOD_REFUSAL_BOX_SIZE=0``: every refusal
goes through the whole stack) and ``box`` (the default: refusals answered from the refusal box).

Usage::

    .venv/bin/python bench/refusal_cost.py --db fm_refusal_cost --redis-db 7 [--n 300]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _environment(db_url: str, redis_url: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "SECRET_KEY": "refusal-cost-bench-secret-key-not-for-production-0123456789",
        "ALLOWED_HOSTS": "testserver,127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_HSTS_SECONDS": "0",
        "LOG_LEVEL": "ERROR",
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "CACHE_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="fm_refusal_cost")
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")
    ap.add_argument("--redis-db", type=int, default=7)
    ap.add_argument("--n", type=int, default=300, help="requests per client and mode")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "refusal_cost"))
    args = ap.parse_args()
    db_url, redis_url = f"{args.pg}/{args.db}", f"{args.redis}/{args.redis_db}"
    admin = f"{args.pg}/postgres"
    static = tempfile.mkdtemp(prefix="feedmood_refusal_static_")
    os.environ.update(_environment(db_url, redis_url), STATIC_ROOT=static)
    subprocess.run(["redis-cli", "-u", redis_url, "flushdb"], check=True, capture_output=True)
    subprocess.run(["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)'], check=True)
    subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{args.db}"'], check=True)
    try:
        for command in ("migrate", "collectstatic"):  # the admin pages need the static manifest
            subprocess.run([sys.executable, "manage.py", command, "--noinput", "-v", "0"], cwd=ROOT, check=True)
        result = measure(args.n)
    finally:
        shutil.rmtree(static, ignore_errors=True)
        subprocess.run(["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)'], check=False)
        subprocess.run(["redis-cli", "-u", redis_url, "flushdb"], check=False, capture_output=True)
    result["args"] = {**vars(args), "out": os.path.relpath(args.out, ROOT)}
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    lines = report(result)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def measure(n: int) -> dict[str, Any]:
    import django

    django.setup()
    import numpy as np
    import redis
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.client import MULTIPART_CONTENT, encode_multipart
    from django.test.utils import CaptureQueriesContext
    from PIL import Image

    from feedmood.accounts import token_issue

    trips = {"n": 0}
    send = redis.connection.AbstractConnection.send_packed_command

    def counting_send(self: Any, command: Any, check_health: bool = True) -> None:
        trips["n"] += 1
        return send(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = counting_send  # type: ignore[method-assign]

    users = get_user_model().objects
    staff = users.create_superuser("staff", "staff@example.com", "Staff-Password-42-bench")
    accounts = {name: users.create_user(name, password="Bench-Password-42") for name in ("flood", "poison", "big")}
    for user in accounts.values():
        user.profile.emotion_consent = True
        user.profile.save()
    tokens = {name: token_issue(user=user) for name, user in accounts.items()}

    def png16(side: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.tile(np.linspace(0, 65535, side, dtype=np.uint16), (side, 1))).save(buf, format="PNG")
        return buf.getvalue()

    jpeg = io.BytesIO()
    Image.new("RGB", (320, 240), (128, 128, 128)).save(jpeg, format="JPEG")
    multipart = {
        "selfie": encode_multipart("B", {"image": _file("s.jpg", jpeg.getvalue())}),
        "poison": encode_multipart("B", {"image": _file("p.png", png16(6000))}),
        "field": encode_multipart("B", {"text": "a" * 3_000_000}),
    }
    form = "&".join(f"f{i}=1" for i in range(1001))
    client = Client(REMOTE_ADDR="198.51.100.7")

    def fill(scope: str, ident: Any, count: int) -> None:
        now = time.time()
        cache.set(f"throttle_{scope}_{ident}", [now - i * 0.001 for i in range(count)], 60)

    def auth(name: str) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Token {tokens[name]}"}

    def upload(name: str, path: str, body: bytes) -> Callable[[], Any]:
        return lambda: client.post(path, body, content_type=f"{MULTIPART_CONTENT}; boundary=B", **auth(name))

    clients: list[tuple[str, Callable[[], None], Callable[[], Any]]] = [
        ("GET /api/health/ (probe)", lambda: None, lambda: client.get("/api/health/")),
        (
            "POST /api/selfies/?wait=10 (upload rate spent)",
            lambda: fill("uploads", accounts["flood"].pk, 60) or fill("user", accounts["flood"].pk, 500),
            upload("flood", "/api/selfies/?wait=10", multipart["selfie"]),
        ),
        (
            "POST /api/posts/ 16-bit 6000x6000 (upload rate spent)",
            lambda: fill("uploads", accounts["poison"].pk, 60) or fill("user", accounts["poison"].pk, 300),
            upload("poison", "/api/posts/", multipart["poison"]),
        ),
        (
            "POST /api/posts/ 3 MB field (upload rate spent)",
            lambda: fill("uploads", accounts["big"].pk, 60) or fill("user", accounts["big"].pk, 300),
            upload("big", "/api/posts/", multipart["field"]),
        ),
        (
            "POST /api/auth/token/ spoofed XFF (anon rate spent)",
            lambda: fill("anon", "198.51.100.7", 100),
            lambda: client.post(
                "/api/auth/token/",
                {"username": "flood", "password": os.urandom(6).hex()},
                content_type="application/json",
                HTTP_X_FORWARDED_FOR=f"10.{os.urandom(1)[0]}.0.1",
            ),
        ),
        (
            "PATCH /api/me/ 1,001 fields (400)",
            lambda: None,
            lambda: client.patch("/api/me/", form, content_type="application/x-www-form-urlencoded", **auth("big")),
        ),
        (
            "POST /api/posts/ 300 MiB announced (413)",
            lambda: None,
            lambda: client.post(
                "/api/posts/",
                b"--B\r\n",
                content_type="multipart/form-data; boundary=B",
                CONTENT_LENGTH=str(300 * 1024 * 1024),
                **auth("big"),
            ),
        ),
        ("GET /admin/login/", lambda: None, lambda: client.get("/admin/login/")),
        (
            "POST /admin/login/ (locked out)",
            lambda: None,
            lambda: client.post("/admin/login/", {"username": staff.username, "password": os.urandom(6).hex()}),
        ),
    ]
    for _ in range(12):  # lock the staff account out, as the guesser does in its first seconds
        client.post("/admin/login/", {"username": staff.username, "password": "wrong"})

    rows: dict[str, dict[str, Any]] = {}
    for mode, size in (("stack", 0), ("box", 4096)):
        with override_settings(FEEDMOOD_REFUSAL_BOX_SIZE=size):
            for name, prepare, call in clients:
                prepare()
                call()  # warm-up: caches, the box entry
                cpu, wall, statuses = [], [], {}
                trips["n"] = 0
                with CaptureQueriesContext(connection) as queries:
                    for _ in range(n):
                        t0, c0 = time.perf_counter(), time.thread_time()
                        status = call().status_code
                        cpu.append((time.thread_time() - c0) * 1000)
                        wall.append((time.perf_counter() - t0) * 1000)
                        statuses[status] = statuses.get(status, 0) + 1
                rows.setdefault(name, {})[mode] = {
                    "cpu_ms_mean": round(statistics.fmean(cpu), 3),
                    "cpu_ms_p50": round(statistics.median(cpu), 3),
                    "wall_ms_p50": round(statistics.median(wall), 3),
                    "sql_per_request": round(len(queries) / n, 2),
                    "redis_round_trips_per_request": round(trips["n"] / n, 2),
                    "statuses": statuses,
                }
    return {"requests_per_client_and_mode": n, "clients": rows, "cpus": os.cpu_count()}


def _file(name: str, data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def report(result: dict[str, Any]) -> list[str]:
    lines = [
        "# Server CPU of refused requests: whole stack vs refusal box",
        "",
        f"In-process (Django test client, DEBUG=0, production rates, PostgreSQL, Redis cache), "
        f"{result['requests_per_client_and_mode']} requests per client and mode after one warm-up, on "
        f"{result['cpus']} CPUs shared with other jobs. CPU is this thread's time per request (test client "
        "included, gunicorn's HTTP parsing and PostgreSQL's backend not). `stack`: every refusal goes through "
        "the whole stack (`FEEDMOOD_REFUSAL_BOX_SIZE=0`); `box`: refused clients answered from the refusal box.",
        "",
        "| client | mode | statuses | CPU ms mean | CPU ms p50 | wall ms p50 | SQL / req | Redis trips / req |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, modes in result["clients"].items():
        for mode, row in modes.items():
            lines.append(
                f"| {name} | {mode} | {row['statuses']} | {row['cpu_ms_mean']} | {row['cpu_ms_p50']} "
                f"| {row['wall_ms_p50']} | {row['sql_per_request']} | {row['redis_round_trips_per_request']} |"
            )
    return lines


if __name__ == "__main__":
    sys.exit(main())
