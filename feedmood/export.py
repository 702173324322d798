"""A person's full export (read only): one zip with JSON files and the images of their posts.

``profile.json``, ``posts.json`` (each post names its image inside the zip,
``images/``), ``follows.json``, ``likes.json``, plus what other apps add
through ``signals.export_requested`` (the emotion app adds ``emotion.json``).
"""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import PurePath
from typing import IO, Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from feedmood import signals
from feedmood.models import Follow, Post, Profile, Reaction

SPOOL_BYTES = 8 * 1024 * 1024  # kept in memory below this size, spilled to a temporary file above


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _profile(user: AbstractBaseUser) -> dict[str, Any]:
    profile = Profile.objects.filter(user=user).first()
    return {
        "username": user.get_username(),
        "email": user.email,
        "date_joined": _iso(user.date_joined),
        "last_login": _iso(user.last_login),
        "display_name": profile.display_name if profile else "",
        "emotion_consent": bool(profile and profile.emotion_consent),
        "emotion_consent_at": _iso(profile.emotion_consent_at) if profile else None,
        "mood_policy": profile.mood_policy if profile else None,
        "mood_strength": profile.mood_strength if profile else None,
        "mood_half_life_hours": profile.mood_half_life_hours if profile else None,
    }


def _image_entry(post: Post) -> str | None:
    return f"images/post-{post.pk}{PurePath(post.image.name).suffix.lower()}" if post.image else None


def account_export(*, user: AbstractBaseUser) -> IO[bytes]:
    """Everything stored about ``user`` as a zip, in a file object positioned at its start."""
    posts = list(Post.objects.filter(author=user).order_by("created_at", "pk"))
    documents: dict[str, Any] = {
        "profile.json": {"exported_at": _iso(timezone.now()), **_profile(user)},
        "posts.json": [
            {
                "id": p.pk,
                "text": p.text,
                "created_at": _iso(p.created_at),
                "like_count": p.like_count,
                "image": _image_entry(p),
                "image_width": p.image_width,
                "image_height": p.image_height,
            }
            for p in posts
        ],
        "follows.json": {
            "following": list(
                Follow.objects.filter(follower=user).order_by("created_at").values_list("followee__username", flat=True)
            ),
            "followers": list(
                Follow.objects.filter(followee=user).order_by("created_at").values_list("follower__username", flat=True)
            ),
        },
        "likes.json": [
            {"post_id": post_id, "created_at": _iso(created)}
            for post_id, created in Reaction.objects.filter(user=user)
            .order_by("created_at")
            .values_list("post_id", "created_at")
        ],
    }
    for _, extra in signals.export_requested.send(sender=Profile, user=user):
        documents.update(extra or {})

    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (returned open, for streaming)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, document in documents.items():
            archive.writestr(name, json.dumps(document, indent=2, ensure_ascii=False))
        for post in posts:
            entry = _image_entry(post)
            if entry is None:
                continue
            try:
                with post.image.open("rb") as handle:
                    archive.writestr(entry, handle.read(), compress_type=zipfile.ZIP_STORED)
            except FileNotFoundError:
                continue  # listed in posts.json; the file itself is gone
    out.seek(0)
    return out
