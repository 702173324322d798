"""``manage.py register_model PATH [--name N] [--activate]``: register an exported FER model."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from emotion import model_versions, selectors


class Command(BaseCommand):
    help = "Register an exported model artifact (a directory with model_card.json) as a ModelVersion."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="artifact directory (or its model_card.json)")
        parser.add_argument("--name", help="version name (default: the card's name)")
        parser.add_argument("--activate", action="store_true", help="make it the active model")

    def handle(self, *args: Any, path: str, name: str | None, activate: bool, **options: Any) -> None:
        try:
            version, created = model_versions.model_version_register(path=path, name=name, activate=activate)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        verb = "Registered" if created else "Already registered"
        state = "active" if version.is_active else "inactive"
        job = selectors.rescoring_job_open() if activate and not version.is_active else None
        if job is not None and job.model_version_id == version.pk:
            state = f"inactive until rescoring job {job.pk} completes"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {version.name} ({len(version.labels)} labels, {state}) at {version.artifact_path}"
            )
        )
