"""``manage.py activate_model NAME``: switch the model new analyses use."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from emotion import selectors, services
from emotion.models import ModelVersion


class Command(BaseCommand):
    help = "Make a registered ModelVersion the active model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="name of a registered model version")

    def handle(self, *args: Any, name: str, **options: Any) -> None:
        try:
            version = selectors.model_version_get(name=name)
        except ModelVersion.DoesNotExist:
            known = ", ".join(ModelVersion.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"No model version named {name!r} (registered: {known}).") from None
        services.model_version_activate(version)
        self.stdout.write(self.style.SUCCESS(f"{version.name} is now the active model."))
