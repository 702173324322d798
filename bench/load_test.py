"""End-to-end load test: gunicorn (DEBUG=0) + PostgreSQL + a real Celery worker on Redis.

One command::

    .venv/bin/python bench/load_test.py --duration 600 --capacity-seconds 60 --rate-fraction 0.5

1. creates a fresh PostgreSQL database (``--db``) and migrates it, collects the static files
   (as the image build does: the admin pages need their manifest), registers and activates the
   shipped emotion model;
2. starts gunicorn as in production (``--workers 4 --threads 2 --timeout 60``, gthread, DEBUG=0,
   the production throttles; SSL redirect and secure cookies off because this is plain HTTP on
   loopback) and a Celery worker (queues fer,default,batch) on a private Redis database
   (``--redis-db``) so no other worker on the same Redis can take its tasks;
3. seeds ``--users`` accounts over the API (signup, consent, follows, a first post each) and a
   staff account (the admin-login guesser's target);
4. capacity: ``--capacity-clients`` closed-loop clients (each sends its next request as soon as
   the previous one is answered) run the legitimate mix alone for ``--capacity-seconds``; their
   answered requests/s is the measured capacity; the queue is then drained;
5. the run: legitimate requests arrive open-loop (Poisson) at ``--rate-fraction`` of that
   capacity (or ``--rate``) for ``--duration`` s, each from a random account: read the feed,
   list posts, post text, post an image, upload a selfie, like, read the own mood, poll an
   analysis; alongside, the hostile clients of ``bench/hostile.py`` as fast as they can go
   (``--no-hostile`` leaves them out) and a health probe every 0.2 s;
6. waits for the queue to drain and checks that every legitimate upload got a final analysis,
   that no response was a 5xx and that the health probe's p95 is under 100 ms;
7. writes ``--out``.json and .md, stops everything and drops the database.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import queue
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import hostile  # noqa: E402

PY = sys.executable
RESULTS = ROOT / "bench" / "results"
LEGIT_PASSWORD = "Load-Test-Password-42"


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
        self.outcomes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def note(self, name: str, outcome: str) -> None:
        """Count what an answer meant (e.g. a 429 from the lockout rather than the rate limit)."""
        with self.lock:
            self.outcomes[name][outcome] += 1

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


ACTIONS = [
    ("feed", 40),
    ("posts_list", 15),
    ("post_text", 12),
    ("post_image", 6),
    ("selfie", 8),
    ("like", 8),
    ("mood", 6),
    ("analysis", 5),
]


class Seen:
    """Post ids the legitimate clients have seen (targets for likes), shared by every client thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.post_ids: list[int] = []

    def add(self, ids: list[Any]) -> None:
        with self.lock:
            self.post_ids.extend(i for i in ids if isinstance(i, int))
            if len(self.post_ids) > 400:
                del self.post_ids[:200]

    def pick(self, rng: random.Random) -> int | None:
        with self.lock:
            return rng.choice(self.post_ids) if self.post_ids else None


@dataclass(frozen=True)
class Target:
    """The server under test and the images the legitimate clients upload."""

    base: str
    face: bytes  # a JPEG with one face (selfies)
    png: bytes  # a plain PNG (post images)


