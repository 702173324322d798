"""Feed scale benchmark: seed PostgreSQL, serve with gunicorn (DEBUG=0), load ``GET /api/feed/``.

For each scale (number of posts) it:

1. creates a fresh database ``<db-prefix>_<posts>``, migrates it and seeds it with
   ``manage.py seed_feed`` (COPY; timings recorded);
2. runs ``bench/feed_micro.py`` (candidate strategies, mood state vs readings,
   pure ranking time, EXPLAIN);
3. starts gunicorn (``--workers`` x ``--threads`` gthread, or ``--worker-class sync``; DEBUG=0, Redis cache)
   and drives it with a threaded keep-alive HTTP client: closed loop at each
   ``--concurrency`` (page 1 of the feed with ``?refresh=true`` -- a new ranking
   every time -- for rotating bench users, mood stage on), page 1 as clients call
   it (recent snapshots reused), a page-2 (cursor) run, and open-loop runs at fixed rates;
4. records latency percentiles, requests/s, server CPU ms per request and
   ``os.getloadavg()`` (a training job shares the 2 cores), then stops gunicorn.

With ``--peer PATH`` (another checkout with its own ``.venv``, e.g. a worktree of an earlier commit) both are
seeded, served and measured in the same run, each load run split into ``--rounds`` slices alternating between
them, so a loaded machine weighs on both alike; the peer's results go to ``<out>_base`` (``--peer-out``).

Results: ``bench/results/feed_scale.json`` and ``.md``.  Verify small first::

    .venv/bin/python bench/feed_scale.py --scales 20000 --users 1000 --duration 5 --out /tmp/feed_small
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


# --- helpers -----------------------------------------------------------------------------


def sh(cmd: list[str], env: dict[str, str], cwd: Path = ROOT, **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, check=True, text=True, capture_output=True, **kw)


def psql(admin_url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a process and its live children (gunicorn master + workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


def service_cpu_seconds(names: tuple[str, ...] = ("postgres", "redis-server")) -> dict[str, float]:
    """CPU seconds used so far by the database and cache processes (read from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys(names, 0.0)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            if comm not in totals:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            # own user+system time, plus that of exited children (closed PG backends)
            totals[comm] += sum(int(fields[i]) for i in (11, 12, 13, 14)) / tick
        except (OSError, IndexError, ValueError):
            continue
    return totals


def percentiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    s = sorted(samples)

    def pct(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))], 2)

    return {
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "max_ms": round(s[-1], 2),
        "mean_ms": round(statistics.fmean(s), 2),
    }


# --- load client -------------------------------------------------------------------------------


class Client(threading.Thread):
    """One keep-alive connection issuing requests until ``deadline``.

    Closed loop when ``interval`` is None; otherwise open loop: request k is due
    at ``start + k * interval`` and its latency is measured from that due time
    (no coordinated omission).
    """

    def __init__(
        self,
        port: int,
        tokens: list[str],
        deadline: float,
        mode: str,
        interval: float | None,
        start_at: float,
        seed: int,
    ) -> None:
        super().__init__(daemon=True)
        self.port, self.tokens, self.deadline, self.mode = port, tokens, deadline, mode
        self.interval, self.start_at = interval, start_at
        self.rng = random.Random(seed)
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.cursors: dict[str, str] = {}
        self.untimed = 0  # page-1 requests made only to get a cursor (page2 mode)

    def _get(self, conn: http.client.HTTPConnection, path: str, token: str) -> tuple[int, bytes]:
        conn.request("GET", path, headers={"Authorization": f"Token {token}", "Host": "127.0.0.1"})
        resp = conn.getresponse()
        return resp.status, resp.read()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        k = 0
        while True:
            due = self.start_at + k * self.interval if self.interval else time.perf_counter()
            if due >= self.deadline:
                break
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            token = self.tokens[self.rng.randrange(len(self.tokens))]
            path = "/api/feed/?refresh=true" if self.mode == "fresh" else "/api/feed/"
            if self.mode == "page2":
                cursor = self.cursors.get(token)
                if cursor is None:  # fetch page 1 once to get this user's cursor (not timed)
                    status, body = self._safe_get(conn, "/api/feed/", token)
                    self.untimed += 1
                    if status == 200:
                        nxt = json.loads(body)["next"]
                        self.cursors[token] = cursor = nxt.split("cursor=", 1)[1] if nxt else ""
                    due = time.perf_counter()
                path = f"/api/feed/?cursor={cursor}" if cursor else "/api/feed/"
            status, _ = self._safe_get(conn, path, token)
            end = time.perf_counter()
            if status == 200:
                self.latencies.append((end - due) * 1000.0)
            else:
                self.errors[str(status)] = self.errors.get(str(status), 0) + 1
                if status == 0:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            k += 1
        conn.close()

    def _safe_get(self, conn: http.client.HTTPConnection, path: str, token: str) -> tuple[int, bytes]:
        try:
            return self._get(conn, path, token)
        except (OSError, http.client.HTTPException):
            return 0, b""


