"""Write operations of the recommender (HackSoft style: writes live here).

- ``mood_recompute(user)``: rebuild the user's ``MoodState`` from the ACTIVE
  model version's selfie readings (deleted without consent or readings);
- ``post_affect_recompute(post)``: rebuild a post's ``PostAffect`` (source
  ``faces``) from the ACTIVE model version's readings of its image;
- ``post_text_affect_recompute(post)``: rebuild a post's ``PostAffect`` (source
  ``text``) from its text and emoji (``recommender.text_affect``);
- ``mood_erase(user)``: drop every mood/affect inferred from the user's images
  (text affect is content affect: it needs no consent and goes with the post);
- ``feed_changed(author_id)``: stamp the author's and followers' feeds as changed;
- ``mood_settings_update(user, data)``: consent/policy/strength/half-life through
  the social core's ``profile_update`` (so withdrawal erases readings).

Versions are never mixed: a state or affect always comes from one model
version, the active one (``recompute_all`` switches everything after a
batch rescoring).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from emotion.selectors import active_model_version_id
from feedmood import services as social_services
from feedmood.models import Follow, Post, Profile
from feedmood.tasks_utils import enqueue_on_commit, run_on_commit
from recommender import cache_erasure, freshness, selectors
from recommender.models import MoodState, PostAffect
from recommender.mood import MAX_AGE_HALF_LIVES, accumulate, affect_from_faces
from recommender.text_affect import read_text

logger = logging.getLogger(__name__)
MOOD_FIELDS = {"emotion_consent", "mood_half_life_hours"}


@transaction.atomic
def mood_recompute(*, user: AbstractBaseUser, model_version_id: int | None = None) -> MoodState | None:
    """Rebuild the stored mood sums from the active version's recent selfie readings.

    Returns the new state, or ``None`` (and deletes any state) when the user
    does not consent or has no recent reading.
    """
    profile = Profile.objects.filter(user_id=user.pk).first()
    if profile is None or not profile.emotion_consent:
        MoodState.objects.filter(user_id=user.pk).delete()
        return None
    version = model_version_id if model_version_id is not None else active_model_version_id()
    now = timezone.now()
    half_life = profile.mood_half_life_hours
    readings = selectors.selfie_readings(
        user=user, model_version_id=version, since=now - timedelta(hours=MAX_AGE_HALF_LIVES * half_life)
    )
    sums = accumulate(readings, as_of=now, half_life_hours=half_life)
    if sums.count == 0:
        MoodState.objects.filter(user_id=user.pk).delete()
        return None
    state, _ = MoodState.objects.update_or_create(
        user_id=user.pk,
        defaults={
            "model_version_id": version,
            "half_life_hours": half_life,
            "as_of": sums.as_of,
            "weight_sum": sums.weight,
            "decay_sum": sums.decay,
            "valence_sum": sums.valence,
            "arousal_sum": sums.arousal,
            "probability_sums": sums.probabilities,
            "reading_count": sums.count,
        },
    )
    return state


@transaction.atomic
def post_affect_recompute(
    *, post: Post, model_version_id: int | None = None, notify_followers: bool = True
) -> PostAffect | None:
    """Rebuild the post's face affect from the active version's readings.

    A post whose image has no face gets a row with ``face_count`` 0 and NULL
    valence/arousal (unknown affect); one not scored by the active version has
    no row.  Returns the row, if any.
    """
    version = model_version_id if model_version_id is not None else active_model_version_id()
    faces = selectors.post_faces(post_id=post.pk, model_version_id=version)
    if faces is None:
        PostAffect.objects.filter(post_id=post.pk, source=PostAffect.Source.FACES).delete()
        return None
    affect = affect_from_faces(faces)
    defaults: dict[str, Any] = {
        "model_version_id": version,
        "valence": affect.valence if affect else None,
        "arousal": affect.arousal if affect else None,
        "confidence": affect.confidence if affect else 0.0,
        "dominant_emotion": affect.dominant_emotion if affect else "",
        "face_count": affect.face_count if affect else 0,
    }
    row, _ = PostAffect.objects.update_or_create(post_id=post.pk, source=PostAffect.Source.FACES, defaults=defaults)
    if notify_followers:
        from recommender import tasks

        enqueue_on_commit(tasks.feed_changed_task, post.author_id)
    return row


@transaction.atomic
def post_text_affect_recompute(*, post: Post, notify_followers: bool = True) -> PostAffect | None:
    """Rebuild the post's text affect from its text and emoji.

    A post without text has no row; text in a language not covered, or without
    any sentiment cue, gets a row with NULL valence (unknown). Returns the row, if any.
    """
    text = Post.objects.filter(pk=post.pk).values_list("text", flat=True).first() or ""
    if not text.strip():
        PostAffect.objects.filter(post_id=post.pk, source=PostAffect.Source.TEXT).delete()
        return None
    reading = read_text(text)
    defaults: dict[str, Any] = {
        "valence": reading.valence,
        "arousal": reading.arousal,
        "confidence": reading.confidence,
        "language": reading.language,
        "dominant_emotion": "",
        "face_count": 0,
        "model_version_id": None,
    }
    row, _ = PostAffect.objects.update_or_create(post_id=post.pk, source=PostAffect.Source.TEXT, defaults=defaults)
    if notify_followers and reading.known:
        from recommender import tasks

        enqueue_on_commit(tasks.feed_changed_task, post.author_id)
    return row


@transaction.atomic
def mood_erase(*, user: AbstractBaseUser) -> None:
    """Forget everything inferred from the user's images (mood, their posts' face affect), and
    after commit every cached feed key of theirs and the shared caches ranked from it."""
    MoodState.objects.filter(user_id=user.pk).delete()
    PostAffect.objects.filter(post__author_id=user.pk, source=PostAffect.Source.FACES).delete()
    feed_caches_erase(user_id=user.pk)


def feed_caches_erase(*, user_id: int) -> None:
    """After commit: drop the user's feed keys (snapshots, cursors, pages) and the shared caches
    that may hold their affect (see ``recommender.cache_erasure``)."""
    namespace = selectors.cache_namespace()
    run_on_commit(lambda: cache_erasure.drop_for_erased_user(namespace, user_id))


def feed_changed(*, author_id: int) -> int:
    """Stamp the feeds of ``author_id`` and their followers as changed (see ``freshness``)."""
    followers = Follow.objects.filter(followee_id=author_id).values_list("follower_id", flat=True)
    return freshness.mark_changed(selectors.cache_namespace(), [author_id, *followers])


def mood_settings_update(*, user: AbstractBaseUser, data: dict[str, Any]) -> Profile:
    """Change consent, policy, strength or half-life via the social core's profile service.

    Withdrawing consent makes the social core send ``consent_withdrawn`` (the
    emotion app erases readings; we drop the mood); a new half-life or consent
    recomputes the stored mood after commit (see ``receivers``).
    """
    return social_services.profile_update(user=user, data=data)


def on_analysis_finished(*, analysis: Any) -> None:
    """Queue the mood (selfie) or post-affect (post) update for a finished analysis."""
    from recommender import tasks

    if analysis.source == "selfie":
        enqueue_on_commit(tasks.mood_recompute_task, analysis.owner_id)
    elif analysis.source == "post" and analysis.post_id is not None:
        enqueue_on_commit(tasks.post_affect_recompute_task, analysis.post_id)


def recompute_all(
    *, model_version_id: int | None = None, batch_size: int = 500, include_text: bool = True
) -> dict[str, int]:
    """Switch every stored mood and post affect to one model version (default: the active one),
    and (``include_text``) re-read every post's text affect.

    For after a batch rescoring: users/posts the version has not scored lose
    their state instead of keeping another version's. Text affect does not
    depend on the face model; re-reading it is for a new text method.
    """
    version = model_version_id if model_version_id is not None else active_model_version_id()
    users = posts = 0
    user_ids = set(MoodState.objects.values_list("user_id", flat=True))
    user_ids |= set(Profile.objects.filter(emotion_consent=True).values_list("user_id", flat=True))
    User = get_user_model()
    for user in User.objects.filter(pk__in=user_ids).iterator(chunk_size=batch_size):
        mood_recompute(user=user, model_version_id=version)
        users += 1
    from emotion.models import ImageAnalysis

    post_ids = set(PostAffect.objects.values_list("post_id", flat=True))
    post_ids |= set(ImageAnalysis.objects.filter(source="post").values_list("post_id", flat=True))
    for post in Post.objects.filter(pk__in=post_ids).only("pk").iterator(chunk_size=batch_size):
        post_affect_recompute(post=post, model_version_id=version, notify_followers=False)
        posts += 1
    texts = text_affect_recompute_all(batch_size=batch_size) if include_text else 0
    run_on_commit(lambda: freshness.mark_all_changed(selectors.cache_namespace()))
    return {"users": users, "posts": posts, "texts": texts}


def text_affect_recompute_all(*, batch_size: int = 500) -> int:
    """Re-read the text affect of every post with text (and drop rows of posts without); returns how many."""
    PostAffect.objects.filter(source=PostAffect.Source.TEXT, post__text="").delete()
    count = 0
    for post in Post.objects.exclude(text="").only("pk").iterator(chunk_size=batch_size):
        post_text_affect_recompute(post=post, notify_followers=False)
        count += 1
    return count


def recompute_all_if_versions_mixed() -> dict[str, int] | None:
    """Periodic (beat): if any stored mood or post affect is on another model version than the active one
    (e.g. the ``recompute_all`` message after a rescoring was lost), switch them all; ``None`` if none is."""
    version = active_model_version_id()
    if version is None:
        return None
    mixed = (
        MoodState.objects.exclude(model_version_id=version).exists()
        or PostAffect.objects.filter(source=PostAffect.Source.FACES).exclude(model_version_id=version).exists()
    )  # text affect has no model version: it never counts as mixed, and is not re-read here
    return recompute_all(model_version_id=version, include_text=False) if mixed else None
