"""Per-request cost of ``GET /api/feed/`` in-process: Redis round trips, SQL queries, wall time.

Drives the whole Django stack (middleware, token authentication, throttles, the view) with
Django's test client on a database seeded by ``manage.py seed_feed`` (``--tokens-out``), for
three kinds of request, as ``bench/feed_scale.py`` sends them: ``fresh`` (``?refresh=true``: a new
ranking), ``page1`` (as clients call it: the recent snapshot and built page are reused) and ``page2``
(the user's next page by cursor).

A Redis round trip is one command or one pipeline sent on a connection.

Usage::

    DATABASE_URL=... REDIS_URL=... python bench/feed_requests.py TOKENS_JSON [--n 200] [--profile fresh]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
for name, value in {  # as bench/feed_scale.py serves the app
    "DEBUG": "0",
    "SECRET_KEY": "feed-requests-bench-secret-key-not-for-production-0123456789",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "0",
    "SECURE_HSTS_SECONDS": "0",
    "LOG_LEVEL": "WARNING",
    "FEEDMOOD_THROTTLE_USER": "10000000/min",
}.items():
    os.environ.setdefault(name, value)

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

ROUND_TRIPS = {"n": 0, "commands": []}
_send = redis.connection.AbstractConnection.send_packed_command


def _counting_send(self: Any, command: Any, check_health: bool = True) -> None:
    ROUND_TRIPS["n"] += 1
    return _send(self, command, check_health)


redis.connection.AbstractConnection.send_packed_command = _counting_send  # type: ignore[method-assign]


def request(client: Client, path: str, token: str) -> tuple[dict[str, Any], int, int, float]:
    """(body, Redis round trips, SQL queries, CPU ms of this process) of one GET."""
    ROUND_TRIPS["n"] = 0
    with CaptureQueriesContext(connection) as queries:
        t0 = time.process_time()
        response = client.get(path, HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
        ms = (time.process_time() - t0) * 1000.0
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.content[:300]!r}")
    return response.json(), ROUND_TRIPS["n"], len(queries), ms


def run(tokens: list[str], mode: str, n: int, client: Client) -> dict[str, Any]:
    cursors: dict[str, str] = {}
    for token in tokens:  # every user has a snapshot and a cursor before the timed requests
        body, *_ = request(client, "/api/feed/", token)
        cursors[token] = body["next"].split("cursor=", 1)[1]
    trips, queries, times = [], [], []
    for i in range(n):
        token = tokens[i % len(tokens)]
        path = {"fresh": "/api/feed/?refresh=true", "page1": "/api/feed/"}.get(
            mode, f"/api/feed/?cursor={cursors[token]}"
        )
        _, t, q, ms = request(client, path, token)
        trips.append(t)
        queries.append(q)
        times.append(ms)
    times.sort()
    return {
        "mode": mode,
        "n": n,
        "redis_round_trips": statistics.median(trips),
        "sql_queries": statistics.median(queries),
        "cpu_ms_median": round(statistics.median(times), 3),
        "cpu_ms_mean": round(statistics.fmean(times), 3),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tokens")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--modes", default="fresh,page1,page2")
    p.add_argument("--profile", default="", help="a mode to run under cProfile (top functions printed)")
    p.add_argument("--sort", default="tottime", help="cProfile sort key")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args()
    tokens = [b["token"] for b in json.loads(Path(args.tokens).read_text())["bench_users"]][:20]
    client = Client()
    results = [run(tokens, mode, args.n, client) for mode in args.modes.split(",")]
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        run(tokens, args.profile, args.n, client)
        prof.disable()
        pstats.Stats(prof, stream=sys.stderr).sort_stats(args.sort).print_stats(args.top)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