def run_load(
    port: int,
    tokens: list[str],
    *,
    seconds: float,
    concurrency: int,
    mode: str = "page1",
    rate: float | None = None,
    server_pid: int | None = None,
) -> dict[str, Any]:
    start = time.perf_counter() + 0.05
    deadline = start + seconds
    interval = concurrency / rate if rate else None
    cpu0 = proc_cpu_seconds(server_pid) if server_pid else 0.0
    services0 = service_cpu_seconds()
    client_cpu0 = time.process_time()
    la0 = loadavg()
    # Open loop: client i starts i/concurrency of an interval late, so arrivals are evenly spaced at ``rate``
    # instead of all clients firing together (bursts of ``concurrency`` requests every interval).
    clients = [Client(port, tokens, deadline, mode, interval, start + (i * interval / concurrency if interval else 0.0),
                      seed=i) for i in range(concurrency)]  # fmt: skip
    for c in clients:
        c.start()
    for c in clients:
        c.join()
    elapsed = time.perf_counter() - start
    lat = [x for c in clients for x in c.latencies]
    errors: dict[str, int] = {}
    for c in clients:
        for k, v in c.errors.items():
            errors[k] = errors.get(k, 0) + v
    server_cpu = (proc_cpu_seconds(server_pid) - cpu0) if server_pid else 0.0
    served = len(lat) + sum(c.untimed for c in clients) + sum(sum(c.errors.values()) for c in clients)
    services = {k: v - services0.get(k, 0.0) for k, v in service_cpu_seconds().items()}
    return {
        "mode": mode,
        "concurrency": concurrency,
        "target_rate_rps": rate,
        "_raw": {
            "latencies": lat,
            "seconds": elapsed,
            "served": served,
            "server_cpu": server_cpu,
            "client_cpu": time.process_time() - client_cpu0,
            "services": services,
        },
        "seconds": round(elapsed, 2),
        "requests": len(lat),
        "errors": errors,
        "throughput_rps": round(len(lat) / elapsed, 1),
        **percentiles(lat),
        "untimed_page1_requests": sum(c.untimed for c in clients),
        "server_cpu_ms_per_request": round(server_cpu * 1000.0 / max(served, 1), 2),
        "client_cpu_ms_per_request": round((time.process_time() - client_cpu0) * 1000.0 / max(served, 1), 2),
        "postgres_cpu_ms_per_request": round(services["postgres"] * 1000.0 / max(served, 1), 2),
        "redis_cpu_ms_per_request": round(services["redis-server"] * 1000.0 / max(served, 1), 2),
        "loadavg_before": la0,
        "loadavg_after": loadavg(),
    }


# --- one scale ---------------------------------------------------------------------------------------


