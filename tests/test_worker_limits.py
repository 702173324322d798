"""Poison messages end failed, 16-bit images decode without float64 copies, the worker's pixel limit, bounded ?wait."""

from __future__ import annotations

import io
import tracemalloc
from typing import Any

import numpy as np
import pytest
from django.core.files.base import ContentFile
from PIL import Image

from emotion.fixtures import consenting_user, face_jpeg, fer_model, fer_model_dir, upload  # noqa: F401
from emotion.models import ImageAnalysis
from emotion.tasks import analyze_image
from emotion.waiting import wait_slot
from feedmood.images import decode_image_to_array

WAIT_DECLINED_HEADER = "FeedMood-Wait-Declined"


def _gradient_16bit_png(width: int, height: int) -> bytes:
    row = np.linspace(0, 65535, width, dtype=np.uint16)
    buf = io.BytesIO()
    Image.fromarray(np.tile(row, (height, 1))).save(buf, format="PNG")
    return buf.getvalue()


def _stored_selfie(user: Any, data: bytes, **fields: Any) -> ImageAnalysis:
    analysis = ImageAnalysis(owner=user, source=ImageAnalysis.Source.SELFIE, **fields)
    analysis.image.save("selfie.png", ContentFile(data), save=False)
    analysis.save()
    return analysis


def test_an_analysis_delivered_too_often_ends_failed_without_running(
    consenting_user, fer_model, face_jpeg, settings
) -> None:
    settings.FEEDMOOD_ANALYSIS_MAX_ATTEMPTS = 3
    # Three deliveries claimed it and never finished (their worker died): the fourth gives up.
    analysis = _stored_selfie(consenting_user, face_jpeg, status=ImageAnalysis.Status.PROCESSING, attempts=3)
    analyze_image.apply(args=[analysis.pk])
    analysis.refresh_from_db()
    assert analysis.status == ImageAnalysis.Status.FAILED and analysis.face_count == 0
    assert "abandoned after 3 attempts" in analysis.error and analysis.attempts == 3
    assert not analysis.readings.exists()


def _peak_bytes(data: bytes, **kwargs: Any) -> tuple[np.ndarray, int]:
    tracemalloc.start()
    try:
        gray = decode_image_to_array(data, mode="L", **kwargs)
        return gray, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_16bit_decode_makes_no_float64_copy() -> None:
    side = 1500
    gray, peak = _peak_bytes(_gradient_16bit_png(side, side))
    assert gray.dtype == np.uint8 and gray.shape == (side, side) and (gray[0, 0], gray[0, -1]) == (0, 255)
    # A float64 copy alone is 8 bytes per pixel (the old conversion peaked at 24).
    assert peak / (side * side) < 6, f"{peak / (side * side):.1f} bytes per pixel"


def test_16bit_image_is_downscaled_before_conversion() -> None:
    gray, peak = _peak_bytes(_gradient_16bit_png(1600, 800), max_side=320)
    assert gray.shape == (160, 320) and gray[:, -1].min() >= 250
    assert peak < 4 * 1600 * 800, f"{peak} bytes: the full-size image was converted"


def test_the_worker_refuses_images_over_its_pixel_limit(consenting_user, fer_model, settings) -> None:
    settings.FEEDMOOD_WORKER_MAX_IMAGE_PIXELS = 1000 * 1000
    analysis = _stored_selfie(consenting_user, _gradient_16bit_png(1200, 1000))
    analyze_image.apply(args=[analysis.pk])
    analysis.refresh_from_db()
    assert analysis.status == ImageAnalysis.Status.FAILED and "too many pixels" in analysis.error


# --- ?wait= ------------------------------------------------------------------------------------


@pytest.fixture
def selfie_post(consenting_user, client_for, fer_model, face_jpeg, upload):
    client = client_for(consenting_user)
    # The task runs on commit, which never comes inside the test's transaction: the analysis stays pending,
    # so a request that gets a slot waits the 0.3 s out and answers 202 without the declined header.
    return lambda: client.post("/api/selfies/?wait=0.3", {"image": upload(face_jpeg)}, format="multipart")


def test_wait_is_declined_while_the_user_already_waits(selfie_post, consenting_user) -> None:
    assert WAIT_DECLINED_HEADER not in selfie_post()  # a free slot: it waited
    with wait_slot(consenting_user.pk) as held:
        assert held
        response = selfie_post()
    assert response.status_code == 202 and WAIT_DECLINED_HEADER in response, response.headers
    assert WAIT_DECLINED_HEADER not in selfie_post()  # slots are released


def test_wait_is_declined_while_the_process_slots_are_taken(selfie_post, make_user, settings) -> None:
    settings.FEEDMOOD_WAITERS_PER_PROCESS = 1
    someone_else = make_user(username="someone")
    with wait_slot(someone_else.pk) as held:
        assert held
        response = selfie_post()
    assert response.status_code == 202 and WAIT_DECLINED_HEADER in response