def do_action(
    s: requests.Session,
    t: Target,
    token: str,
    action: str,
    started: float,
    rng: random.Random,
    stats: Stats,
    seen: Seen,
) -> None:
    """One legitimate request as ``token``'s user; latency counted from ``started`` (perf_counter)."""
    base, face, png = t.base, t.face, t.png
    h = {"Authorization": f"Token {token}"}
    try:
        if action == "feed":
            r = s.get(f"{base}/api/feed/", headers=h, timeout=30)
            stats.record("GET /api/feed/", started, r, (200,))
            if r.status_code == 200:
                items = r.json().get("results") or r.json().get("items") or []
                seen.add([i.get("id") or (i.get("post") or {}).get("id") for i in items[:5] if isinstance(i, dict)])
        elif action == "posts_list":
            r = s.get(f"{base}/api/posts/?following=true", headers=h, timeout=30)
            stats.record("GET /api/posts/", started, r, (200,))
            if r.status_code == 200:
                seen.add([p["id"] for p in r.json()["results"][:5]])
        elif action == "post_text":
            r = s.post(f"{base}/api/posts/", json={"text": f"load {rng.random():.6f} ✓ ünïcödé"}, headers=h, timeout=30)
            stats.record("POST /api/posts/ (text)", started, r, (201,))
        elif action == "post_image":
            files = {"image": ("p.png", png, "image/png")}
            r = s.post(f"{base}/api/posts/", data={"text": "pic"}, files=files, headers=h, timeout=30)
            stats.record("POST /api/posts/ (image)", started, r, (201,))
            if r.status_code == 201:
                with stats.lock:
                    stats.image_posts += 1
        elif action == "selfie":
            r = s.post(f"{base}/api/selfies/", files={"image": ("s.jpg", face, "image/jpeg")}, headers=h, timeout=30)
            stats.record("POST /api/selfies/", started, r, (200, 201, 202))
            if r.status_code in (200, 201, 202):
                with stats.lock:
                    stats.selfie_ids.append(r.json()["id"])
        elif action == "like":
            pid = seen.pick(rng)
            if pid:
                r = s.post(f"{base}/api/posts/{pid}/like/", headers=h, timeout=30)
                stats.record("POST /api/posts/<id>/like/", started, r, (200, 201))
        elif action == "mood":
            r = s.get(f"{base}/api/me/mood/", headers=h, timeout=30)
            stats.record("GET /api/me/mood/", started, r, (200,))
        elif action == "analysis":
            with stats.lock:
                latest = stats.selfie_ids[-1] if stats.selfie_ids else None
            if latest:
                r = s.get(f"{base}/api/analyses/{latest}/", headers=h, timeout=30)
                # Often another client's analysis: 404 is the correct answer (owner only).
                stats.record("GET /api/analyses/<id>/", started, r, (200, 404))
    except requests.RequestException as exc:
        stats.record(action, started, None, (), exc)


def closed_loop(t: Target, tokens: list[str], stop_at: float, stats: Stats, seen: Seen, seed: int) -> None:
    """One client sending its next request as soon as the previous one is answered (saturation).

    Each request is from a random account, as in the open-loop run: no account hits its own rate limits.
    """
    rng = random.Random(seed)
    s = requests.Session()
    names, weights = zip(*ACTIONS)
    while time.monotonic() < stop_at:
        do_action(s, t, rng.choice(tokens), rng.choices(names, weights)[0], time.perf_counter(), rng, stats, seen)


def open_loop(
    t: Target, tokens: list[str], rate: float, duration: float, stats: Stats, seen: Seen, seed: int, pool: int = 48
) -> float:
    """Poisson arrivals at ``rate`` requests/s for ``duration`` s, each from a random user.

    Open loop: an arrival does not wait for earlier answers, and latency is counted from the
    scheduled arrival time, so a slow server is charged for the queue it causes (no coordinated
    omission). Returns the largest lateness of a send behind its schedule (client pool saturation).
    """
    rng = random.Random(seed)
    names, weights = zip(*ACTIONS)
    arrivals: queue.Queue[tuple[float, str, str] | None] = queue.Queue()
    lateness = [0.0]

    def sender(i: int) -> None:
        s = requests.Session()
        r = random.Random(seed * 1000 + i)
        while (item := arrivals.get()) is not None:
            at, token, action = item
            lateness[0] = max(lateness[0], time.perf_counter() - at)
            do_action(s, t, token, action, at, r, stats, seen)

    threads = [threading.Thread(target=sender, args=(i,), daemon=True) for i in range(pool)]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    at = start
    while True:
        at += rng.expovariate(rate)
        if at - start > duration:
            break
        time.sleep(max(0.0, at - time.perf_counter()))
        arrivals.put((at, rng.choice(tokens), rng.choices(names, weights)[0]))
    for _ in threads:
        arrivals.put(None)
    for thread in threads:
        thread.join(timeout=120)
    return lateness[0]


def endpoint_table(stats: Stats, elapsed: float) -> dict[str, dict[str, Any]]:
    table = {}
    for name, lat in sorted(stats.lat.items()):
        table[name] = {
            "requests": len(lat),
            "rps": round(len(lat) / elapsed, 2),
            "p50_ms": pct(lat, 50),
            "p95_ms": pct(lat, 95),
            "p99_ms": pct(lat, 99),
            "max_ms": round(max(lat), 1),
            "errors": stats.errors.get(name, 0),
        }
    return table


