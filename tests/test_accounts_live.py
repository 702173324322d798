"""Accounts and consent over real HTTP (``live_server``): what a client of the running service sees."""

from __future__ import annotations

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.files.storage import default_storage

from emotion.fixtures import face_jpeg, fer_model, fer_model_dir  # noqa: F401
from emotion.models import ImageAnalysis
from feedmood.models import ApiToken, ErasureRequest, Post

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "Tr1cky-Pelican-92"


def test_a_client_session_from_signup_to_account_deletion(live_server, fer_model, face_jpeg) -> None:
    api = f"{live_server.url}/api"
    signup = requests.post(
        f"{api}/auth/signup/", json={"username": "lea", "password": PASSWORD, "email": "lea@example.org"}
    )
    assert signup.status_code == 201
    first = {"Authorization": f"Token {signup.json()['token']}"}

    # No consent: the face in her post is never analysed.
    post = requests.post(
        f"{api}/posts/", headers=first, files={"image": ("me.jpg", face_jpeg, "image/jpeg")}, data={"text": "me"}
    )
    assert post.status_code == 201
    assert requests.get(f"{api}/me/emotions/", headers=first).json()["count"] == 0
    assert not ImageAnalysis.objects.exists()
    image_name = Post.objects.get(pk=post.json()["id"]).image.name
    assert default_storage.exists(image_name)

    # A second device signs in; logging out the first one revokes only its token.
    second_key = requests.post(f"{api}/auth/token/", json={"username": "lea", "password": PASSWORD}).json()["token"]
    second = {"Authorization": f"Token {second_key}"}
    assert requests.post(f"{api}/auth/logout/", headers=first).status_code == 204
    assert requests.get(f"{api}/me/", headers=first).status_code == 401
    assert requests.get(f"{api}/me/", headers=second).status_code == 200

    assert requests.delete(f"{api}/me/", headers=second, json={"password": PASSWORD}).status_code == 204
    assert requests.get(f"{api}/me/", headers=second).status_code == 401
    assert not get_user_model().objects.filter(username="lea").exists()
    assert not Post.objects.exists() and not ApiToken.objects.exists()
    assert not default_storage.exists(image_name)
    assert ErasureRequest.objects.get(scope=ErasureRequest.Scope.ACCOUNT).completed_at is not None
