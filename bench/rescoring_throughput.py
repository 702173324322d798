"""Benchmark of batch rescoring: images/s per worker, and with two workers.

    .venv/bin/python bench/rescoring_throughput.py [--images 300] [--workers 1,2] [--chunk-size 16]

What it does, against REAL services on this machine (PostgreSQL + Redis):

1. migrates and empties a dedicated database (``--database``, default
   ``postgres://postgres@127.0.0.1:5432/feedmood_rescoring_bench``; created if
   missing) and uses a dedicated Redis database (``--broker``, default
   ``redis://127.0.0.1:6379/5``) so no test or other worker sees its messages;
2. seeds ``--images`` posts with a stored 640x480 JPEG with one face
   (scikit-image's astronaut) analysed with the shipped model (version A);
3. for each entry of ``--workers`` (N): starts N ``celery worker -Q batch -c 1``
   processes, registers the same artifact under a new name and activates it
   with ``parallelism`` = max(workers) lanes, waits for the job to complete,
   and stops the workers.  Every run rescores all images (the previous run's
   version is then the active one).

Reported per run: wall time from activation to the switch (includes each
worker child loading the model) and the steady rate between 10 % and 90 %
of the job (polling ``done``), in images/s.  Post images are analysed as the service does, with the group
search unless ``FEEDMOOD_POST_IMAGE_GROUP_SEARCH=0``.  Results go to
``bench/results/rescoring_throughput.json`` and ``.md`` with the CPU count and
the load average (a busy host deflates every figure: re-run on an idle one).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/feedmood_rescoring_bench"
DEFAULT_BROKER = "redis://127.0.0.1:6379/5"


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database named in ``url`` if it does not exist."""
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(database: str, broker: str, media: Path) -> dict[str, str]:
    """Point Django at the bench database, broker and media dir; returns the env for the workers."""
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database,
        "CELERY_BROKER_URL": broker,
        "CELERY_RESULT_BACKEND": broker,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "MEDIA_ROOT": str(media),
        "CONN_MAX_AGE": "0",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return {**os.environ, **env}


def seed(count: int) -> tuple[int, float]:
    """Empty the bench database, register version A and add ``count`` analysed post images; returns (A id, s)."""
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from emotion import model_versions, testing
    from emotion.analysis import analysis_run
    from emotion.models import ImageAnalysis
    from feedmood.models import Post, Profile

    call_command("migrate", verbosity=0)
    call_command("flush", interactive=False, verbosity=0)
    from django.conf import settings

    version, _ = model_versions.model_version_register(
        path=settings.FEEDMOOD_MODEL_DIR, name="bench-seed", activate=True
    )
    author = get_user_model().objects.create_user("bench-author", password=uuid.uuid4().hex)
    Profile.objects.filter(user=author).update(emotion_consent=True)  # no analysis without consent
    image = testing.one_face_jpeg(640, 480)
    started = time.perf_counter()
    for i in range(count):
        post = Post(author=author, text=f"bench {i}", image_width=640, image_height=480)
        post.image.save("photo.jpg", ContentFile(image), save=False)
        post.save()
        analysis = ImageAnalysis.objects.create(owner=author, source=ImageAnalysis.Source.POST, post=post)
        analysis_run(analysis.pk, notify=False)
    analysed = ImageAnalysis.objects.filter(status=ImageAnalysis.Status.DONE, model_version=version).count()
    if analysed != count:
        raise RuntimeError(f"seeding analysed {analysed} of {count} images: nothing to rescore is no benchmark")
    return version.pk, time.perf_counter() - started