def _proc_cpu(wanted: Callable[[int, Path], bool]) -> dict[int, float]:
    """CPU seconds (user + system, and of reaped children) of each live process ``wanted(pgid, proc_dir)`` picks."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after the command: state, ppid, pgrp, ...
            if wanted(int(fields[2]), stat.parent):
                found[int(stat.parent.name)] = sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return found


def _machine_busy() -> float:
    cpu = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(cpu) - cpu[3] - cpu[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


class CpuMeter:
    """CPU seconds used between ``start()`` and ``stop()`` by the server process groups, this database's
    PostgreSQL backends (sampled every second: they come and go with ``CONN_MAX_AGE``), the load clients
    (this process) and the whole machine."""

    def __init__(self, groups: dict[str, int], db: str) -> None:
        self.groups, self.db = groups, db
        self.pg_first: dict[int, float] = {}
        self.pg_last: dict[int, float] = {}
        self.done = threading.Event()

    def _backends(self, _pgid: int, d: Path) -> bool:
        return (d / "comm").read_text().strip() == "postgres" and f" {self.db} ".encode() in (
            d / "cmdline"
        ).read_bytes()

    def _read(self) -> dict[str, float]:
        snap = {name: sum(_proc_cpu(lambda g, _d, pg=pgid: g == pg).values()) for name, pgid in self.groups.items()}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        snap["load clients"] = usage.ru_utime + usage.ru_stime
        snap["machine"] = _machine_busy()
        return snap

    def _sample_postgres(self) -> None:
        while not self.done.wait(1.0):
            self.pg_last.update(_proc_cpu(self._backends))

    def start(self) -> None:
        self.pg_first = _proc_cpu(self._backends)
        self.pg_last = dict(self.pg_first)
        self.before = self._read()
        threading.Thread(target=self._sample_postgres, daemon=True).start()

    def stop(self) -> dict[str, float]:
        self.done.set()
        self.pg_last.update(_proc_cpu(self._backends))
        after = self._read()
        used = {k: after[k] - self.before[k] for k in after}
        used["postgres"] = sum(cpu - self.pg_first.get(pid, 0.0) for pid, cpu in self.pg_last.items())
        return used


def wait_drained(db_url: str, expected: int, timeout: float) -> tuple[dict[str, int], float]:
    """Wait until at least ``expected`` analyses exist and none is pending or processing."""
    t0 = time.monotonic()
    counts: dict[str, int] = {}
    while time.monotonic() - t0 < timeout:
        counts = dict(query(db_url, "SELECT status, count(*) FROM emotion_imageanalysis GROUP BY status"))
        if sum(counts.values()) >= expected and not counts.get("pending") and not counts.get("processing"):
            break
        time.sleep(1)
    return counts, time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60, help="seconds of the paced run")
    ap.add_argument("--users", type=int, default=50, help="legitimate accounts the requests are spread over")
    ap.add_argument("--capacity-clients", type=int, default=12, help="closed-loop clients of the capacity phase")
    ap.add_argument("--capacity-seconds", type=float, default=60, help="0: no capacity phase (then give --rate)")
    ap.add_argument("--rate-fraction", type=float, default=0.5, help="legitimate arrival rate / measured capacity")
    ap.add_argument("--rate", type=float, default=None, help="legitimate arrivals per second (overrides the fraction)")
    ap.add_argument("--db", default="feedmood_load")
    ap.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")
    ap.add_argument("--redis-db", type=int, default=11)
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--celery-concurrency", type=int, default=1)
    ap.add_argument("--drain-timeout", type=float, default=300)
    ap.add_argument("--out", default=str(RESULTS / "load_test"))
    ap.add_argument("--note", default="", help="free text recorded with the results")
    ap.add_argument("--keep-db", action="store_true")
    ap.add_argument("--no-hostile", dest="hostile", action="store_false", help="legitimate clients only")
    args = ap.parse_args()
    if args.capacity_seconds <= 0 and not args.rate:
        ap.error("without a capacity phase, give --rate")

    admin = f"{args.pg}/postgres"
    db_url = f"{args.pg}/{args.db}"
    broker = f"{args.redis}/{args.redis_db}"
    media = tempfile.mkdtemp(prefix="feedmood_load_media_")
    static = tempfile.mkdtemp(prefix="feedmood_load_static_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DJANGO_", "FEEDMOOD_THROTTLE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DEBUG="0",
        SECRET_KEY="load-test-" + os.urandom(24).hex(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="0",
        DATABASE_URL=db_url,
        CSRF_COOKIE_SECURE="0",
        SESSION_COOKIE_SECURE="0",  # plain HTTP on loopback: the admin login needs its cookies
        FEEDMOOD_LOGIN_MAX_FAILURES=str(hostile.LOGIN_MAX_FAILURES),
        CELERY_BROKER_URL=broker,
        REDIS_URL=broker,
        CACHE_URL=broker,
        MEDIA_ROOT=media,
        STATIC_ROOT=static,
        # Production throttles throughout, except sign-up: seeding signs every account up from one address.
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
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    try:
        manage = [PY, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([*manage, "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run(
            [*manage, "register_model", str(ROOT / "ml" / "artifacts" / "ferplus"), "--activate"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        tag = os.urandom(3).hex()
        staff = f"staff{tag}"
        subprocess.run(
            [*manage, "createsuperuser", "--noinput", "--username", staff, "--email", f"{staff}@example.com"],
            cwd=ROOT,
            env={**env, "DJANGO_SUPERUSER_PASSWORD": hostile.STAFF_PASSWORD},
            check=True,
            capture_output=True,
        )
        gunicorn = [PY, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{args.port}"]
        gunicorn += ["-w", str(args.workers), "-k", "gthread", "--threads", str(args.threads)]
        gunicorn += ["--timeout", "60", "--keep-alive", "30", "--log-level", "warning"]
        worker = [PY, "-m", "celery", "-A", "config", "worker", "-Q", "fer,default,batch"]
        worker += ["-c", str(args.celery_concurrency), "--loglevel=WARNING", "--without-gossip", "--without-mingle"]
        worker += ["-n", f"load-{os.getpid()}@%h"]
        for cmd, log in ((gunicorn, logs["gunicorn"]), (worker, logs["worker"])):
            procs.append(
                subprocess.Popen(
                    cmd,
                    cwd=ROOT,
                    env=env,
                    stdout=open(log, "w"),  # noqa: SIM115 (the process writes to it until it is stopped)
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
        for i in range(args.users):
            name = f"load{tag}{i}"
            r = requests.post(
                f"{base}/api/auth/signup/", json={"username": name, "password": LEGIT_PASSWORD}, timeout=30
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
        target = Target(base, face, png)
        seen = Seen()

        capacity = None
        cap_stats = Stats()
        if args.capacity_seconds > 0:
            n = args.capacity_clients
            print(f"capacity: {n} closed-loop clients for {args.capacity_seconds}s ...", flush=True)
            started = time.monotonic()
            stop_at = started + args.capacity_seconds
            threads = [
                threading.Thread(target=closed_loop, args=(target, tokens, stop_at, cap_stats, seen, i), daemon=True)
                for i in range(n)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=args.capacity_seconds + 60)
            cap_elapsed = time.monotonic() - started
            answered = sum(len(v) for v in cap_stats.lat.values()) - sum(cap_stats.errors.values())
            # The uploads' analyses ran late (the worker shares the CPUs): the capacity counts the time to
            # finish them too, so it is a rate the whole system sustains, not one the worker falls behind at.
            _, cap_drain = wait_drained(db_url, len(cap_stats.selfie_ids) + cap_stats.image_posts, args.drain_timeout)
            capacity = answered / (cap_elapsed + cap_drain)
            cap_lat = [x for v in cap_stats.lat.values() for x in v]
            result["capacity"] = {
                "clients": n,
                "duration_s": round(cap_elapsed, 1),
                "answered_rps": round(answered / cap_elapsed, 2),
                "drain_s": round(cap_drain, 1),
                "sustained_rps": round(capacity, 2),
                "server_errors": cap_stats.server_errors,
                "errors": sum(cap_stats.errors.values()),
                "p50_ms": pct(cap_lat, 50),
                "p95_ms": pct(cap_lat, 95),
            }
        rate = args.rate or args.rate_fraction * capacity
        result["legit_rate_rps"] = round(rate, 2)

        stats = Stats()
        meter = CpuMeter({"gunicorn": procs[0].pid, "worker": procs[1].pid}, args.db)
        meter.start()
        print(f"run: {rate:.1f} legitimate requests/s (open loop) for {args.duration}s against {base} ...", flush=True)
        started = time.monotonic()
        hostile_threads = []
        probe_out = Path(tempfile.gettempdir()) / f"feedmood_load_probe_{os.getpid()}.json"
        if args.hostile:
            probe = hostile.start_own_process_probe(base, args.duration, str(probe_out))
            hostile_threads = hostile.start_hostile_clients(base, usernames[0], staff, started + args.duration, stats)
        lateness = open_loop(target, tokens, rate, args.duration, stats, seen, seed=1)
        for thread in hostile_threads:
            thread.join(timeout=120)
        if args.hostile:
            probe.wait(timeout=120)
            hostile.record_own_process_probe(stats, str(probe_out))
            probe_out.unlink()
        elapsed = time.monotonic() - started
        result["loadavg_after_run"] = os.getloadavg()
        share = {k: v / (elapsed * (os.cpu_count() or 1)) for k, v in meter.stop().items()}
        share["other jobs"] = share["machine"] - sum(v for k, v in share.items() if k != "machine")
        result["cpu_share_of_machine"] = {k: round(v, 3) for k, v in share.items()}
        result["client_lateness_max_s"] = round(lateness, 3)
        if args.hostile:
            result["lockout_checks"] = hostile.lockout_checks(
                base,
                victim=usernames[0],
                staff=staff,
                control=usernames[1],
                control_password=LEGIT_PASSWORD,
                checked=stats.outcomes[hostile.TOKEN_GUESSING]["400 password checked"],
                max_failures=hostile.LOGIN_MAX_FAILURES,
            )

        # Drain: every legitimate upload (selfie or post image), from both phases, must end with a final analysis.
        selfies = len(stats.selfie_ids) + len(cap_stats.selfie_ids)
        image_posts = stats.image_posts + cap_stats.image_posts
        counts, drain_s = wait_drained(db_url, selfies + image_posts, args.drain_timeout)
        legit = "AND owner_id NOT IN (SELECT id FROM auth_user WHERE username LIKE 'hostile%%')"
        final = "status IN ('done','no_face','failed')"
        selfies_final = query(
            db_url, f"SELECT count(*) FROM emotion_imageanalysis WHERE source='selfie' AND {final} {legit}"
        )[0][0]
        posts_final = query(
            db_url, f"SELECT count(*) FROM emotion_imageanalysis WHERE source='post' AND {final} {legit}"
        )[0][0]
        dup = query(
            db_url,
            "SELECT count(*) FROM (SELECT analysis_id, model_version_id, face_index FROM emotion_facereading "
            "GROUP BY 1,2,3 HAVING count(*) > 1) d",
        )[0][0]
        worker_alive = procs[1].poll() is None

        per_endpoint = endpoint_table(stats, elapsed)
        legit_lat = [x for name, lat in stats.lat.items() if not hostile.is_hostile(name) for x in lat]
        all_lat = [x for lat in stats.lat.values() for x in lat]
        result.update(
            duration_s=round(elapsed, 1),
            users=args.users,
            total_requests=len(all_lat),
            rps=round(len(all_lat) / elapsed, 2),
            legit_requests=len(legit_lat),
            legit_rps=round(len(legit_lat) / elapsed, 2),
            legit_p50_ms=pct(legit_lat, 50),
            legit_p95_ms=pct(legit_lat, 95),
            legit_p99_ms=pct(legit_lat, 99),
            errors=sum(stats.errors.values()),
            error_samples=stats.error_samples,
            endpoints=per_endpoint,
            uploads={
                "selfies_accepted": selfies,
                "selfies_final": selfies_final,
                "image_posts": image_posts,
                "post_analyses_final": posts_final,
                "analysis_status_counts": counts,
                "duplicate_readings": dup,
                "drain_s": round(drain_s, 1),
                "every_upload_analysed": selfies_final == selfies and posts_final == image_posts,
            },
            worker_alive=worker_alive,
            loadavg_end=os.getloadavg(),
            server_errors=stats.server_errors + cap_stats.server_errors,
            status_counts={name: dict(codes) for name, codes in sorted(stats.status_counts.items())},
            outcomes={name: dict(v) for name, v in sorted(stats.outcomes.items())},
            health_p50_ms=pct(stats.lat.get(hostile.HEALTH, []), 50),
            health_p95_ms=pct(stats.lat.get(hostile.HEALTH, []), 95),
            health_p99_ms=pct(stats.lat.get(hostile.HEALTH, []), 99),
            health_own_process_p50_ms=pct(stats.lat.get(hostile.HEALTH_OWN_PROCESS, []), 50),
            health_own_process_p95_ms=pct(stats.lat.get(hostile.HEALTH_OWN_PROCESS, []), 95),
            health_own_process_p99_ms=pct(stats.lat.get(hostile.HEALTH_OWN_PROCESS, []), 99),
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
        subprocess.run(["rm", "-rf", media, static], check=False)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    lines = report_lines(args, result)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    u = result["uploads"]
    healthy = result["health_p95_ms"] is not None and result["health_p95_ms"] < 100
    ok = result["errors"] == 0 and u["every_upload_analysed"] and u["duplicate_readings"] == 0
    checks = all(c["passed"] for c in result.get("lockout_checks", []))
    return 0 if ok and checks and result["server_errors"] == 0 and (healthy or not args.hostile) else 1


def report_lines(args: argparse.Namespace, result: dict[str, Any]) -> list[str]:
    """The Markdown report."""
    cap = result.get("capacity")
    loads = [tuple(round(x, 2) for x in result[k]) for k in ("loadavg_before", "loadavg_after_run")]
    lines = [
        "# Load test" + (" with hostile clients" if args.hostile else ""),
        "",
        f"gunicorn {args.workers}x{args.threads} gthread (DEBUG=0, production throttles) + PostgreSQL + Celery worker "
        f"(-c {args.celery_concurrency}) on Redis, loopback, {result['cpus']} CPUs; loadavg before {loads[0]}, "
        f"after the run {loads[1]}. Share of the machine's CPU time during the run: "
        + ", ".join(f"{k} {v:.0%}" for k, v in result["cpu_share_of_machine"].items() if k != "machine")
        + f"; busy in all {result['cpu_share_of_machine']['machine']:.0%} (other jobs: Redis, other processes on the "
        f"machine).{' ' + args.note if args.note else ''}",
        "",
    ]
    if cap:
        lines += [
            f"**Capacity** ({cap['clients']} closed-loop clients, legitimate mix alone, {cap['duration_s']} s): "
            f"{cap['answered_rps']} answered req/s (p50 {cap['p50_ms']} ms, p95 {cap['p95_ms']} ms, "
            f"{cap['server_errors']} server errors); the worker finished their analyses {cap['drain_s']} s later, "
            f"so the sustained capacity is **{cap['sustained_rps']} req/s** (answered / (run + drain)).",
            "",
        ]
    fraction = f" = {args.rate_fraction:g} x capacity" if cap and not args.rate else ""
    lines += [
        f"**Run**: {result['duration_s']} s; legitimate requests arrive open-loop (Poisson) at "
        f"{result['legit_rate_rps']} req/s{fraction}, spread over {result['users']} accounts "
        f"(mix: {', '.join(f'{n} {w}%' for n, w in ACTIONS)}); latency counted from the scheduled arrival"
        f" (client lateness max {result['client_lateness_max_s']} s)."
        + (f" Hostile clients as fast as they can go: {hostile.DESCRIPTION}" if args.hostile else ""),
        "",
        f"**{result['total_requests']} requests ({result['rps']} req/s); legitimate {result['legit_requests']} "
        f"({result['legit_rps']} req/s) p50 {result['legit_p50_ms']} ms, p95 {result['legit_p95_ms']} ms, "
        f"p99 {result['legit_p99_ms']} ms; unexpected answers {result['errors']}.**",
        "",
        "| endpoint | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | unexpected |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in result["endpoints"].items():
        lines.append(
            f"| `{name}` | {e['requests']} | {e['rps']} | {e['p50_ms']} | {e['p95_ms']} | {e['p99_ms']} "
            f"| {e['max_ms']} | {e['errors']} |"
        )
    u = result["uploads"]
    lines += [
        "",
        f"Uploads (legitimate, both phases): {u['selfies_accepted']} selfies accepted, {u['selfies_final']} with a "
        f"final analysis; {u['image_posts']} image posts, {u['post_analyses_final']} post analyses final; all "
        f"statuses {u['analysis_status_counts']}; duplicate readings {u['duplicate_readings']}; queue drained "
        f"{u['drain_s']} s after the run; every upload analysed: **{u['every_upload_analysed']}**; "
        f"worker alive: {result['worker_alive']}.",
        "",
        f"**Server errors (5xx) over all clients and both phases: {result['server_errors']}; health p95 "
        f"{result['health_p95_ms']} ms (p50 {result['health_p50_ms']}, p99 {result['health_p99_ms']}).**",
    ]
    if result.get("health_own_process_p95_ms") is not None:
        lines += [
            "",
            f"The same probe from a process of its own (as kubelet's): p95 {result['health_own_process_p95_ms']} ms "
            f"(p50 {result['health_own_process_p50_ms']}, p99 {result['health_own_process_p99_ms']}); the figure "
            "above is the probe thread inside the load clients' process, which also waits for their interpreter lock.",
        ]
    if args.hostile:
        lines += hostile.summary_lines(result)
    if result["error_samples"]:
        lines += ["", "Unexpected answers (first 20):", *[f"- {e}" for e in result["error_samples"]]]
    return lines


if __name__ == "__main__":
    sys.exit(main())
