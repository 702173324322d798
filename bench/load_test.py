"""End-to-end load test: gunicorn (DEBUG=0) + PostgreSQL + a real Celery worker on Redis.

One command::

    .venv/bin/python bench/load_test.py --duration 60 --users 20

1. creates a fresh PostgreSQL database (``--db``, default ``feedmood_load``) and migrates it;
2. registers and activates the shipped emotion model;
3. starts gunicorn (2 workers, gthread, DEBUG=0, production settings from the environment,
   SSL redirect off because this is plain HTTP on loopback) and a Celery worker
   (queues fer,default,batch) on a private Redis database (``--redis-db``) so no other
   worker on the same Redis can take its tasks;
4. seeds users over the API (signup, consent, follows, a first post each);
5. runs ``--users`` concurrent clients (threads, keep-alive ``requests`` sessions) for
   ``--duration`` seconds: read the feed, list posts, post text, post an image, upload a
   selfie, like, read the own mood, poll an analysis; alongside, hostile clients
   (``--hostile``, on by default; ``bench/hostile.py``): password guessing with a spoofed
   ``X-Forwarded-For``, ``?wait=10`` floods, poison images (16-bit PNGs of 16 and 36
   megapixels), oversized bodies (300 MiB announced, 3 MB fields, 1,001 fields), and a
   health probe every 0.2 s;
6. waits for the queue to drain and checks that every upload got a final analysis and that
   no response was a 5xx;
7. writes ``bench/results/load_test.json`` and ``.md`` (requests/s, p50/p95/p99 per
   endpoint, errors, ``os.getloadavg()``), stops everything and drops the database.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import hostile  # noqa: E402

PY = sys.executable
RESULTS = ROOT / "bench" / "results"


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100.0 * (len(values) - 1))))
    return round(values[k], 1)


def images() -> tuple[bytes, bytes]:
    sys.path.insert(0, str(ROOT))
    from emotion import testing

    face = testing.one_face_jpeg(320, 240)
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 160, 200)).save(buf, format="PNG")
    return face, buf.getvalue()


def psql(admin_url: str, sql: str) -> None:
    subprocess.run(["psql", admin_url, "-v", "ON_ERROR_STOP=1", "-qc", sql], check=True, capture_output=True)


def query(db_url: str, sql: str) -> list[tuple]:
    import psycopg

    with psycopg.connect(db_url) as conn:
        return conn.execute(sql).fetchall()


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lat: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.selfie_ids: list[int] = []
        self.image_posts = 0
        self.server_errors = 0
        self.status_counts: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))

    def record(
        self,
        name: str,
        started: float,
        response: requests.Response | None,
        ok: tuple[int, ...],
        exc: Exception | None = None,
    ) -> None:
        ms = (time.perf_counter() - started) * 1000.0
        with self.lock:
            self.lat[name].append(ms)
            if response is not None:
                self.status_counts[name][response.status_code] += 1
                self.server_errors += response.status_code >= 500
            if exc is not None or response is None or response.status_code not in ok:
                self.errors[name] += 1
                if len(self.error_samples) < 20:
                    self.error_samples.append(f"{name}: {exc or (response.status_code, response.text[:200])}")


def client_loop(
    base: str, token: str, usernames: list[str], stop_at: float, stats: Stats, face: bytes, png: bytes, seed: int
) -> None:
    rng = random.Random(seed)
    s = requests.Session()
    s.headers["Authorization"] = f"Token {token}"
    post_ids: list[int] = []
    actions = [
        ("feed", 40),
        ("posts_list", 15),
        ("post_text", 12),
        ("post_image", 6),
        ("selfie", 8),
        ("like", 8),
        ("mood", 6),
        ("analysis", 5),
    ]
    names, weights = zip(*actions)
    while time.monotonic() < stop_at:
        action = rng.choices(names, weights)[0]
        t0 = time.perf_counter()
        r = None
        try:
            if action == "feed":
                r = s.get(f"{base}/api/feed/", timeout=30)
                stats.record("GET /api/feed/", t0, r, (200,))
                if r.status_code == 200:
                    items = r.json().get("results") or r.json().get("items") or []
                    post_ids.extend(
                        i.get("id") or (i.get("post") or {}).get("id") for i in items[:5] if isinstance(i, dict)
                    )
            elif action == "posts_list":
                r = s.get(f"{base}/api/posts/?following=true", timeout=30)
                stats.record("GET /api/posts/", t0, r, (200,))
                if r.status_code == 200:
                    post_ids.extend(p["id"] for p in r.json()["results"][:5])
            elif action == "post_text":
                r = s.post(f"{base}/api/posts/", json={"text": f"load {rng.random():.6f} ✓ ünïcödé"}, timeout=30)
                stats.record("POST /api/posts/ (text)", t0, r, (201,))
            elif action == "post_image":
                r = s.post(
                    f"{base}/api/posts/", data={"text": "pic"}, files={"image": ("p.png", png, "image/png")}, timeout=30
                )
                stats.record("POST /api/posts/ (image)", t0, r, (201,))
                if r.status_code == 201:
                    with stats.lock:
                        stats.image_posts += 1
            elif action == "selfie":
                r = s.post(f"{base}/api/selfies/", files={"image": ("s.jpg", face, "image/jpeg")}, timeout=30)
                stats.record("POST /api/selfies/", t0, r, (200, 201, 202))
                if r.status_code in (200, 201, 202):
                    with stats.lock:
                        stats.selfie_ids.append(r.json()["id"])
            elif action == "like":
                pid = rng.choice([p for p in post_ids if p] or [0]) if post_ids else None
                if pid:
                    r = s.post(f"{base}/api/posts/{pid}/like/", timeout=30)
                    stats.record("POST /api/posts/<id>/like/", t0, r, (200, 201))
            elif action == "mood":
                r = s.get(f"{base}/api/me/mood/", timeout=30)
                stats.record("GET /api/me/mood/", t0, r, (200,))
            elif action == "analysis":
                with stats.lock:
                    mine = stats.selfie_ids[-1] if stats.selfie_ids else None
                if mine:
                    r = s.get(f"{base}/api/analyses/{mine}/", timeout=30)
                    # Another client's analysis: 404 is the correct answer (owner only).
                    stats.record("GET /api/analyses/<id>/", t0, r, (200, 404))
        except requests.RequestException as exc:
            stats.record(action, t0, None, (), exc)
        if len(post_ids) > 200:
            del post_ids[:100]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--users", type=int, default=20, help="concurrent clients (each its own account)")
    ap.add_argument("--db", default="feedmood_load")
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")
    ap.add_argument("--redis-db", type=int, default=11)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--celery-concurrency", type=int, default=1)
    ap.add_argument("--drain-timeout", type=float, default=300)
    ap.add_argument("--out", default=str(RESULTS / "load_test"))
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument("--no-hostile", dest="hostile", action="store_false", help="legitimate clients only")
    args = ap.parse_args()

    admin = f"{args.pg}/postgres"
    db_url = f"{args.pg}/{args.db}"
    broker = f"{args.redis}/{args.redis_db}"
    media = tempfile.mkdtemp(prefix="feedmood_load_media_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY="load-test-" + os.urandom(24).hex(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="0",
        DATABASE_URL=db_url,
        CSRF_COOKIE_SECURE="0",
        SESSION_COOKIE_SECURE="0",  # plain HTTP on loopback: the admin login needs its cookies
        CELERY_BROKER_URL=broker,
        REDIS_URL=broker,
        CACHE_URL=broker,
        MEDIA_ROOT=media,
        FEEDMOOD_THROTTLE_USER="100000/min",
        FEEDMOOD_THROTTLE_UPLOADS="600/min",
        # Real limits for the anonymous endpoints the hostile clients attack (seeding signs up from one address).
        FEEDMOOD_THROTTLE_ANON="60/min",
        FEEDMOOD_THROTTLE_SIGNUP="1000/hour",
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="WARNING",
    )
    face, png = images()
    subprocess.run(["redis-cli", "-u", broker, "flushdb"], check=False, capture_output=True)
    psql(admin, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
    psql(admin, f'CREATE DATABASE "{args.db}"')
    procs: list[subprocess.Popen] = []
    logs = {
        "gunicorn": Path(tempfile.gettempdir()) / "feedmood_load_gunicorn.log",
        "worker": Path(tempfile.gettempdir()) / "feedmood_load_worker.log",
    }
    recorded_args = {**vars(args), "out": os.path.relpath(args.out, ROOT)}  # no machine paths in results
    result: dict[str, Any] = {
        "args": recorded_args,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    try:
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [PY, "manage.py", "register_model", str(ROOT / "ml" / "artifacts" / "ferplus"), "--activate"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        procs.append(
            subprocess.Popen(
                [
                    PY,
                    "-m",
                    "gunicorn",
                    "config.wsgi:application",
                    "-b",
                    f"127.0.0.1:{args.port}",
                    "-w",
                    str(args.workers),
                    "-k",
                    "gthread",
                    "--threads",
                    str(args.threads),
                    "--keep-alive",
                    "30",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=env,
                stdout=open(logs["gunicorn"], "w"),  # noqa: SIM115 (the server writes to it until it is stopped)
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    "fer,default,batch",
                    "-c",
                    str(args.celery_concurrency),
                    "--loglevel=WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "-n",
                    f"load-{os.getpid()}@%h",
                ],
                cwd=ROOT,
                env=env,
                stdout=open(logs["worker"], "w"),  # noqa: SIM115 (the worker writes to it until it is stopped)
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        base = f"http://127.0.0.1:{args.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/api/health/", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RuntimeError("gunicorn did not become healthy:\n" + logs["gunicorn"].read_text()[-3000:])
            time.sleep(0.3)

        # Seed: users with consent, everyone follows a few others, one post each.
        tokens, usernames = [], []
        tag = os.urandom(3).hex()
        for i in range(args.users):
            name = f"load{tag}{i}"
            r = requests.post(
                f"{base}/api/auth/signup/", json={"username": name, "password": "Load-Test-Password-42"}, timeout=30
            )
            r.raise_for_status()
            tokens.append(r.json()["token"])
            usernames.append(name)
        for i, token in enumerate(tokens):
            h = {"Authorization": f"Token {token}"}
            requests.patch(
                f"{base}/api/me/", json={"emotion_consent": True, "mood_policy": "repair"}, headers=h, timeout=30
            ).raise_for_status()
            for other in random.Random(i).sample(usernames, min(5, len(usernames))):
                if other != usernames[i]:
                    requests.post(f"{base}/api/users/{other}/follow/", headers=h, timeout=30).raise_for_status()
            requests.post(
                f"{base}/api/posts/", json={"text": f"hello from {usernames[i]}"}, headers=h, timeout=30
            ).raise_for_status()

        stats = Stats()
        print(f"running {args.users} clients for {args.duration}s against {base} ...", flush=True)
        started = time.monotonic()
        stop_at = started + args.duration
        threads = [
            threading.Thread(
                target=client_loop, args=(base, tokens[i], usernames, stop_at, stats, face, png, i), daemon=True
            )
            for i in range(args.users)
        ]
        for t in threads:
            t.start()
        if args.hostile:
            threads += hostile.start_hostile_clients(base, usernames[0], stop_at, stats)  # already started
        for t in threads:
            t.join(timeout=args.duration + 120)
        elapsed = time.monotonic() - started
        result["loadavg_after_run"] = os.getloadavg()

        # Drain: every upload (selfie or post image) must end with a final analysis.
        t0 = time.monotonic()
        expected_uploads = len(stats.selfie_ids) + stats.image_posts
        counts: dict[str, int] = {}
        while time.monotonic() - t0 < args.drain_timeout:
            counts = dict(query(db_url, "SELECT status, count(*) FROM emotion_imageanalysis GROUP BY status"))
            if sum(counts.values()) >= expected_uploads and not counts.get("pending") and not counts.get("processing"):
                break
            time.sleep(1)
        drain_s = time.monotonic() - t0
        selfies_final = query(
            db_url,
            "SELECT count(*) FROM emotion_imageanalysis WHERE source='selfie' AND status IN ('done','no_face','failed') "
            "AND owner_id NOT IN (SELECT id FROM auth_user WHERE username LIKE 'hostile%%')",
        )[0][0]
        posts_final = query(
            db_url,
            "SELECT count(*) FROM emotion_imageanalysis WHERE source='post' AND status IN ('done','no_face','failed') "
            "AND owner_id NOT IN (SELECT id FROM auth_user WHERE username LIKE 'hostile%%')",
        )[0][0]
        dup = query(
            db_url,
            "SELECT count(*) FROM (SELECT analysis_id, model_version_id, face_index FROM emotion_facereading "
            "GROUP BY 1,2,3 HAVING count(*) > 1) d",
        )[0][0]
        worker_alive = procs[1].poll() is None

        per_endpoint = {}
        total = 0
        for name, lat in sorted(stats.lat.items()):
            total += len(lat)
            per_endpoint[name] = {
                "requests": len(lat),
                "rps": round(len(lat) / elapsed, 2),
                "p50_ms": pct(lat, 50),
                "p95_ms": pct(lat, 95),
                "p99_ms": pct(lat, 99),
                "max_ms": round(max(lat), 1),
                "errors": stats.errors.get(name, 0),
            }
        all_lat = [x for lat in stats.lat.values() for x in lat]
        result.update(
            duration_s=round(elapsed, 1),
            users=args.users,
            total_requests=total,
            rps=round(total / elapsed, 2),
            p50_ms=pct(all_lat, 50),
            p95_ms=pct(all_lat, 95),
            p99_ms=pct(all_lat, 99),
            errors=sum(stats.errors.values()),
            error_samples=stats.error_samples,
            endpoints=per_endpoint,
            uploads={
                "selfies_accepted": len(stats.selfie_ids),
                "selfies_final": selfies_final,
                "image_posts": stats.image_posts,
                "post_analyses_final": posts_final,
                "analysis_status_counts": counts,
                "duplicate_readings": dup,
                "drain_s": round(drain_s, 1),
                "every_upload_analysed": selfies_final == len(stats.selfie_ids) and posts_final == stats.image_posts,
            },
            worker_alive=worker_alive,
            loadavg_end=os.getloadavg(),
            server_errors=stats.server_errors,
            status_counts={name: dict(codes) for name, codes in sorted(stats.status_counts.items())},
            health_p95_ms=pct(stats.lat.get(hostile.HEALTH, []), 95),
        )
        if args.hostile:
            result["hostile"] = hostile.summary(db_url, stats)
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
        if not args.keep_db:
            with contextlib.suppress(subprocess.CalledProcessError):
                psql(admin, f'DROP DATABASE IF EXISTS "{args.db}" WITH (FORCE)')
        subprocess.run(["redis-cli", "-u", broker, "flushdb"], check=False, capture_output=True)
        subprocess.run(["rm", "-rf", media], check=False)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    lines = [
        f"# Load test ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"gunicorn {args.workers}x{args.threads} gthread (DEBUG=0) + PostgreSQL + Celery worker (-c {args.celery_concurrency}) on Redis, "
        f"{args.users} concurrent clients for {result['duration_s']} s on loopback, {os.cpu_count()} CPUs, "
        f"loadavg before {tuple(round(x, 2) for x in result['loadavg_before'])}, after run {tuple(round(x, 2) for x in result['loadavg_after_run'])} "
        "(other jobs share the machine).",
        "",
        f"**{result['total_requests']} requests, {result['rps']} req/s, p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, "
        f"p99 {result['p99_ms']} ms, errors {result['errors']}.**",
        "",
        "| endpoint | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in result["endpoints"].items():
        lines.append(
            f"| `{name}` | {e['requests']} | {e['rps']} | {e['p50_ms']} | {e['p95_ms']} | {e['p99_ms']} | {e['max_ms']} | {e['errors']} |"
        )
    u = result["uploads"]
    lines += [
        "",
        f"Uploads: {u['selfies_accepted']} selfies accepted, {u['selfies_final']} with a final analysis; "
        f"{u['image_posts']} image posts, {u['post_analyses_final']} post analyses final; statuses {u['analysis_status_counts']}; "
        f"duplicate readings {u['duplicate_readings']}; queue drained {u['drain_s']} s after the run; "
        f"every upload analysed: **{u['every_upload_analysed']}**; worker alive: {result['worker_alive']}.",
    ]
    lines += [
        "",
        f"**Server errors (5xx) over all clients: {result['server_errors']}; health p95 {result['health_p95_ms']} ms.**",
    ]
    if args.hostile:
        lines += hostile.summary_lines(result)
    if result["error_samples"]:
        lines += ["", "Error samples:", *[f"- {e}" for e in result["error_samples"]]]
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    healthy = result["health_p95_ms"] is not None and result["health_p95_ms"] < 100
    ok = result["errors"] == 0 and u["every_upload_analysed"] and u["duplicate_readings"] == 0
    return 0 if ok and result["server_errors"] == 0 and (healthy or not args.hostile) else 1


if __name__ == "__main__":
    sys.exit(main())
