"""``manage.py seed_feed``: a synthetic social graph for feed benchmarks (see ``recommender.seeding``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction

from recommender.seeding import SeedConfig, SeedError, seed, seed_model_version


class Command(BaseCommand):
    help = "Seed users, follows, posts with affect and selfie moods fast (COPY on PostgreSQL)."

    def add_arguments(self, parser: Any) -> None:
        d = SeedConfig()
        parser.add_argument("--users", type=int, default=d.users)
        parser.add_argument("--posts", type=int, default=d.posts)
        parser.add_argument("--follows-per-user", type=int, default=d.follows_per_user)
        parser.add_argument("--readings", type=int, default=d.readings, help="selfie readings per consenting user")
        parser.add_argument("--days", type=int, default=d.days, help="post times spread over this many days")
        parser.add_argument(
            "--bench-users",
            type=int,
            default=d.bench_users,
            help="users with a token, a negative mood and --bench-follows follows",
        )
        parser.add_argument("--bench-follows", type=int, default=d.bench_follows)
        parser.add_argument("--consent-share", type=float, default=d.consent_share)
        parser.add_argument("--seed", type=int, default=d.seed)
        parser.add_argument("--database-url", default=None, help="seed this database instead of the default one")
        parser.add_argument("--tokens-out", default=None, help="write bench users and tokens to this JSON file")

    def handle(self, *args: Any, **opts: Any) -> None:
        alias = "default"
        if opts["database_url"]:
            alias = "seed_feed"
            configured = connections.configure_settings(
                {"default": connections.databases["default"], alias: dj_database_url.parse(opts["database_url"])}
            )
            connections.databases[alias] = configured[alias]
        cfg = SeedConfig(
            users=opts["users"], posts=opts["posts"], follows_per_user=opts["follows_per_user"],
            readings=opts["readings"], days=opts["days"], bench_users=opts["bench_users"],
            bench_follows=opts["bench_follows"], consent_share=opts["consent_share"], seed=opts["seed"],
        )  # fmt: skip
        if cfg.users < 2 or cfg.posts < 0:
            raise CommandError("--users must be >= 2 and --posts >= 0")
        connection = connections[alias]
        started = time.perf_counter()
        self.stdout.write(f"Seeding {cfg.users} users, {cfg.posts} posts into {connection.settings_dict['NAME']}")
        try:
            seed_model_version(alias)  # a fresh install registers its real model here, before the bulk writes
            with transaction.atomic(using=alias):
                result = seed(connection, cfg, log=self.stdout.write)
        except SeedError as exc:
            raise CommandError(str(exc)) from None
        if connection.vendor == "postgresql":  # sets the visibility map: index-only scans
            t0 = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
            result.timings["vacuum"] = round(time.perf_counter() - t0, 3)
        total = time.perf_counter() - started
        self.stdout.write(self.style.SUCCESS(f"Seeded in {total:.1f}s: {result.counts}"))
        if opts["tokens_out"]:
            Path(opts["tokens_out"]).write_text(
                json.dumps(
                    {
                        "bench_users": result.bench_users,
                        "counts": result.counts,
                        "timings": result.timings,
                        "seconds": round(total, 2),
                        "model_version_id": result.model_version_id,
                    },
                    indent=2,
                )
            )
