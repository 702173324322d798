"""Helpers for the batch-rescoring tests: two model versions, stored images analysed by the active one.

Import the fixtures next to ``emotion.fixtures``' ``fer_model`` and ``fer_model_dir``.

Images are real (emotion.testing's astronaut photos) and analyses run through
``emotion.analysis.analysis_run``, so readings are what the pipeline produces.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile

from emotion import model_versions, testing
from emotion.analysis import analysis_run
from emotion.models import FaceReading, ImageAnalysis, ModelVersion
from feedmood.models import Post, Profile


@pytest.fixture
def v1(fer_model: ModelVersion) -> ModelVersion:
    """The active model (the shipped artifact, else the tiny one)."""
    return fer_model


@pytest.fixture
def v2(fer_model_dir: Path, v1: ModelVersion) -> ModelVersion:
    """A second, inactive version (the same artifact under another name: readings are told apart by version)."""
    version, _ = model_versions.model_version_register(path=fer_model_dir, name="candidate-v2", smoke_test=False)
    return version


@cache
def image(kind: str = "one") -> bytes:
    """``one`` (one face, JPEG), ``three`` (three faces, PNG) or ``none`` (no face, PNG)."""
    if kind == "one":
        return testing.one_face_jpeg(320, 240)
    if kind == "three":
        return testing.encode(testing.multi_face_image(3), "PNG")
    return testing.encode(testing.no_face_image(320, 240), "PNG")


def post_analysis(author: Any, kind: str = "one", *, run: bool = True) -> ImageAnalysis:
    """A post with a stored image and its analysis (run with the active model unless ``run=False``).

    The author is opted in to emotion analysis: without consent no image of theirs is analysed.
    """
    Profile.objects.filter(user=author).update(emotion_consent=True)
    post = Post(author=author, text=f"a {kind} picture")
    post.image.save("photo.jpg" if kind == "one" else "photo.png", ContentFile(image(kind)), save=False)
    post.save()
    analysis = ImageAnalysis.objects.create(owner=author, source=ImageAnalysis.Source.POST, post=post)
    if run:
        analysis_run(analysis.pk)
        analysis.refresh_from_db()
    return analysis


def selfie_analysis(user: Any, *, run: bool = True) -> ImageAnalysis:
    """A selfie analysis (kept afterwards only while ``FEEDMOOD_RETAIN_SELFIES`` is on)."""
    analysis = ImageAnalysis(owner=user, source=ImageAnalysis.Source.SELFIE)
    analysis.image.save("selfie.jpg", ContentFile(image("one")), save=False)
    analysis.save()
    if run:
        analysis_run(analysis.pk)
        analysis.refresh_from_db()
    return analysis


def readings_per_version(analysis: ImageAnalysis) -> dict[int, list[int]]:
    """``{model_version_id: [face_index, ...]}`` of the analysis' readings."""
    out: dict[int, list[int]] = {}
    for version_id, index in (
        FaceReading.objects.filter(analysis=analysis)
        .order_by("face_index")
        .values_list("model_version_id", "face_index")
    ):
        out.setdefault(version_id, []).append(index)
    return out


def assert_scored_once(analyses: Iterable[ImageAnalysis], *versions: ModelVersion) -> None:
    """Every analysis has exactly its readings for each version (nothing lost, nothing duplicated).

    A selfie has one reading per face; a post image one aggregate reading if it shows any face.
    """
    for analysis in analyses:
        analysis.refresh_from_db()
        per_version = readings_per_version(analysis)
        expected = min(analysis.face_count, 1) if analysis.source == ImageAnalysis.Source.POST else analysis.face_count
        for version in versions:
            assert per_version.get(version.pk, []) == list(range(expected)), (analysis, per_version)
