"""Upload decoding cost: each upload is decoded once, and a per-user pixel budget is charged before decoding."""

from __future__ import annotations

import io
import time

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageFile

from emotion.models import ImageAnalysis
from feedmood.images import validate_image_upload
from feedmood.models import Post


def _png(side: int, depth16: bool = False) -> bytes:
    if depth16:
        img = Image.fromarray(np.tile(np.linspace(0, 65535, side, dtype=np.uint16), (side, 1)))
    else:
        img = Image.new("RGB", (side, side), (200, 30, 60))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _truncated_png(side: int) -> bytes:
    """A PNG whose header says ``side`` x ``side`` and whose pixel data is cut short: decoding it fails."""
    data = _png(side)
    return data[: len(data) // 2]


def _fresh_window() -> None:
    """Start in a fresh one-minute budget window with time to spare (no roll-over mid-test)."""
    left = 60 - time.time() % 60
    if left < 10:
        time.sleep(left + 0.1)


def test_an_upload_is_decoded_once(monkeypatch) -> None:
    decodes = []
    real_load = ImageFile.ImageFile.load

    def counting_load(self):  # the real decoder runs; only the decodes that do work are counted
        if self.tile:
            decodes.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counting_load)
    validated = validate_image_upload(io.BytesIO(_png(600, depth16=True)))
    assert validated.info.width == 600
    assert decodes == [(600, 600)]  # old code: validated, then decoded again to look for an EXIF orientation


def test_pixel_budget_refuses_with_429_before_decoding(settings, make_user, client_for) -> None:
    settings.FEEDMOOD_UPLOAD_PIXELS_PER_MINUTE = 3 * 100 * 100
    alice, bob = make_user(username="alice", emotion_consent=True), make_user(username="bob")
    client = client_for(alice)
    _fresh_window()
    for i in range(3):
        r = client.post("/api/posts/", {"image": SimpleUploadedFile(f"{i}.png", _png(100))}, format="multipart")
        assert r.status_code == 201, r.content
    media = sorted(p.name for p in settings.MEDIA_ROOT.rglob("*") if p.is_file())

    # Over the budget: refused from the header, before the decode that would have found it corrupt (400).
    r = client.post("/api/posts/", {"image": SimpleUploadedFile("x.png", _truncated_png(100))}, format="multipart")
    assert r.status_code == 429, r.content
    assert "pixels" in r.json()["detail"] and 0 < int(r["Retry-After"]) <= 61
    r = client.post("/api/selfies/", {"image": SimpleUploadedFile("s.png", _png(100))}, format="multipart")
    assert r.status_code == 429, r.content
    assert Post.objects.filter(author=alice).exclude(image="").count() == 3
    assert not ImageAnalysis.objects.filter(owner=alice).exists()
    assert sorted(p.name for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()) == media  # nothing stored

    # The budget is the uploader's: another user uploads; a refused upload did not spend alice's budget.
    r = client_for(bob).post("/api/posts/", {"image": SimpleUploadedFile("b.png", _png(100))}, format="multipart")
    assert r.status_code == 201, r.content
    settings.FEEDMOOD_UPLOAD_PIXELS_PER_MINUTE = 3 * 100 * 100 + 50 * 50
    r = client.post("/api/posts/", {"image": SimpleUploadedFile("y.png", _png(50))}, format="multipart")
    assert r.status_code == 201, r.content


def test_truncated_png_within_budget_is_still_400(settings, make_user, client_for) -> None:
    settings.FEEDMOOD_UPLOAD_PIXELS_PER_MINUTE = 10 * 100 * 100
    client = client_for(make_user(username="alice"))
    r = client.post("/api/posts/", {"image": SimpleUploadedFile("x.png", _truncated_png(100))}, format="multipart")
    assert r.status_code == 400 and "image" in r.json(), r.content
