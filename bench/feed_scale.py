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


def sh(cmd: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=env, check=True, text=True, capture_output=True, **kw)


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


def bench_scale(args: argparse.Namespace, posts: int, base_env: dict[str, str]) -> dict[str, Any]:
    db = f"{args.db_prefix}_{posts}"
    admin = f"{args.pg}/postgres"
    db_url = f"{args.pg}/{db}"
    env = {**base_env, "DATABASE_URL": db_url}
    result: dict[str, Any] = {"posts": posts, "database": db}
    print(f"== {posts} posts: database {db}", flush=True)

    psql(admin, f'DROP DATABASE IF EXISTS "{db}"')
    psql(admin, f'CREATE DATABASE "{db}"')
    sh([PY, "manage.py", "migrate", "-v0"], env)
    tokens_path = Path(f"/tmp/{db}_tokens.json")
    t0 = time.perf_counter()
    seeded = sh([PY, "manage.py", "seed_feed", "--users", str(args.users), "--posts", str(posts),
                 "--follows-per-user", str(args.follows_per_user), "--readings", str(args.readings),
                 "--bench-users", str(args.bench_users), "--bench-follows", str(args.bench_follows),
                 "--tokens-out", str(tokens_path)], env, timeout=3600)  # fmt: skip
    result["seed_wall_s"] = round(time.perf_counter() - t0, 1)
    seed_info = json.loads(tokens_path.read_text())
    result["seed"] = {k: seed_info[k] for k in ("counts", "timings", "seconds")}
    print(seeded.stdout.strip().splitlines()[-1], flush=True)
    if args.text_affect_share > 0:
        result["text_affects"] = add_text_affect(db_url, args.text_affect_share)
    with __import__("psycopg").connect(db_url) as conn:
        result["db_size"] = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]

    micro = sh([PY, "bench/feed_micro.py", str(tokens_path), str(args.micro_repeat)], env, timeout=1800)
    result["micro"] = json.loads(micro.stdout.strip().splitlines()[-1])
    print(
        "micro:",
        json.dumps(
            {
                k: result["micro"][k]
                for k in ("candidates_lateral", "candidates_redis_zset", "mood_from_state", "rank_pipeline")
            }
        ),
        flush=True,
    )

    tokens = [b["token"] for b in seed_info["bench_users"]]
    log = open(f"/tmp/{db}_gunicorn.log", "w")  # noqa: SIM115 (the server writes to it until it is stopped)
    server = subprocess.Popen(
        [PY, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{args.port}",
         "-w", str(args.workers), "-k", args.worker_class, "--threads", str(args.threads),
         "--keep-alive", "30", "--backlog", "256", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_ready(args.port, server)
        check = check_feed(args.port, tokens[0])
        result["sample_response"] = check
        run_load(args.port, tokens, seconds=args.warmup, concurrency=4, server_pid=server.pid)  # warm-up
        runs = []
        keys = ("throughput_rps", "p50_ms", "p95_ms", "p99_ms", "server_cpu_ms_per_request", "loadavg_after")
        for c in args.concurrency:  # every request ranks a new snapshot (?refresh=true)
            print(f"   closed loop fresh c={c} ...", flush=True)
            runs.append(
                run_load(args.port, tokens, seconds=args.duration, concurrency=c, mode="fresh", server_pid=server.pid)
            )
            print("   ", json.dumps({k: runs[-1][k] for k in keys}), flush=True)
        top = max(args.concurrency)
        fresh_top = runs[-1]["throughput_rps"]
        for mode in ("page1", "page2"):  # page 1 as served (recent snapshots reused), next pages (cursor)
            runs.append(
                run_load(args.port, tokens, seconds=args.duration, concurrency=top, mode=mode, server_pid=server.pid)
            )
            print(f"    {mode} c={top}", json.dumps({k: runs[-1][k] for k in keys}), flush=True)
        for share in args.open_loop:
            rate = max(1.0, round(fresh_top * share, 1))
            runs.append(
                run_load(
                    args.port,
                    tokens,
                    seconds=args.duration,
                    concurrency=top,
                    mode="fresh",
                    rate=rate,
                    server_pid=server.pid,
                )
            )
            print(f"    open loop fresh {rate} rps:", json.dumps({k: runs[-1][k] for k in keys}), flush=True)
        result["runs"] = runs
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
    if not args.keep_db:
        psql(admin, f'DROP DATABASE IF EXISTS "{db}"')
    return result


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


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    lines = [
        "# Feed scale benchmark",
        "",
        f"Generated by `bench/feed_scale.py` on {data['started']} ({data['machine']['cpus']} CPUs, "
        f"Python {data['machine']['python']}); gunicorn {server_shape(data['params'])}, DEBUG=0, "
        "PostgreSQL + Redis on the same host. "
        f"Load average is recorded for every run. Note: {data.get('note') or '-'}",
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
    lines += ["", "Raw figures: `feed_scale.json` next to this file.", ""]
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
    data: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "loadavg_start": loadavg()},
        "params": {k: v for k, v in vars(args).items() if k not in ("pg", "redis")},
        "note": args.note,
        "scales": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.append and out.with_suffix(".json").is_file():
        previous = json.loads(out.with_suffix(".json").read_text())
        data["scales"] = previous["scales"]
        data["earlier_runs"] = [
            *previous.get("earlier_runs", []),
            {k: previous[k] for k in ("started", "machine", "params") if k in previous},
        ]
    for posts in [int(x) for x in args.scales.split(",")]:
        data["scales"] = [s for s in data["scales"] if s["posts"] != posts] + [bench_scale(args, posts, base_env)]
        data["scales"].sort(key=lambda s: s["posts"])
        data["machine"]["loadavg_end"] = loadavg()
        out.with_suffix(".json").write_text(json.dumps(data, indent=2))
        write_markdown(out.with_suffix(".md"), data)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
