"""End to end: a sad selfie through the real emotion pipeline re-ranks the next feed.

A consenting user follows people who posted photos; the happy photos are the
oldest, so the plain ranking puts them low.  The user uploads a SAD selfie
through ``POST /api/selfies/``: the real pipeline (Haar detection + the shipped
model) analyses it, ``analysis_finished`` updates the mood, and the next
``GET /api/feed/`` lifts the happy posts above where the plain ranking put
them, with reasons.  Post images go through ``POST /api/posts/`` and the same
pipeline (``post_created`` -> analysis -> ``PostAffect``).

Images: real FER-2013 face crops (``$FEEDMOOD_FER_DATA``) that the real
model classifies as sad / happy, upscaled onto a larger canvas so the Haar
detector finds them; each is checked through ``pipeline.analyze_bytes``
before use.  Needs the shipped model at ``settings.FEEDMOOD_MODEL_DIR``
(``ml/artifacts/ferplus``) and the FER data; skipped otherwise.
"""

from __future__ import annotations

import csv
import gzip
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

from feedmood.models import Follow, Post
from recommender.models import MoodState, PostAffect
from tests.fer_data import shared_fer_dir

FER_DIR = shared_fer_dir()
FER_CODES = {"happiness": 3, "sadness": 4}
SCAN_ROWS = 4000

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(FER_DIR is None, reason="shared FER-2013 data not present"),
    pytest.mark.skipif(
        not (Path(settings.FEEDMOOD_MODEL_DIR) / "model_card.json").is_file(),
        reason="the shipped emotion model (ml/artifacts/ferplus) is not there yet",
    ),
]


def render(face: np.ndarray) -> bytes:
    """A 48x48 crop upscaled to 192 px on a 240x240 grey PNG canvas (Haar-detectable)."""
    import cv2

    from emotion import testing

    canvas = np.full((240, 240), 128, np.uint8)
    canvas[24:216, 24:216] = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
    return testing.encode(canvas, "PNG")


@lru_cache(maxsize=1)
def verified_images() -> dict[str, list[bytes]]:
    """Rendered FER faces that the real pipeline reads as sad / happy (best first)."""
    from emotion import pipeline
    from emotion.inference import get_classifier

    classifier = get_classifier(settings.FEEDMOOD_MODEL_DIR)
    crops: dict[str, list[np.ndarray]] = {k: [] for k in FER_CODES}
    with gzip.open(FER_DIR / "fer2013.csv.gz", "rt", newline="") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            if i >= SCAN_ROWS:
                break
            for label, code in FER_CODES.items():
                if int(row["emotion"]) == code:
                    crops[label].append(np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48))
    out: dict[str, list[bytes]] = {}
    for label, faces in crops.items():
        batch = np.stack(faces)
        probs = classifier.predict_proba(batch)[:, list(classifier.labels).index(label)]
        chosen: list[bytes] = []
        for idx in np.argsort(-probs)[:40]:
            data = render(batch[idx])
            result = pipeline.analyze_bytes(data, classifier)
            if result.face_count == 1 and result.faces[0].dominant == label:
                chosen.append(data)
            if len(chosen) == 4:
                break
        out[label] = chosen
    return out


def upload(data: bytes, name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/png")


def test_sad_selfie_lifts_happy_posts(make_user, client_for, django_capture_on_commit_callbacks):
    from emotion import model_versions

    images = verified_images()
    if len(images["sadness"]) < 1 or len(images["happiness"]) < 3:
        pytest.fail(f"the real model read too few FER crops as intended: { {k: len(v) for k, v in images.items()} }")
    version, _ = model_versions.model_version_register(path=Path(settings.FEEDMOOD_MODEL_DIR), activate=True)

    viewer = make_user(username="sadviewer", emotion_consent=True)
    friends = [make_user(username=f"friend{i}", emotion_consent=True) for i in range(6)]  # post images need consent
    for f in friends:
        Follow.objects.create(follower=viewer, followee=f)

    # Three happy photos (oldest), then three text posts (newest): the plain ranking is newest first.
    happy_ids = []
    with django_capture_on_commit_callbacks(execute=True):
        for i, data in enumerate(images["happiness"][:3]):
            response = client_for(friends[i]).post(
                "/api/posts/", {"text": f"photo {i}", "image": upload(data, f"happy{i}.png")}, format="multipart"
            )
            assert response.status_code == 201, response.content
            happy_ids.append(response.json()["id"])
    for i in range(3):
        client_for(friends[3 + i]).post("/api/posts/", {"text": f"just text {i}"}, format="json")
    for n, pid in enumerate(happy_ids):  # make them clearly older than the text posts
        Post.objects.filter(pk=pid).update(created_at=Post.objects.get(pk=pid).created_at - timedelta(hours=3 + n))
    affects = {a.post_id: a for a in PostAffect.objects.filter(post_id__in=happy_ids)}
    assert set(affects) == set(happy_ids), "every happy photo got an affect from the real pipeline"
    assert all(
        a.dominant_emotion == "happiness" and a.valence > 0 and a.model_version_id == version.pk
        for a in affects.values()
    )

    client = client_for(viewer)
    before = client.get("/api/feed/").json()
    assert before["mood"]["state"] == "unknown" and before["policy"]["applied"] is False
    plain_positions = {item["post"]["id"]: i for i, item in enumerate(before["results"])}
    assert all(plain_positions[p] >= 3 for p in happy_ids)  # the plain ranking puts them last

    # The sad selfie, through the real API and pipeline (eager Celery in tests).
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/selfies/", {"image": upload(images["sadness"][0], "me.png")}, format="multipart")
    assert response.status_code in (201, 202), response.content
    assert MoodState.objects.filter(user=viewer, model_version=version).exists()

    mood = client.get("/api/me/mood/").json()
    assert mood["state"] == "known" and mood["label"] == "sadness" and mood["valence"] < 0

    after = client.get("/api/feed/").json()
    assert after["mood"]["label"] == "sadness" and after["policy"]["name"] == "repair" and after["policy"]["applied"]
    positions = {item["post"]["id"]: i for i, item in enumerate(after["results"])}
    reasons = {item["post"]["id"]: item["reason"] for item in after["results"]}
    for pid in happy_ids:
        assert positions[pid] < plain_positions[pid], (positions, plain_positions)
        assert reasons[pid] == "moved up for your mood: the photo"  # another person's photo: no tone named
    assert all(reasons[p] == "base ranking" for p in positions if p not in happy_ids)
    # And with the plain policy the order is back to the base ranking.
    off = client.get("/api/feed/", {"policy": "off"}).json()
    assert [i["post"]["id"] for i in off["results"]] == [i["post"]["id"] for i in before["results"]]
