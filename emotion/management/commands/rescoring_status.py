"""``manage.py rescoring_status [JOB] [--resume | --cancel]``: rescoring jobs and their progress."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from emotion import rescoring, selectors
from emotion.models import RescoringJob


class Command(BaseCommand):
    help = "Show recent rescoring jobs, or one job; --resume re-enqueues an open job's chunks, --cancel stops it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job", nargs="?", type=int, help="a job id (default: the 10 newest jobs)")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--resume", action="store_true", help="re-enqueue the job's unfinished lanes")
        action.add_argument("--cancel", action="store_true", help="cancel the job (the active model stays)")

    def handle(self, *args: Any, job: int | None, resume: bool, cancel: bool, **options: Any) -> None:
        if job is None:
            if resume or cancel:
                raise CommandError("--resume and --cancel need a job id.")
            jobs = selectors.rescoring_jobs_recent()
            if not jobs:
                self.stdout.write("No rescoring jobs.")
            for row in jobs:
                self.stdout.write(self._line(row))
            return
        row = RescoringJob.objects.select_related("model_version", "previous_version").filter(pk=job).first()
        if row is None:
            raise CommandError(f"No rescoring job {job}.")
        if resume:
            self.stdout.write(f"Re-enqueued {rescoring.rescoring_resume(row.pk)} chunk(s).")
        elif cancel:
            row = rescoring.rescoring_cancel(row)
        row.refresh_from_db()
        self.stdout.write(self._line(row))
        if row.error:
            self.stdout.write(f"  error: {row.error}")

    def _line(self, job: RescoringJob) -> str:
        started = job.started_at.isoformat(timespec="seconds") if job.started_at else "-"
        finished = job.finished_at.isoformat(timespec="seconds") if job.finished_at else "-"
        return (
            f"job {job.pk}: {job.model_version.name} {job.status} {job.progress:.0%} "
            f"({job.done} done, {job.failed} failed of {job.total}; cursor {job.cursor}) "
            f"started {started} finished {finished}"
        )
