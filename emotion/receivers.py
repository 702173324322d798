"""Receivers of the social core's signals (connected in ``EmotionConfig.ready``)."""

from __future__ import annotations

from typing import Any

from emotion import services


def on_post_created(sender: Any, post: Any, **kwargs: Any) -> None:
    """A new post with an image gets its faces analysed (content affect for the feed)."""
    if post.image:
        services.post_image_submit(post=post)


def on_consent_withdrawn(sender: Any, user: Any, **kwargs: Any) -> None:
    """Withdrawing consent erases every reading and stored selfie of the user."""
    services.readings_erase(user=user)


def on_analysis_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Never leave a selfie file behind a deleted analysis row."""
    services.analysis_deleted(analysis=instance)
