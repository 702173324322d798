"""A full disk answers 507 and leaves no file; the storage error mapping.

The disk-full tests put MEDIA_ROOT on a real 256 KiB tmpfs (skipped where mounting is not allowed).
"""

from __future__ import annotations

import errno
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from emotion.models import ImageAnalysis
from feedmood.exceptions import storage_error_response
from feedmood.models import Post


@pytest.fixture
def full_media_root(tmp_path: Path, settings) -> Iterator[Path]:
    """A tiny real file system, filled up to its last few KiB, as MEDIA_ROOT."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        filler = mount / "filler"
        with open(filler, "wb") as handle:
            try:
                handle.write(b"\0" * (256 * 1024))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
        os.truncate(filler, filler.stat().st_size - 16 * 1024)  # 16 KiB left
        settings.MEDIA_ROOT = mount
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _noise_png(side: int = 160) -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()  # ~77 KB: does not fit in 16 KiB


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_post_image_on_a_full_disk_is_507_and_leaves_no_file(full_media_root, make_user, client_for) -> None:
    client = client_for(make_user(username="alice"))
    upload = SimpleUploadedFile("a.png", _noise_png(), content_type="image/png")
    response = client.post("/api/posts/", {"text": "hi", "image": upload}, format="multipart")
    assert response.status_code == 507, response.content
    assert "Nothing was saved" in response.json()["detail"]
    assert _files(full_media_root) == {"filler"}
    assert not Post.objects.exists()


def test_selfie_on_a_full_disk_is_507_and_leaves_no_file(full_media_root, make_user, client_for) -> None:
    client = client_for(make_user(username="alice", emotion_consent=True))
    upload = SimpleUploadedFile("a.png", _noise_png(), content_type="image/png")
    response = client.post("/api/selfies/", {"image": upload}, format="multipart")
    assert response.status_code == 507, response.content
    assert _files(full_media_root) == {"filler"}
    assert not ImageAnalysis.objects.exists()


@pytest.mark.parametrize("code,status", [(errno.EIO, 503), (errno.EROFS, 503), (errno.EDQUOT, 507)])
def test_storage_errors_map_to_507_or_503(code: int, status: int) -> None:
    response = storage_error_response(OSError(code, os.strerror(code)))
    assert response is not None and response.status_code == status
    assert response.status_code == 507 or int(response["Retry-After"]) > 0
