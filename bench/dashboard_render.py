"""Admin dashboard render time at scale: seed ~100k analyses, time ``GET /admin/dashboard/``.

Seeds a separate database (PostgreSQL: a fresh ``<db>_dashbench`` next to
``--database-url``; SQLite: a temporary file) with ``--analyses`` image
analyses spread over 14 days (``--last-day-share`` of them in the last 24 h),
a face reading for every finished one, ``--users`` users with profiles and
moods, then times the full staff request through Django's test client
(selectors + SVG + template) ``--runs`` times after two warm-ups, both cold
(``?refresh=1``: every aggregate recomputed) and with the heavy panels cached.

Results: ``bench/results/dashboard-<postgresql|sqlite>-<YYYYMMDD-HHMM>.json``.  Verify small first::

    .venv/bin/python bench/dashboard_render.py --analyses 5000 --users 200 --runs 3
    .venv/bin/python bench/dashboard_render.py --database-url postgres://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LABELS = ("anger", "contempt", "disgust", "fear", "happiness", "neutral", "sadness", "surprise")


def prepare_database(url: str | None) -> tuple[str, str]:
    """A fresh database URL for the bench and a description of it."""
    if url and url.startswith(("postgres://", "postgresql://")):
        import psycopg

        base, _, name = url.rpartition("/")
        bench_name = f"{name or 'feedmood'}_dashbench"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{bench_name}"')
            conn.execute(f'CREATE DATABASE "{bench_name}"')
        return f"{base}/{bench_name}", f"PostgreSQL database {bench_name}"
    path = Path(tempfile.mkdtemp(prefix="dashbench-")) / "bench.sqlite3"
    return f"sqlite:///{path}", f"SQLite file {path}"


def seed(args: argparse.Namespace) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from emotion.models import FaceReading, ImageAnalysis, ModelVersion
    from feedmood.models import Profile
    from recommender.models import MoodState

    rng = random.Random(args.seed)
    now = datetime.now(UTC)
    started = time.perf_counter()
    # created_at is auto_now_add: switch it off in this process to backdate rows in bulk.
    for model in (ImageAnalysis, FaceReading):
        model._meta.get_field("created_at").auto_now_add = False
    User = get_user_model()
    with transaction.atomic():
        version = ModelVersion.objects.create(
            name="bench-model", labels=list(LABELS), artifact_path="/nonexistent", is_active=True, activated_at=now,
            metrics={"accuracy": 0.71, "macro_f1": 0.64, "ece_after_calibration": 0.03, "split": "PublicTest",
                     "per_class": {k: {"f1": rng.uniform(0.2, 0.9)} for k in LABELS}},
        )  # fmt: skip
        User.objects.bulk_create(
            # Established accounts: the dashboard counts accounts older than FEEDMOOD_DASHBOARD_MIN_ACCOUNT_AGE_DAYS.
            [User(username=f"bench{i}", password="!", date_joined=now - timedelta(days=60)) for i in range(args.users)],
            batch_size=2000,
        )
        users = list(User.objects.filter(username__startswith="bench").values_list("pk", flat=True))
        Profile.objects.bulk_create(
            [Profile(user_id=pk, emotion_consent=rng.random() < 0.7, mood_policy=rng.choice(["repair", "congruent", "off"]))
             for pk in users], batch_size=2000, ignore_conflicts=True,
        )  # fmt: skip
        statuses = ["done"] * 80 + ["no_face"] * 12 + ["failed"] * 6 + ["pending"] + ["processing"]
        analyses = []
        for _ in range(args.analyses):
            recent = rng.random() < args.last_day_share
            at = now - timedelta(seconds=rng.uniform(0, 86_400 if recent else 14 * 86_400))
            status = rng.choice(statuses)
            final = status in ("done", "no_face", "failed")
            analyses.append(ImageAnalysis(
                owner_id=rng.choice(users), source="selfie", status=status, model_version=version if final else None,
                queue_wait_ms=rng.lognormvariate(4.5, 0.9) if status != "pending" else None,
                total_ms=rng.lognormvariate(3.7, 0.4) if final else None, created_at=at,
                finished_at=at if final else None, face_count=1 if status == "done" else 0,
            ))  # fmt: skip
        ImageAnalysis.objects.bulk_create(analyses, batch_size=5000)
        done = ImageAnalysis.objects.filter(status="done").values_list("pk", "created_at")
        readings = []
        for pk, at in done.iterator(chunk_size=5000):
            label = rng.choice(LABELS)
            readings.append(FaceReading(
                analysis_id=pk, model_version=version, face_index=0, x=0, y=0, w=48, h=48,
                probabilities={k: (0.65 if k == label else 0.05) for k in LABELS}, dominant_emotion=label,
                confidence=0.9, valence=rng.uniform(-1, 1), arousal=rng.uniform(-1, 1), created_at=at,
            ))  # fmt: skip
        FaceReading.objects.bulk_create(readings, batch_size=5000)
        consenting = list(Profile.objects.filter(emotion_consent=True).values_list("user_id", flat=True))
        MoodState.objects.bulk_create([
            MoodState(user_id=pk, model_version=version, half_life_hours=24.0,
                      as_of=now - timedelta(hours=rng.uniform(0, 72)), weight_sum=0.9, decay_sum=1.0,
                      valence_sum=0.9 * rng.uniform(-1, 1), arousal_sum=0.1,
                      probability_sums={k: rng.random() for k in LABELS}, reading_count=3)
            for pk in consenting
        ], batch_size=2000)  # fmt: skip
        User.objects.create_superuser("bench-staff", "staff@example.com", "pw")
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {
        "analyses": ImageAnalysis.objects.count(),
        "analyses_last_24h": ImageAnalysis.objects.filter(created_at__gte=now - timedelta(hours=24)).count(),
        "readings": FaceReading.objects.count(),
        "users": len(users),
        "mood_states": len(consenting),
        "seed_seconds": round(time.perf_counter() - started, 1),
    }


def measure(runs: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from dashboard.views import build_context

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench-staff"))
    for _ in range(2):  # warm-up
        assert client.get("/admin/dashboard/?refresh=1").status_code == 200
    cold_ms, warm_ms, context_ms = [], [], []
    for _ in range(runs):
        t = time.perf_counter()
        resp = client.get("/admin/dashboard/?refresh=1")  # every aggregate recomputed
        cold_ms.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200
        t = time.perf_counter()
        resp = client.get("/admin/dashboard/")  # heavy panels from the cache
        warm_ms.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200
        t = time.perf_counter()
        build_context()
        context_ms.append((time.perf_counter() - t) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get("/admin/dashboard/?refresh=1")
    slowest = sorted(((float(q["time"]) * 1000, q["sql"][:160]) for q in queries.captured_queries), reverse=True)[:5]

    def stats(xs: list[float]) -> dict:
        xs = sorted(xs)
        return {"p50": round(statistics.median(xs), 1), "max": round(xs[-1], 1), "min": round(xs[0], 1)}

    return {
        "request_cold_ms": stats(cold_ms),
        "request_cached_ms": stats(warm_ms),
        "build_context_ms": stats(context_ms),
        "queries": len(queries),
        "slowest_queries_ms": [[round(ms, 1), sql] for ms, sql in slowest],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL"), help="PostgreSQL server to use (default: SQLite)"
    )
    p.add_argument("--analyses", type=int, default=100_000)
    p.add_argument("--last-day-share", type=float, default=0.3, help="share of analyses in the last 24 h")
    p.add_argument("--users", type=int, default=3000)
    p.add_argument("--runs", type=int, default=15)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args()

    url, where = prepare_database(args.database_url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "dashboard-bench")
    os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("STATIC_ROOT", tempfile.mkdtemp(prefix="dashbench-static-"))  # DEBUG=0 needs the manifest
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    data = seed(args)
    print(f"seeded {where}: {data}", flush=True)
    timing = measure(args.runs)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    result = {
        "bench": "dashboard_render",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        },
        "database": where.split(" ")[0],
        "settings": {"DEBUG": os.environ.get("DEBUG"), "broker": os.environ.get("CELERY_BROKER_URL", "memory (eager)")},
        "data": data,
        **timing,
        "target_ms": 300,
    }
    print(json.dumps(result, indent=2))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"dashboard-{result['database'].lower()}-{datetime.now():%Y%m%d-%H%M}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    if url.startswith("postgres"):
        from django.db import connections

        connections.close_all()
        import psycopg

        with psycopg.connect(args.database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}"')
    else:
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
