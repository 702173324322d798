"""Emotion admin: pages render, activation goes through the service, readings are not in the admin."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from emotion import model_versions
from emotion.fixtures import fer_model_dir  # noqa: F401
from emotion.models import FaceReading, ImageAnalysis, ModelVersion

pytestmark = pytest.mark.django_db


def test_changelists_render(admin_client: Client, fer_model_dir: Path, make_user) -> None:
    version, _ = model_versions.model_version_register(path=fer_model_dir, name="v1", activate=True)
    owner = make_user(username="owner")
    analysis = ImageAnalysis.objects.create(owner=owner, source="selfie", status="done", model_version=version)
    FaceReading.objects.create(
        analysis=analysis, model_version=version, face_index=0, x=1, y=2, w=30, h=30,
        probabilities={"happiness": 1.0}, dominant_emotion="happiness", confidence=1.0, valence=0.8, arousal=0.5,
    )  # fmt: skip
    for url in ("/admin/emotion/modelversion/", "/admin/emotion/imageanalysis/",
                f"/admin/emotion/imageanalysis/{analysis.pk}/change/", f"/admin/emotion/modelversion/{version.pk}/change/"):  # fmt: skip
        assert admin_client.get(url).status_code == 200, url
    assert admin_client.get("/admin/emotion/modelversion/add/").status_code == 403
    reading = FaceReading.objects.get()  # readings are not in the admin at all (per-person emotion data)
    assert admin_client.get("/admin/emotion/facereading/").status_code == 404
    assert admin_client.post(f"/admin/emotion/facereading/{reading.pk}/delete/", {"post": "yes"}).status_code == 404
    assert FaceReading.objects.exists()


def test_activate_action(admin_client: Client, fer_model_dir: Path) -> None:
    _first, _ = model_versions.model_version_register(path=fer_model_dir, name="v1", activate=True)
    second, _ = model_versions.model_version_register(path=fer_model_dir, name="v2")
    response = admin_client.post(
        "/admin/emotion/modelversion/", {"action": "activate", "_selected_action": [second.pk]}, follow=True
    )
    assert response.status_code == 200 and "v2 is now the active model" in response.content.decode().lower()
    assert list(ModelVersion.objects.filter(is_active=True)) == [second]
