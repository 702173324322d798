"""Signal receivers of the recommender (connected in ``RecommenderConfig.ready``).

- ``emotion.signals.analysis_finished`` -> queue a mood (selfie) or post-affect
  (post image) recomputation;
- ``emotion.signals.readings_erased`` and ``feedmood.signals.consent_withdrawn``
  -> erase moods and face affect inferred from the user's images, and drop the
  user's feed keys and the shared caches ranked from their affect, at once;
- ``feedmood.signals.erasure_due`` -> the same erasure, inside the durable erasure's transaction;
- ``post_delete`` of a user (account deletion) -> the same cache drop after commit;
- ``post_save`` of a Profile whose consent or half-life changed -> recompute
  the stored mood after commit;
- ``feedmood.signals.post_created`` -> stamp the author's and followers' feeds
  as changed (``recommender.freshness``, on the ``default`` queue) and read the
  text affect of a post with text (``default`` queue, after commit);
- ``post_delete`` of a Post -> the same stamps as a new post (cached pages must drop it);
- ``post_save``/``post_delete`` of a Follow -> stamp the follower's feed and network;
- ``post_save``/``post_delete`` of a Reaction -> stamp the user's reactions (their cached
  feed pages show an old ``liked_by_me``);
- ``emotion.signals.model_activated`` (a batch rescoring completed, or the
  first model was installed) -> switch every mood and post affect to the new
  version's readings (``recompute_all`` on the ``batch`` queue; text affect,
  which does not depend on the face model, is left as it is).
"""

from __future__ import annotations

from typing import Any

from feedmood.tasks_utils import enqueue_on_commit, run_on_commit
from recommender import freshness, selectors, services


def on_analysis_finished(sender: Any, analysis: Any, **kwargs: Any) -> None:
    services.on_analysis_finished(analysis=analysis)


def on_model_activated(sender: Any, version: Any, **kwargs: Any) -> None:
    from recommender import tasks

    enqueue_on_commit(tasks.recompute_all_task, version.pk, include_text=False)


def on_readings_erased(sender: Any, user: Any, **kwargs: Any) -> None:
    services.mood_erase(user=user)


def on_consent_withdrawn(sender: Any, user: Any, **kwargs: Any) -> None:
    services.mood_erase(user=user)


def on_erasure_due(sender: Any, user_id: int, **kwargs: Any) -> None:
    """Inside a durable erasure's transaction: the mood and post affect go with the readings."""
    from django.contrib.auth import get_user_model

    services.mood_erase(user=get_user_model()(pk=user_id))


def on_user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    services.feed_caches_erase(user_id=instance.pk)


def on_profile_saved(
    sender: Any, instance: Any, created: bool, raw: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    if created or raw:
        return
    if update_fields is not None and not (set(update_fields) & services.MOOD_FIELDS):
        return
    from recommender import tasks

    enqueue_on_commit(tasks.mood_recompute_task, instance.user_id)


def on_post_created(sender: Any, post: Any, **kwargs: Any) -> None:
    from recommender import tasks

    enqueue_on_commit(tasks.feed_changed_task, post.author_id)
    if (post.text or "").strip():
        enqueue_on_commit(tasks.post_text_affect_recompute_task, post.pk)


def on_post_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    from recommender import tasks

    enqueue_on_commit(tasks.feed_changed_task, instance.author_id)


def on_reaction_changed(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    namespace, user_id = selectors.cache_namespace(), instance.user_id
    run_on_commit(lambda: freshness.mark_reacted(namespace, user_id))


def on_follow_changed(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    if raw:
        return
    namespace, follower_id = selectors.cache_namespace(), instance.follower_id
    run_on_commit(lambda: freshness.mark_network_changed(namespace, follower_id))