class Side:
    """One checkout under test: its code, database, server port and results."""

    def __init__(self, name: str, root: Path, posts: int, db_prefix: str, port: int, text_share: float,
                 base_env: dict[str, str], pg: str) -> None:  # fmt: skip
        self.name, self.root, self.port, self.text_share, self.pg = name, root, port, text_share, pg
        self.py = str(root / ".venv" / "bin" / "python") if root != ROOT else PY
        self.db = f"{db_prefix}_{posts}"
        # A peer checkout may predate config/ (its settings then live in the feedmood package).
        self.project = "config" if (root / "config" / "settings.py").is_file() else "feedmood"
        self.env = {**base_env, "DATABASE_URL": f"{pg}/{self.db}", "PYTHONPATH": str(root),
                    "DJANGO_SETTINGS_MODULE": f"{self.project}.settings"}  # fmt: skip
        self.result: dict[str, Any] = {"posts": posts, "database": self.db}
        self.server: subprocess.Popen | None = None
        self.log: Any = None
        self.tokens: list[str] = []

    def prepare(self, args: argparse.Namespace) -> None:
        """Create, migrate and seed the database with this checkout's code; run its micro-benchmarks."""
        admin, posts = f"{self.pg}/postgres", self.result["posts"]
        print(f"== {posts} posts: database {self.db} ({self.name})", flush=True)
        psql(admin, f'DROP DATABASE IF EXISTS "{self.db}"')
        psql(admin, f'CREATE DATABASE "{self.db}"')
        sh([self.py, "manage.py", "migrate", "-v0"], self.env, self.root)
        tokens_path = Path(f"/tmp/{self.db}_tokens.json")
        t0 = time.perf_counter()
        seeded = sh([self.py, "manage.py", "seed_feed", "--users", str(args.users), "--posts", str(posts),
                     "--follows-per-user", str(args.follows_per_user), "--readings", str(args.readings),
                     "--bench-users", str(args.bench_users), "--bench-follows", str(args.bench_follows),
                     "--tokens-out", str(tokens_path)], self.env, self.root, timeout=3600)  # fmt: skip
        self.result["seed_wall_s"] = round(time.perf_counter() - t0, 1)
        seed_info = json.loads(tokens_path.read_text())
        self.result["seed"] = {k: seed_info[k] for k in ("counts", "timings", "seconds")}
        print(seeded.stdout.strip().splitlines()[-1], flush=True)
        if self.text_share > 0:
            self.result["text_affects"] = add_text_affect(self.env["DATABASE_URL"], self.text_share)
        with __import__("psycopg").connect(self.env["DATABASE_URL"]) as conn:
            self.result["db_size"] = conn.execute(
                "SELECT pg_size_pretty(pg_database_size(current_database()))"
            ).fetchone()[0]
        micro = sh([self.py, "bench/feed_micro.py", str(tokens_path), str(args.micro_repeat)], self.env, self.root,
                   timeout=1800)  # fmt: skip
        self.result["micro"] = json.loads(micro.stdout.strip().splitlines()[-1])
        parts = ("candidates_lateral", "candidates_redis_zset", "mood_from_state", "rank_pipeline")
        print("micro:", json.dumps({k: self.result["micro"][k] for k in parts}), flush=True)
        self.tokens = [b["token"] for b in seed_info["bench_users"]]

    def start(self, args: argparse.Namespace) -> None:
        self.log = open(f"/tmp/{self.db}_gunicorn.log", "w")  # noqa: SIM115 (written to until the server stops)
        self.server = subprocess.Popen(
            [self.py, "-m", "gunicorn", f"{self.project}.wsgi:application", "-b", f"127.0.0.1:{self.port}",
             "-w", str(args.workers), "-k", args.worker_class, "--threads", str(args.threads),
             "--keep-alive", "30", "--backlog", "256", "--log-level", "warning"],
            cwd=self.root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        wait_ready(self.port, self.server)
        self.result["sample_response"] = check_feed(self.port, self.tokens[0])
        run_load(self.port, self.tokens, seconds=args.warmup, concurrency=4, server_pid=self.server.pid)  # warm-up

    def load(self, seconds: float, concurrency: int, mode: str, rate: float | None = None) -> dict[str, Any]:
        assert self.server is not None
        return run_load(self.port, self.tokens, seconds=seconds, concurrency=concurrency, mode=mode, rate=rate,
                        server_pid=self.server.pid)  # fmt: skip

    def stop(self, args: argparse.Namespace) -> None:
        if self.server is not None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
            self.log.close()
        if not args.keep_db:
            psql(f"{self.pg}/postgres", f'DROP DATABASE IF EXISTS "{self.db}"')


def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's figures from its time slices (latencies pooled, CPU and requests summed)."""
    raw = [p.pop("_raw") for p in parts]
    lat = [x for r in raw for x in r["latencies"]]
    seconds = sum(r["seconds"] for r in raw)
    served = max(sum(r["served"] for r in raw), 1)
    errors: dict[str, int] = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    first, last = parts[0], parts[-1]
    return {
        "mode": first["mode"],
        "concurrency": first["concurrency"],
        "target_rate_rps": first["target_rate_rps"],
        "slices": len(parts),
        "seconds": round(seconds, 2),
        "requests": len(lat),
        "errors": errors,
        "throughput_rps": round(len(lat) / seconds, 1),
        **percentiles(lat),
        "untimed_page1_requests": sum(p["untimed_page1_requests"] for p in parts),
        "server_cpu_ms_per_request": round(sum(r["server_cpu"] for r in raw) * 1000.0 / served, 2),
        "client_cpu_ms_per_request": round(sum(r["client_cpu"] for r in raw) * 1000.0 / served, 2),
        "postgres_cpu_ms_per_request": round(sum(r["services"]["postgres"] for r in raw) * 1000.0 / served, 2),
        "redis_cpu_ms_per_request": round(sum(r["services"]["redis-server"] for r in raw) * 1000.0 / served, 2),
        "loadavg_before": first["loadavg_before"],
        "loadavg_after": last["loadavg_after"],
    }


def bench_scale(args: argparse.Namespace, posts: int, base_env: dict[str, str]) -> list[dict[str, Any]]:
    """This checkout's results at ``posts`` (and the ``--peer`` checkout's, measured in alternating slices)."""
    sides = [Side("this checkout", ROOT, posts, args.db_prefix, args.port, args.text_affect_share, base_env, args.pg)]
    if args.peer:
        sides.append(Side("peer", Path(args.peer).resolve(), posts, f"{args.db_prefix}_peer", args.port + 1,
                          args.peer_text_affect_share, base_env, args.pg))  # fmt: skip
    rounds = max(1, args.rounds) if args.peer else 1

    def measure(concurrency: int, mode: str, rate: dict[str, float] | None = None) -> dict[str, dict[str, Any]]:
        """Each side in ``rounds`` slices of ``duration / rounds`` seconds, the order alternating per slice."""
        parts: dict[str, list[dict[str, Any]]] = {s.name: [] for s in sides}
        for r in range(rounds):
            for side in sides if r % 2 == 0 else sides[::-1]:
                parts[side.name].append(side.load(args.duration / rounds, concurrency, mode,
                                                  rate[side.name] if rate else None))  # fmt: skip
        return {name: combine(p) for name, p in parts.items()}

    try:
        for side in sides:
            side.prepare(args)
        for side in sides:
            side.start(args)
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in sides}
        keys = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "server_cpu_ms_per_request", "loadavg_after")

        def record(label: str, measured: dict[str, dict[str, Any]]) -> None:
            for name, run in measured.items():
                runs[name].append(run)
                print(f"    {label} [{name}]", json.dumps({k: run[k] for k in keys}), flush=True)

        for c in args.concurrency:  # every request ranks a new snapshot (?refresh=true)
            record(f"closed loop fresh c={c}", measure(c, "fresh"))
        top = max(args.concurrency)
        # Open-loop rates from the peer's capacity when there is one, so both sides get the same arrival rate.
        fresh_top = runs[sides[-1].name][-1]["throughput_rps"]
        for mode in ("page1", "page2"):  # page 1 as served (recent snapshots reused), next pages (cursor)
            record(f"{mode} c={top}", measure(top, mode))
        for share in args.open_loop:
            rate = max(1.0, round(fresh_top * share, 1))
            record(f"open loop fresh {rate} rps", measure(top, "fresh", {s.name: rate for s in sides}))
        for side in sides:
            side.result["runs"] = runs[side.name]
    finally:
        for side in sides:
            side.stop(args)
    return [side.result for side in sides]


