"""Receivers of the social core's signals (connected in ``EmotionConfig.ready``)."""

from __future__ import annotations

from typing import Any

from emotion import privacy, submission


def on_post_created(sender: Any, post: Any, **kwargs: Any) -> None:
    """A new post with an image gets its faces analysed (content affect for the feed)."""
    if post.image:
        submission.post_image_submit(post=post)


def on_export_requested(sender: Any, user: Any, **kwargs: Any) -> dict[str, Any]:
    """The account export carries every analysis and reading (``emotion.json``)."""
    return {"emotion.json": privacy.readings_export(user=user)}


def on_erasure_due(sender: Any, user_id: int, scope: str, **kwargs: Any) -> list[str]:
    """A durable erasure (consent withdrawn, readings or account erased) deletes every analysis and reading."""
    return privacy.analyses_erase_rows(user_id=user_id)


def on_analysis_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Never leave a selfie file behind a deleted analysis row."""
    privacy.analysis_deleted(analysis=instance)
