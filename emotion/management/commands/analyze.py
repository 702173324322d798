"""``manage.py analyze IMAGE [IMAGE ...] [--model PATH]``: run the FER pipeline on local files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from emotion import model_versions, pipeline
from emotion.inference import get_classifier


class Command(BaseCommand):
    help = "Print the faces and emotions found in local image files (nothing is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("images", nargs="+", metavar="IMAGE")
        parser.add_argument("--model", help="artifact directory (default: the active model version)")

    def handle(self, *args: Any, images: list[str], model: str | None, **options: Any) -> None:
        classifier = self._classifier(model)
        spec = settings.FEEDMOOD_FER_PIPELINE or classifier.card.pipeline_settings
        try:
            config = pipeline.config_from(spec)  # like the service: the setting, else the model card's
        except ValueError as exc:
            raise CommandError(f"FEEDMOOD_FER_PIPELINE / model card pipeline: {exc}") from None
        self.stdout.write(
            f"model: {classifier.name} ({', '.join(classifier.labels)}); "
            f"test-time flip {'on' if classifier.tta else 'off'}, temperature {classifier.temperature:.3f}"
            + (" with class bias" if classifier.class_bias is not None else "")
        )
        failures = 0
        for name in images:
            try:
                data = Path(name).read_bytes()
                result = pipeline.analyze_bytes(data, classifier, config)
            except OSError as exc:
                failures += 1
                self.stderr.write(f"{name}: error: cannot read file ({exc.strerror or exc})")
                continue
            except pipeline.PipelineError as exc:
                failures += 1
                self.stderr.write(f"{name}: error: {exc.message}")
                continue
            self._print(name, result)
        if failures:
            raise CommandError(f"{failures} of {len(images)} image(s) could not be analysed.")

    def _classifier(self, model: str | None) -> Any:
        try:
            if model:
                return get_classifier(model)
            version = model_versions.model_version_ensure_active()
            if version is None:
                raise CommandError("No active model version: pass --model PATH or run register_model --activate.")
            return get_classifier(version.artifact_dir)
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot load the model: {exc}") from None
        except DatabaseError as exc:
            raise CommandError(
                f"Cannot read the active model version from the database ({exc}): "
                "run `manage.py migrate` first, or pass --model PATH."
            ) from None

    def _print(self, name: str, result: pipeline.PipelineResult) -> None:
        timing = (
            f"decode {result.decode_ms:.1f} ms, detect {result.detect_ms:.1f} ms, classify {result.classify_ms:.1f} ms"
        )
        self.stdout.write(f"{name}: {result.width}x{result.height}, {result.face_count} face(s) ({timing})")
        if not result.faces:
            self.stdout.write("  no face found")
        for face in result.faces:
            box = face.box
            top = ", ".join(f"{label} {p:.2f}" for label, p in face.top(3))
            self.stdout.write(
                f"  face {face.index}: box x={box.x} y={box.y} w={box.w} h={box.h}  "
                f"{face.dominant} ({face.confidence:.2f})  top-3: {top}  "
                f"valence {face.valence:+.2f} arousal {face.arousal:+.2f}"
            )
