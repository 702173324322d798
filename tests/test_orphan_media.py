"""The orphan-media sweep removes old files no row references, and nothing else."""

from __future__ import annotations

import os
import time
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile

from emotion.housekeeping import media_orphans_sweep
from feedmood import services
from tests.conftest import make_image_bytes


def _file(root: Path, name: str, age_seconds: float) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    stamp = time.time() - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_sweep_removes_old_unreferenced_files_only(make_user, settings) -> None:
    root = Path(settings.MEDIA_ROOT)
    post = services.post_create(
        author=make_user(username="alice"), text="hi", image=SimpleUploadedFile("a.png", make_image_bytes("PNG"))
    )
    kept_post_image = root / post.image.name
    os.utime(kept_post_image, (time.time() - 7200, time.time() - 7200))
    old_orphan = _file(root, "posts/0123abcd.png", 7200)
    old_partial = _file(root, "selfies/.partial-x1y2", 7200)
    young_orphan = _file(root, "selfies/fresh.jpg", 10)  # an upload whose row is not committed yet
    elsewhere = _file(root, "other/keep.bin", 7200)  # not a managed directory

    removed = media_orphans_sweep(min_age_seconds=3600)

    assert sorted(removed) == ["posts/0123abcd.png", "selfies/.partial-x1y2"]
    assert not old_orphan.exists() and not old_partial.exists()
    assert kept_post_image.exists() and young_orphan.exists() and elsewhere.exists()
