"""pytest fixtures of the emotion tests (import them into ``tests/test_emotion_*.py``).

The model fixture uses the shipped artifact at ``settings.FEEDMOOD_MODEL_DIR``
when it exists and otherwise builds a tiny one once per test session (see
:mod:`emotion.testing`), so the suite runs today and uses the real model later.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from emotion import testing


@pytest.fixture(scope="session")
def fer_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Artifact directory of the model the tests run (shipped, else tiny synthetic)."""
    return testing.test_model_dir(tmp_path_factory.getbasetemp())


@pytest.fixture
def fer_model(request: pytest.FixtureRequest, fer_model_dir: Path) -> Any:
    """The test model registered and active (works with ``db`` and ``transactional_db``)."""
    from emotion import model_versions

    if "transactional_db" in request.fixturenames:
        request.getfixturevalue("transactional_db")
    else:
        request.getfixturevalue("db")
    version, _ = model_versions.model_version_register(path=fer_model_dir, activate=True)
    return version


@pytest.fixture(scope="session")
def face_jpeg() -> bytes:
    """640x480 JPEG with one face (the astronaut photo)."""
    return testing.one_face_jpeg()


@pytest.fixture(scope="session")
def faces_png() -> bytes:
    """1536x512 PNG with three faces side by side."""
    return testing.encode(testing.multi_face_image(3), "PNG")


@pytest.fixture(scope="session")
def no_face_png() -> bytes:
    """640x480 PNG gradient without any face."""
    return testing.encode(testing.no_face_image(), "PNG")


@pytest.fixture
def upload() -> Callable[..., SimpleUploadedFile]:
    """``upload(data, name="selfie.jpg")`` -> an uploaded file for services and the API."""

    def _upload(data: bytes, name: str = "selfie.jpg", content_type: str = "image/jpeg") -> SimpleUploadedFile:
        return SimpleUploadedFile(name, data, content_type=content_type)

    return _upload


@pytest.fixture
def consenting_user(make_user: Callable[..., Any]) -> Any:
    """A user who opted in to emotion analysis."""
    return make_user(username="carol", emotion_consent=True)