def add_text_affect(db_url: str, share: float, seed: float = 0.42) -> int:
    """Give ``share`` of the seeded posts a text affect row (synthetic valence, as the seeder's faces)."""
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SELECT setseed(%s)", (seed,))
        count = conn.execute(
            "INSERT INTO recommender_postaffect (post_id, source, valence, arousal, dominant_emotion, confidence,"
            " face_count, language, updated_at)"
            " SELECT id, 'text', round((random() * 2 - 1)::numeric, 3), NULL, '', 0.56, 0, 'en', now()"
            " FROM feedmood_post WHERE random() < %s",
            (share,),
        ).rowcount
        conn.execute("VACUUM ANALYZE recommender_postaffect")
    return count


def wait_ready(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/health/", headers={"Host": "127.0.0.1"})
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError("gunicorn did not become ready")


def check_feed(port: int, token: str) -> dict[str, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/feed/", headers={"Authorization": f"Token {token}", "Host": "127.0.0.1"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    if resp.status != 200 or not body["policy"]["applied"]:
        raise RuntimeError(f"unexpected feed response {resp.status}: {str(body)[:500]}")
    return {
        "status": resp.status,
        "mood": body["mood"],
        "policy": body["policy"],
        "items": len(body["results"]),
        "first_reasons": [i["reason"] for i in body["results"][:5]],
        "sources": sorted({i["ranking"]["source"] for i in body["results"]}),
    }


# --- report -------------------------------------------------------------------------------------------------


def server_shape(params: dict[str, Any]) -> str:
    kind = params.get("worker_class", "gthread")
    if kind == "sync":
        return f"{params['workers']} sync workers (no keep-alive)"
    return f"{params['workers']} workers x {params['threads']} threads (gthread)"


def same_run(params: dict[str, Any]) -> list[str]:
    """The header line saying how a ``--peer`` run interleaved the two checkouts ([] without a peer)."""
    if not params.get("peer_commit"):
        return []
    other = f"commit {params['peer_commit']}" if params.get("side") != "peer" else "the checkout it was compared with"
    return [
        "",
        f"Measured in one run with {other} (each on its own database and gunicorn): every load run is split into "
        f"{params['rounds']} slices of {params['duration'] / params['rounds']:g} s, alternating between the two "
        "(order reversed each slice), and open-loop rates are the same for both (from the peer's capacity).",
    ]


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    lines = [
        "# Feed scale benchmark",
        "",
        f"Generated by `bench/feed_scale.py` ({data['machine']['cpus']} CPUs, "
        f"Python {data['machine']['python']}); gunicorn {server_shape(data['params'])}, DEBUG=0, "
        "PostgreSQL + Redis on the same host. "
        f"Load average is recorded for every run. Note: {data.get('note') or '-'}",
        *same_run(data["params"]),
        "",
        f"Graph: {data['params']['users']} users, ~{data['params']['follows_per_user']} follows each; "
        f"bench users follow {data['params']['bench_follows']} accounts, consent, and have a recent sad or "
        f"angry mood (mood stage on, policy repair, strength 0.5). Requests for rotating bench users: "
        f"`fresh` = `GET /api/feed/?refresh=true` (page 1, a new ranked snapshot every time: candidates, "
        f"mood stage, diversity), `page1` = `GET /api/feed/` as clients call it (the user's snapshot of the "
        f"last 60 s is reused when nothing changed; here nothing is posted during the run, so nearly all are "
        f"reused), `page2` = the next page by cursor. `@ N rps` = open loop at a fixed arrival rate.",
        "",
        "| posts | seed s | DB size | run | req/s | p50 ms | p95 ms | p99 ms | CPU ms/req gunicorn + PG + Redis "
        "| req/s on 2 idle cores (est.) | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in data["scales"]:
        for r in s.get("runs", []):
            label = f"{r['mode']} c={r['concurrency']}" + (
                f" @ {r['target_rate_rps']} rps" if r["target_rate_rps"] else ""
            )
            cpu = r["server_cpu_ms_per_request"] + r["postgres_cpu_ms_per_request"] + r["redis_cpu_ms_per_request"]
            lines.append(
                f"| {s['posts']:,} | {s['seed']['seconds']} | {s['db_size']} | {label} | {r['throughput_rps']} | "
                f"{r.get('p50_ms')} | {r.get('p95_ms')} | {r.get('p99_ms')} | {r['server_cpu_ms_per_request']} + "
                f"{r['postgres_cpu_ms_per_request']} + {r['redis_cpu_ms_per_request']} | "
                f"{round(2000.0 / cpu) if cpu else '-'} | {r['loadavg_after'][0]} |"
            )
    lines += [
        "",
        "## Parts (median / p95 ms, in-process)",
        "",
        "| posts | candidates LATERAL | candidates window | candidates Redis ZSET + pk | mood state | "
        "mood from readings | rank pipeline (n) | LATERAL exec (EXPLAIN) | fan-out ZADD/post avg (max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in data["scales"]:
        m = s["micro"]

        def f(x: dict[str, Any]) -> str:
            return f"{x['median_ms']} / {x['p95_ms']}"

        lines.append(
            f"| {s['posts']:,} | {f(m['candidates_lateral'])} | {f(m['candidates_window'])} | "
            f"{f(m['candidates_redis_zset'])} | {f(m['mood_from_state'])} | {f(m['mood_from_readings'])} | "
            f"{f(m['rank_pipeline'])} ({m['rank_pipeline']['candidates']}) | {m['lateral_explain']['execution_ms']} | "
            f"{m['fanout']['zadd_per_post_avg']} ({m['fanout']['zadd_per_post_max']}) |"
        )
    lines += ["", f"Raw figures: `{path.with_suffix('.json').name}` next to this file.", ""]
    path.write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scales", default="100000,1000000", help="comma-separated post counts")
    p.add_argument("--users", type=int, default=10_000)
    p.add_argument("--follows-per-user", type=int, default=50)
    p.add_argument("--readings", type=int, default=3)
    p.add_argument("--bench-users", type=int, default=50)
    p.add_argument("--bench-follows", type=int, default=500)
    p.add_argument("--duration", type=float, default=20.0, help="seconds per load run")
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--concurrency", default="1,2,4,8")
    p.add_argument(
        "--open-loop",
        default="0.5,0.8",
        help="open-loop rates as shares of the fresh throughput at the top concurrency",
    )
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="threads per worker (gthread only)")
    p.add_argument(
        "--worker-class",
        default="gthread",
        choices=("gthread", "sync"),
        help="gunicorn worker class (sync: one request per worker, no keep-alive)",
    )
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--micro-repeat", type=int, default=30)
    p.add_argument("--pg", default="postgres://postgres@127.0.0.1:5432")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--db-prefix", default="feedmood_bench")
    p.add_argument("--keep-db", action="store_true")
    p.add_argument(
        "--text-affect-share",
        type=float,
        default=0.0,
        help="share of posts given a text affect row after seeding (0: none)",
    )
    p.add_argument("--note", default="", help="free text recorded with the results (e.g. what else ran)")
    p.add_argument("--append", action="store_true", help="add these scales to an existing result file")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "feed_scale"))
    p.add_argument(
        "--peer",
        default="",
        help="another checkout (with its .venv) to measure in the same run, "
        "e.g. a worktree of an earlier commit: its own database and server, load slices alternating",
    )
    p.add_argument("--peer-text-affect-share", type=float, default=0.0, help="--text-affect-share of the peer")
    p.add_argument("--peer-out", default="", help="the peer's results (default: <out>_base)")
    p.add_argument("--peer-note", default="", help="free text recorded with the peer's results")
    p.add_argument("--rounds", type=int, default=3, help="with --peer: slices per load run, order alternating")
    args = p.parse_args()
    args.concurrency = [int(x) for x in args.concurrency.split(",")]
    args.open_loop = [float(x) for x in args.open_loop.split(",") if x]

    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "PYTEST"))}
    base_env.update(
        DJANGO_SETTINGS_MODULE="config.settings", PYTHONPATH=str(ROOT), DEBUG="0",
        SECRET_KEY="feed-scale-bench-secret-key-not-for-production-0123456789",
        ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="0", SECURE_HSTS_SECONDS="0",
        REDIS_URL=args.redis, CELERY_BROKER_URL=args.redis, CONN_MAX_AGE="600", LOG_LEVEL="WARNING",
        FEEDMOOD_THROTTLE_USER="10000000/min",
    )  # fmt: skip
    params = {k: v for k, v in vars(args).items() if k not in ("pg", "redis", "peer", "out", "peer_out")}
    if args.peer:  # recorded as its commit, not its path
        params["peer_commit"] = sh(["git", "rev-parse", "--short", "HEAD"], base_env, Path(args.peer)).stdout.strip()
    outs = [Path(args.out)] + ([Path(args.peer_out or f"{args.out}_base")] if args.peer else [])
    datasets: list[dict[str, Any]] = []
    for i, out in enumerate(outs):
        data: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_start": loadavg()},
            "params": {
                **params,
                "side": "peer" if i else "this checkout",
                "text_affect_share": args.peer_text_affect_share if i else args.text_affect_share,
            },
            "note": args.peer_note if i else args.note,
            "scales": [],
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        if args.append and out.with_suffix(".json").is_file():
            previous = json.loads(out.with_suffix(".json").read_text())
            data["scales"] = previous["scales"]
            data["earlier_runs"] = [
                *previous.get("earlier_runs", []),
                {k: previous[k] for k in ("started", "machine", "params") if k in previous},
            ]
        datasets.append(data)
    for posts in [int(x) for x in args.scales.split(",")]:
        for data, out, scale in zip(datasets, outs, bench_scale(args, posts, base_env), strict=True):
            data["scales"] = [s for s in data["scales"] if s["posts"] != posts] + [scale]
            data["scales"].sort(key=lambda s: s["posts"])
            data["machine"]["loadavg_end"] = loadavg()
            out.with_suffix(".json").write_text(json.dumps(data, indent=2))
            write_markdown(out.with_suffix(".md"), data)
    for out in outs:
        print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
