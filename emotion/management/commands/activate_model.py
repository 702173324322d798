"""``manage.py activate_model NAME``: switch the model analyses use, after rescoring the stored images."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from emotion import rescoring, selectors
from emotion.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Activate a registered ModelVersion. When another version is active, a RescoringJob first re-analyses "
        "the stored images with it on the batch queue; the switch happens when the job completes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="name of a registered model version")
        parser.add_argument(
            "--chunk-size", type=int, help="analyses per chunk task (default FEEDMOOD_RESCORING_CHUNK_SIZE)"
        )
        parser.add_argument(
            "--parallelism", type=int, help="parallel chunk lanes (default FEEDMOOD_RESCORING_PARALLELISM)"
        )

    def handle(self, *args: Any, name: str, chunk_size: int | None, parallelism: int | None, **options: Any) -> None:
        try:
            version = selectors.model_version_get(name=name)
        except ModelVersion.DoesNotExist:
            known = ", ".join(ModelVersion.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No model version named {name!r} (registered: {known}).") from None
        job = rescoring.rescoring_start(version, chunk_size=chunk_size, parallelism=parallelism)
        version.refresh_from_db()
        if version.is_active:
            suffix = f" (rescoring job {job.pk}: {job.done} done, {job.failed} failed)" if job is not None else ""
            self.stdout.write(self.style.SUCCESS(f"{version.name} is now the active model{suffix}."))
        elif job is not None and job.is_open:
            previous = job.previous_version.name if job.previous_version else "the current model"
            self.stdout.write(self.style.SUCCESS(
                f"Rescoring job {job.pk} started: {job.total} stored images are re-analysed with {version.name} "
                f"on the batch queue; {previous} stays active until it completes "
                f"(manage.py rescoring_status {job.pk})."
            ))  # fmt: skip
        else:
            raise CommandError(f"{version.name} was not activated: {job.error if job else 'unknown reason'}")
