"""Uploads are stored without metadata (EXIF with GPS and camera make, XMP, comments), orientation applied
first, ICC profile kept: checked through the API as another user sees the image."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageCms

from emotion.fixtures import consenting_user, fer_model, fer_model_dir  # noqa: F401
from emotion.models import ImageAnalysis

MAKE_TAG, GPS_IFD, ORIENTATION_TAG = 0x010F, 0x8825, 0x0112
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[MAKE_TAG] = "SecretCam"
    exif[ORIENTATION_TAG] = orientation
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)  # latitude
    return exif


def _image(fmt: str, size: tuple[int, int] = (40, 20), orientation: int = 1) -> bytes:
    img = Image.new("RGB", size, (200, 30, 60))
    img.paste((10, 200, 10), (0, 0, 10, 10))  # a corner marker to check the rotation
    buf = io.BytesIO()
    extra = {"comment": b"shot at home"} if fmt == "JPEG" else {}
    img.save(buf, format=fmt, exif=_exif(orientation).tobytes(), icc_profile=SRGB_ICC, **extra)
    return buf.getvalue()


def _assert_clean(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    assert b"SecretCam" not in data and b"shot at home" not in data
    exif = img.getexif()
    assert MAKE_TAG not in exif and not exif.get_ifd(GPS_IFD) and exif.get(ORIENTATION_TAG, 1) == 1
    assert img.info.get("icc_profile") == SRGB_ICC  # the colour profile stays
    return img


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_post_image_served_to_another_user_has_no_gps_or_make(make_user, client_for, fmt: str) -> None:
    author, reader = client_for(make_user(username="alice")), client_for(make_user(username="bob"))
    data = _image(fmt)
    assert b"SecretCam" in data
    post = author.post(
        "/api/posts/", {"text": "hi", "image": SimpleUploadedFile(f"a.{fmt.lower()}", data)}, format="multipart"
    )
    assert post.status_code == 201, post.content
    served = reader.get(f"/api/posts/{post.json()['id']}/image/")
    assert served.status_code == 200
    img = _assert_clean(b"".join(served.streaming_content))
    assert img.size == (40, 20)


def test_orientation_is_applied_before_the_tag_goes(make_user, client_for) -> None:
    author, reader = client_for(make_user(username="alice")), client_for(make_user(username="bob"))
    data = _image("JPEG", orientation=6)  # "rotate 90 CW to display"
    post = author.post("/api/posts/", {"image": SimpleUploadedFile("a.jpg", data)}, format="multipart")
    assert post.status_code == 201, post.content
    assert (post.json().get("image_width"), post.json().get("image_height")) in ((20, 40), (None, None))
    img = _assert_clean(b"".join(reader.get(f"/api/posts/{post.json()['id']}/image/").streaming_content))
    assert img.size == (20, 40)
    r, g, _b = img.convert("RGB").getpixel((img.width - 3, 3))  # the marker is now top right
    assert g > 150 and r < 100


def test_stored_selfie_has_no_gps_or_make(consenting_user, client_for, fer_model, settings) -> None:
    settings.FEEDMOOD_RETAIN_SELFIES = True
    response = client_for(consenting_user).post(
        "/api/selfies/", {"image": SimpleUploadedFile("s.jpg", _image("JPEG"))}, format="multipart"
    )
    assert response.status_code == 202, response.content
    stored = ImageAnalysis.objects.get(pk=response.json()["id"]).image
    _assert_clean((Path(settings.MEDIA_ROOT) / stored.name).read_bytes())
