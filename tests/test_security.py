"""Security settings and behaviour; extends tests/test_settings.py and tests/test_api_errors.py.

- uploads live under MEDIA_ROOT, outside STATIC_ROOT, are served by no URL and get random names;
- with DEBUG=0 an unhandled error is a generic JSON 500 (no traceback, no exception text);
- secrets come from the environment only.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import Resolver404, include, path, resolve
from rest_framework.views import APIView

from emotion.models import ImageAnalysis
from feedmood.models import Post
from tests.conftest import make_image_bytes

PROJECT_DIR = Path(__file__).resolve().parent.parent
UUID_NAME = re.compile(
    r"^[a-z_]+/(?:[\w-]+/)*[0-9a-f]{32}\.(jpg|png|webp)$|^[a-z_]+/(?:[\w-]+/)*[0-9a-f-]{36}\.(jpg|png|webp)$"
)


def test_media_outside_static_root_and_not_routed(settings, auth_client) -> None:
    media, static = Path(settings.MEDIA_ROOT).resolve(), Path(settings.STATIC_ROOT).resolve()
    assert not media.is_relative_to(static) and not static.is_relative_to(media)
    for extra in getattr(settings, "STATICFILES_DIRS", []):
        assert not media.is_relative_to(Path(extra).resolve())
    image = SimpleUploadedFile("x.png", make_image_bytes("PNG"), content_type="image/png")
    post_id = auth_client.post("/api/posts/", {"image": image}, format="multipart").json()["id"]
    name = Post.objects.get(pk=post_id).image.name
    assert (media / name).is_file()
    for url in (
        f"/media/{name}",
        f"{settings.MEDIA_URL}{name}",
        f"/{name}",
        f"/static/{name}",
        f"/static/../media/{name}",
    ):
        with pytest.raises(Resolver404):
            resolve(url)
        assert auth_client.get(url).status_code == 404
    # The only way to the bytes is the authenticated API.
    assert auth_client.get(f"/api/posts/{post_id}/image/").status_code == 200
    assert Client().get(f"/api/posts/{post_id}/image/").status_code == 401


@pytest.mark.parametrize(
    "client_name", ["../../etc/passwd.png", "evil.php.png", "selfie .png", "\u202egnp.exe", "a" * 300 + ".png"]
)
def test_upload_names_are_random(auth_client, client_name: str) -> None:
    names = set()
    for _ in range(2):
        image = SimpleUploadedFile(client_name, make_image_bytes("PNG"), content_type="image/png")
        response = auth_client.post("/api/posts/", {"image": image}, format="multipart")
        assert response.status_code == 201, response.content
        names.add(Post.objects.get(pk=response.json()["id"]).image.name)
    assert len(names) == 2
    for name in names:
        assert UUID_NAME.match(name), name
        assert "etc" not in name and "php" not in name and "exe" not in name


def test_selfie_names_are_random(make_user, client_for, settings, django_capture_on_commit_callbacks) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True
    client = client_for(make_user(username="sam", emotion_consent=True))
    image = SimpleUploadedFile("../../../me.jpg", make_image_bytes("JPEG", (64, 64)), content_type="image/jpeg")
    response = client.post("/api/selfies/", {"image": image}, format="multipart")
    assert response.status_code in (200, 201, 202), response.content
    name = ImageAnalysis.objects.get(pk=response.json()["id"]).image.name
    assert UUID_NAME.match(name) and "me" not in name.split("/")[-1], name


# --- 500s under DEBUG=0 ---------------------------------------------------------------------------


def _boom_django(request):
    raise RuntimeError("SECRET-DETAIL /etc/shadow at line 42")


class _BoomApi(APIView):
    permission_classes: list = []
    authentication_classes: list = []

    def get(self, request):
        raise KeyError("SECRET-DETAIL db password hunter2")


def _ok(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/boom-django/", _boom_django),
    path("api/boom-drf/", _BoomApi.as_view()),
    path("elsewhere/boom/", _boom_django),
    path("", include("config.urls")),
]
handler500 = "feedmood.views.server_error"


@pytest.mark.parametrize("url", ["/api/boom-django/", "/api/boom-drf/", "/elsewhere/boom/"])
def test_500_has_no_traceback(settings, url: str, db) -> None:
    settings.DEBUG = False
    settings.DEBUG_PROPAGATE_EXCEPTIONS = False
    with override_settings(ROOT_URLCONF=__name__):
        client = Client(raise_request_exception=False)
        response = client.get(url)
    assert response.status_code == 500
    body = response.content.decode()
    for leak in ("Traceback", "SECRET-DETAIL", "hunter2", "/etc/shadow", "RuntimeError", "KeyError", 'File "'):
        assert leak not in body, body[:500]
    if url.startswith("/api/"):
        assert response["Content-Type"].startswith("application/json")
        assert json.loads(body) == {"detail": "Internal server error"} or set(json.loads(body)) == {"detail"}


# --- Secrets --------------------------------------------------------------------------------------


def _prod(**env: str) -> subprocess.CompletedProcess:
    code = "import json, config.settings as s; print(json.dumps({'key': s.SECRET_KEY, 'debug': s.DEBUG}))"
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_DIR), "DEBUG": "0", "ALLOWED_HOSTS": "x.example.com"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_DIR, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def test_secret_key_comes_from_the_environment() -> None:
    out = _prod(SECRET_KEY="k" * 60 + "-from-env")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"key": "k" * 60 + "-from-env", "debug": False}


def test_no_hard_coded_secrets_in_source() -> None:
    pattern = re.compile(r"""(SECRET_KEY|PASSWORD|API_KEY|TOKEN)\s*=\s*["'][^"'\s]{16,}["']""")
    offenders = []
    for root in ("feedmood", "emotion", "recommender", "ml"):
        for file in (PROJECT_DIR / root).rglob("*.py"):
            for line in file.read_text(errors="replace").splitlines():
                if pattern.search(line) and "dev" not in line.lower() and "insecure" not in line.lower():
                    offenders.append(f"{file.relative_to(PROJECT_DIR)}: {line.strip()}")
    assert not offenders, offenders