def start_workers(count: int, env: dict[str, str], log_dir: Path) -> list[tuple[subprocess.Popen, Path]]:
    workers = []
    for i in range(count):
        log_path = log_dir / f"worker-{count}-{i}.log"
        cmd = [
            sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "batch", "-c", "1", "--pool=prefork",
            "-n", f"bench-rescoring-{i}-{uuid.uuid4().hex[:6]}@%h", "--loglevel=INFO", "--without-gossip",
            "--without-mingle",
        ]  # fmt: skip
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(  # LOG_LEVEL=INFO: the project's logging would hide Celery's "ready."
                cmd,
                cwd=ROOT,
                env={**env, "LOG_LEVEL": "INFO"},
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        workers.append((process, log_path))
    deadline = time.monotonic() + 90
    for process, log_path in workers:
        while " ready." not in log_path.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                stop_workers(workers)
                raise RuntimeError(f"worker did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
    return workers


def stop_workers(workers: list[tuple[subprocess.Popen, Path]]) -> None:
    for process, _ in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process, _ in workers:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def run_job(
    workers: int, parallelism: int, chunk_size: int, env: dict[str, str], log_dir: Path, timeout: float
) -> dict:
    """Rescore every stored image with a new version through ``workers`` worker processes."""
    from emotion import model_versions, rescoring
    from emotion.models import ModelVersion, RescoringJob

    active = ModelVersion.objects.get(is_active=True)
    target, _ = model_versions.model_version_register(
        path=active.artifact_dir, name=f"bench-{workers}w-{uuid.uuid4().hex[:6]}", smoke_test=False
    )
    purge_queues()  # e.g. recompute_all of the previous switch: not part of this measurement
    pool = start_workers(workers, env, log_dir)
    try:
        t0 = time.perf_counter()
        job = rescoring.rescoring_start(target, chunk_size=chunk_size, parallelism=parallelism)
        marks: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while True:
            status, done, failed, total = (
                RescoringJob.objects.filter(pk=job.pk).values_list("status", "done", "failed", "total").get()
            )
            now = time.perf_counter()
            for share in (0.1, 0.9):
                if f"{share}" not in marks and done + failed >= share * total:
                    marks[f"{share}"] = now
                    marks[f"{share}_count"] = done + failed
            if status not in RescoringJob.OPEN_STATUSES:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"job {job.pk} not finished after {timeout}s ({done + failed}/{total})")
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    finally:
        stop_workers(pool)
    job.refresh_from_db()
    steady_n = marks["0.9_count"] - marks["0.1_count"]
    steady_s = marks["0.9"] - marks["0.1"]
    return {
        "workers": workers,
        "concurrency_per_worker": 1,
        "parallelism_lanes": parallelism,
        "chunk_size": chunk_size,
        "job_id": job.pk,
        "status": job.status,
        "total": job.total,
        "done": job.done,
        "failed": job.failed,
        "wall_s": round(wall, 3),
        "images_per_s_wall": round(job.total / wall, 2) if wall else None,
        "steady_images": steady_n,
        "steady_s": round(steady_s, 3),
        "images_per_s_steady": round(steady_n / steady_s, 2) if steady_s > 0 else None,
        "active_after": ModelVersion.objects.get(is_active=True).name,
    }


def purge_queues() -> int:
    """Drop every message in the bench's own Redis database (never a shared one: see ``--broker``)."""
    from config.celery import app

    return app.control.purge()


def write_markdown(result: dict, path: Path) -> None:
    host = result["host"]
    busy = host["loadavg_before"][0] > 0.5
    lines = [
        "# Batch rescoring throughput",
        "",
        f"- when: {result['when']}; commit `{result['commit']}`; host: {host['cpus']} CPUs, {host['machine']}, "
        f"Python {host['python']}",
        f"- load average (1/5/15 min) before: {host['loadavg_before']}, after: {host['loadavg_after']}"
        + ("  **(host was busy: figures are pessimistic)**" if busy else ""),
        f"- database: PostgreSQL (`{result['settings']['database']}`), broker: Redis (`{result['settings']['broker']}`)",
        f"- images: {result['images']} post images, 640x480 JPEG with one face (scikit-image astronaut); "
        f"model `{result['model']}`; post-image group search "
        f"{'on' if result['settings']['post_image_group_search'] else 'off'} (`FEEDMOOD_POST_IMAGE_GROUP_SEARCH`); "
        f"seeding (version A, in-process) took {result['seed_s']} s",
        "- each worker: `celery -A config worker -Q batch -c 1` (prefork, one pool child);"
        " the job: `rescoring_start(version, chunk_size, parallelism)`",
        "",
        "| workers | lanes | chunk | images | failed | wall s | images/s (wall) | images/s (steady 10-90 %) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in result["runs"]:
        lines.append(
            f"| {run['workers']} | {run['parallelism_lanes']} | {run['chunk_size']} | {run['total']} | {run['failed']} "
            f"| {run['wall_s']} | {run['images_per_s_wall']} | {run['images_per_s_steady']} |"
        )
    if result.get("speedup_steady") is not None:
        lines += ["", f"Speed-up from 1 to 2 workers (steady rate): **{result['speedup_steady']}x**."]
    lines += [
        "",
        "Wall time runs from `rescoring_start` to the version switch and includes each pool child loading the "
        "model on its first chunk; the steady rate is taken between 10 % and 90 % of the job.  With 2 CPU cores "
        "two workers can at best double the rate; a background job on the host (see the load average) takes "
        "its share.",
        "",
        f"Command: `python bench/rescoring_throughput.py {' '.join(result['argv'])}`",
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts, one run each")
    parser.add_argument("--chunk-size", type=int, default=16)
    parser.add_argument("--database", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--broker", default=os.environ.get("BENCH_BROKER_URL", DEFAULT_BROKER))
    parser.add_argument("--timeout", type=float, default=900, help="seconds per job")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    worker_counts = [int(x) for x in args.workers.split(",") if x.strip()]
    if not args.database.startswith(("postgres://", "postgresql://")) or not args.broker.startswith("redis://"):
        parser.error("needs a PostgreSQL --database and a redis:// --broker (workers share them)")

    load_before = [round(x, 2) for x in os.getloadavg()]
    ensure_database(args.database)
    work = Path(tempfile.mkdtemp(prefix="feedmood-rescoring-bench-"))
    env = setup_django(args.database, args.broker, work / "media")
    from django.conf import settings

    version_id, seed_s = seed(args.images)
    runs = [run_job(n, max(worker_counts), args.chunk_size, env, work, args.timeout) for n in worker_counts]
    purge_queues()
    by_workers = {run["workers"]: run for run in runs}
    speedup = None
    if 1 in by_workers and 2 in by_workers and by_workers[1]["images_per_s_steady"]:
        speedup = round(by_workers[2]["images_per_s_steady"] / by_workers[1]["images_per_s_steady"], 2)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    result = {
        "bench": "rescoring_throughput",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit.stdout.strip() or "unknown",
        "argv": sys.argv[1:] if argv is None else argv,
        "host": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "loadavg_before": load_before,
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "settings": {
            "database": args.database,
            "broker": args.broker,
            "media_root": str(settings.MEDIA_ROOT),
            "post_image_group_search": settings.FEEDMOOD_POST_IMAGE_GROUP_SEARCH,
        },
        "model": str(settings.FEEDMOOD_MODEL_DIR.name),
        "seed_version_id": version_id,
        "images": args.images,
        "seed_s": round(seed_s, 2),
        "runs": runs,
        "speedup_steady": speedup,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rescoring_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    write_markdown(result, args.out / "rescoring_throughput.md")
    print((args.out / "rescoring_throughput.md").read_text())
    ok = all(run["status"] == "completed" for run in runs)
    if ok:
        shutil.rmtree(work, ignore_errors=True)  # seeded media and worker logs
    else:
        print(f"worker logs and media kept in {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
