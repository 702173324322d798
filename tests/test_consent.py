"""No image of a user without emotion consent is ever face-analysed.

Consent is checked when the analysis is queued and again when the task runs;
a post image keeps only one aggregate reading (other people may be in it).
"""

from __future__ import annotations

from typing import Any

import pytest

from emotion import submission
from emotion.analysis import analysis_run
from emotion.fixtures import consenting_user, face_jpeg, faces_png, fer_model, fer_model_dir, upload  # noqa: F401
from emotion.models import FaceReading, ImageAnalysis
from feedmood.models import Post, Profile
from recommender.models import PostAffect

pytestmark = pytest.mark.django_db

MINE = "/api/me/emotions/"


def post_through_api(client: Any, data: bytes, upload: Any, capture: Any) -> Post:
    with capture(execute=True):
        response = client.post(
            "/api/posts/", {"text": "hi", "image": upload(data, "p.png", "image/png")}, format="multipart"
        )
    assert response.status_code == 201, response.content
    return Post.objects.get(pk=response.json()["id"])


def test_a_non_consenting_authors_face_post_yields_no_reading(
    make_user, client_for, fer_model, upload, face_jpeg, django_capture_on_commit_callbacks
) -> None:
    author = make_user(username="noconsent")
    client = client_for(author)
    post = post_through_api(client, face_jpeg, upload, django_capture_on_commit_callbacks)
    assert not ImageAnalysis.objects.filter(post=post).exists()
    assert not FaceReading.objects.exists() and not PostAffect.objects.filter(post=post, source="faces").exists()
    assert client.get(MINE).json()["count"] == 0


def test_consent_is_checked_again_when_the_task_runs(
    consenting_user, fer_model, upload, face_jpeg, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=False):  # queued, not run yet
        analysis = submission.selfie_submit(user=consenting_user, uploaded_file=upload(face_jpeg))
    selfie = analysis.image.name
    Profile.objects.filter(user=consenting_user).update(emotion_consent=False)  # consent gone before the run
    with django_capture_on_commit_callbacks(execute=True):
        assert analysis_run(analysis.pk) is None
    assert not ImageAnalysis.objects.filter(pk=analysis.pk).exists() and not FaceReading.objects.exists()
    assert not analysis.image.storage.exists(selfie)  # the queued selfie went with it


def test_a_post_image_keeps_one_aggregate_reading_not_one_per_face(
    consenting_user, client_for, fer_model, upload, faces_png, django_capture_on_commit_callbacks
) -> None:
    post = post_through_api(client_for(consenting_user), faces_png, upload, django_capture_on_commit_callbacks)
    analysis = ImageAnalysis.objects.get(post=post)
    assert analysis.status == ImageAnalysis.Status.DONE and analysis.face_count == 3
    (reading,) = analysis.readings.all()
    assert (reading.x, reading.y, reading.w, reading.h) == (0, 0, analysis.image_width, analysis.image_height)
    affect = PostAffect.objects.get(post=post, source="faces")
    assert affect.valence == pytest.approx(reading.valence, abs=1e-5)
    assert affect.dominant_emotion == reading.dominant_emotion


def test_withdrawing_consent_erases_post_readings_and_post_affect(
    consenting_user, client_for, fer_model, upload, faces_png, django_capture_on_commit_callbacks
) -> None:
    client = client_for(consenting_user)
    post = post_through_api(client, faces_png, upload, django_capture_on_commit_callbacks)
    assert PostAffect.objects.filter(post=post, source="faces").exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert client.patch("/api/me/", {"emotion_consent": False}, format="json").status_code == 200
    assert not ImageAnalysis.objects.filter(owner=consenting_user).exists() and not FaceReading.objects.exists()
    assert not PostAffect.objects.filter(post=post, source="faces").exists()
    assert Post.objects.filter(pk=post.pk).exists()  # the post itself stays
