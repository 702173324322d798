"""Emotion API: consent, uploads, waiting, results, history, export, erase and isolation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emotion.fixtures import consenting_user, face_jpeg, faces_png, fer_model, fer_model_dir, no_face_png, upload  # noqa: F401
from emotion.models import FaceReading, ImageAnalysis
from feedmood import services as core_services

# Transactional: on_commit fires as in production (the upload is queued, then ?wait polls).
pytestmark = pytest.mark.django_db(transaction=True)

SELFIES = "/api/selfies/"
MINE = "/api/me/emotions/"
EXPORT = "/api/me/emotions/export/"


def post_selfie(client: Any, data: bytes, upload: Any, query: str = "", name: str = "me.jpg") -> Any:
    return client.post(SELFIES + query, {"image": upload(data, name)}, format="multipart")


@pytest.fixture
def carol(consenting_user, client_for) -> Any:
    return client_for(consenting_user)


# --- Consent and validation ---------------------------------------------------------------------


def test_selfie_without_consent_is_403_with_instructions(auth_client, upload, face_jpeg: bytes) -> None:
    response = post_selfie(auth_client, face_jpeg, upload)
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail.startswith("Emotion analysis is off for your account. Opt in with PATCH /api/me/")
    assert '{"emotion_consent": true}' in detail
    assert not ImageAnalysis.objects.exists()


def test_opting_in_through_the_api_unlocks_uploads(auth_client, fer_model, upload, face_jpeg: bytes) -> None:
    assert auth_client.patch("/api/me/", {"emotion_consent": True}, format="json").status_code == 200
    assert post_selfie(auth_client, face_jpeg, upload).status_code == 202


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "empty"), (b"plain text, no pixels", "Not an image"), (b"\xff\xd8\xff\xe0\x00\x10JFIF", "Not an image")],
)
def test_bad_uploads_are_400_with_a_message(carol, upload, data: bytes, message: str) -> None:
    response = post_selfie(carol, data, upload)
    assert response.status_code == 400
    assert message in " ".join(response.json()["image"])


def test_missing_file_is_400(carol) -> None:
    response = carol.post(SELFIES, {}, format="multipart")
    assert response.status_code == 400 and "image" in response.json()


@pytest.mark.parametrize("wait", ["-1", "11", "soon", "nan", "inf"])
def test_bad_wait_is_400(carol, upload, face_jpeg: bytes, wait: str) -> None:
    response = post_selfie(carol, face_jpeg, upload, f"?wait={wait}")
    assert response.status_code == 400 and "wait" in response.json()
    assert not ImageAnalysis.objects.exists()


def test_anonymous_is_401_everywhere(api_client, upload, face_jpeg: bytes) -> None:
    assert post_selfie(api_client, face_jpeg, upload).status_code == 401
    for url in (MINE, EXPORT, "/api/analyses/1/"):
        assert api_client.get(url).status_code == 401
    assert api_client.delete(MINE).status_code == 401


# --- Uploading and reading results -----------------------------------------------------------------


def test_upload_is_202_then_the_result_is_readable(carol, fer_model, upload, face_jpeg: bytes) -> None:
    response = post_selfie(carol, face_jpeg, upload)
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"id", "status", "url"}
    assert body["url"].endswith(f"/api/analyses/{body['id']}/") and response["Location"] == body["url"]

    result = carol.get(body["url"])  # eager Celery in tests: already done
    assert result.status_code == 200
    data = result.json()
    assert data["status"] == "done" and data["error"] == "" and data["model_version"] == fer_model.name
    assert data["source"] == "selfie" and data["face_count"] == 1 and len(data["faces"]) == 1
    assert set(data["timings_ms"]) == {"queue_wait", "decode", "detect", "classify", "total"}
    face = data["faces"][0]
    assert set(face["box"]) == {"x", "y", "w", "h"}
    assert set(face["probabilities"]) == set(fer_model.labels)
    assert face["dominant_emotion"] in fer_model.labels
    assert 0 < face["confidence"] <= 1 and -1 <= face["valence"] <= 1 and -1 <= face["arousal"] <= 1


def test_wait_returns_the_full_result(carol, fer_model, upload, faces_png: bytes) -> None:
    response = post_selfie(carol, faces_png, upload, "?wait=5", name="group.png")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "done" and data["face_count"] == 3
    assert [face["face_index"] for face in data["faces"]] == [0, 1, 2]


def test_wait_reports_no_face(carol, fer_model, upload, no_face_png: bytes) -> None:
    response = post_selfie(carol, no_face_png, upload, "?wait=2", name="wall.png")
    assert response.status_code == 200
    assert response.json()["status"] == "no_face" and response.json()["faces"] == []


def test_wait_zero_answers_202(carol, fer_model, upload, face_jpeg: bytes) -> None:
    assert post_selfie(carol, face_jpeg, upload, "?wait=0").status_code == 202


def test_history_lists_own_readings_newest_first(
    carol, consenting_user, fer_model, upload, face_jpeg, faces_png
) -> None:
    first = post_selfie(carol, face_jpeg, upload).json()["id"]
    second = post_selfie(carol, faces_png, upload, name="g.png").json()["id"]
    response = carol.get(MINE)
    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 4
    assert [r["analysis_id"] for r in page["results"]] == [second, second, second, first]
    assert [r["face_index"] for r in page["results"][:3]] == [0, 1, 2]
    assert page["results"][0]["model_version"] == fer_model.name and page["results"][0]["source"] == "selfie"
    assert carol.get(MINE + "?page_size=1").json()["next"]
    assert carol.get(MINE + "?source=post").json()["count"] == 0
    assert carol.get(MINE + "?source=bogus").status_code == 400


def test_export_is_a_json_attachment(carol, fer_model, upload, face_jpeg: bytes) -> None:
    post_selfie(carol, face_jpeg, upload)
    response = carol.get(EXPORT)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="feedmood-emotions-')
    data = json.loads(response.content)
    assert data["user"] == "carol" and len(data["analyses"]) == 1
    assert len(data["analyses"][0]["readings"]) == 1


def test_delete_erases_all_readings(carol, consenting_user, fer_model, upload, face_jpeg, settings) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True
    post_selfie(carol, face_jpeg, upload)
    post_selfie(carol, face_jpeg, upload)
    assert carol.delete(MINE).status_code == 204
    assert not ImageAnalysis.objects.filter(owner=consenting_user).exists()
    assert not FaceReading.objects.exists()
    assert not any((Path(settings.MEDIA_ROOT) / "selfies").iterdir())
    assert carol.get(MINE).json()["count"] == 0
    assert carol.delete(MINE).status_code == 204  # idempotent


def test_withdrawing_consent_through_the_api_erases(carol, consenting_user, fer_model, upload, face_jpeg) -> None:
    post_selfie(carol, face_jpeg, upload)
    assert carol.patch("/api/me/", {"emotion_consent": False}, format="json").status_code == 200
    assert carol.get(MINE).json()["count"] == 0
    assert not ImageAnalysis.objects.filter(owner=consenting_user).exists()
    assert post_selfie(carol, face_jpeg, upload).status_code == 403


# --- Isolation: nobody sees anyone else's readings ------------------------------------------------------


def test_other_users_cannot_see_or_erase_my_readings(
    carol, make_user, client_for, fer_model, upload, face_jpeg
) -> None:
    analysis_id = post_selfie(carol, face_jpeg, upload).json()["id"]
    eve = client_for(make_user(username="eve", emotion_consent=True))
    assert eve.get(f"/api/analyses/{analysis_id}/").status_code == 404
    assert eve.get(MINE).json()["count"] == 0
    assert json.loads(eve.get(EXPORT).content)["analyses"] == []
    assert eve.delete(MINE).status_code == 204
    assert carol.get(MINE).json()["count"] == 1  # untouched
    assert carol.get("/api/analyses/999999/").status_code == 404


def test_post_image_readings_belong_to_the_author_only(
    carol, make_user, client_for, fer_model, upload, faces_png, django_capture_on_commit_callbacks
) -> None:
    author = make_user(username="poster", emotion_consent=True)
    with django_capture_on_commit_callbacks(execute=True):
        core_services.post_create(author=author, text="hi", image=upload(faces_png, "g.png", "image/png"))
    author_client = client_for(author)
    assert author_client.get(MINE + "?source=post").json()["count"] == 1  # one aggregate reading of the image
    assert carol.get(MINE).json()["count"] == 0


# --- Schema --------------------------------------------------------------------------------------------


def test_schema_documents_the_emotion_endpoints(api_client) -> None:
    response = api_client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = json.loads(response.content)["paths"]
    for path in ("/api/selfies/", "/api/analyses/{analysis_id}/", "/api/me/emotions/", "/api/me/emotions/export/"):
        assert path in paths
