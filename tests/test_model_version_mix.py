"""After a model switch whose ``recompute_all`` message was lost, readers ignore post affect of the
old version and the periodic check re-runs the switch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from emotion import model_versions
from emotion.fixtures import fer_model, fer_model_dir  # noqa: F401
from recommender import selectors, services
from recommender.models import PostAffect
from tests.rescoring_factories import post_analysis, v1, v2  # noqa: F401


@pytest.fixture
def switched_without_recompute(make_user, v1, v2):
    """A face post scored by v1 with its affect stored; then v2 is switched to and no recompute_all runs
    (on-commit callbacks never fire inside the test's transaction: the message is lost)."""
    author = make_user(username="author")
    analysis = post_analysis(author, "one")
    services.post_affect_recompute(post=analysis.post, notify_followers=False)
    assert PostAffect.objects.get(post=analysis.post).model_version_id == v1.pk
    model_versions.model_version_switch(v2)
    return author, analysis.post


@pytest.mark.parametrize("strategy", ["lateral", "window"])
def test_candidate_readers_ignore_affect_of_a_non_active_version(switched_without_recompute, strategy, db) -> None:
    from django.db import connection

    if strategy == "lateral" and connection.vendor != "postgresql":
        pytest.skip("the lateral strategy is PostgreSQL only")
    author, post = switched_without_recompute
    now = timezone.now() + timedelta(seconds=1)
    rows = selectors.network_candidate_rows(author_ids=[author.pk], snapshot=now, strategy=strategy)
    assert [(r[0], r[4], r[5]) for r in rows] == [(post.pk, None, None)]
    recent = selectors.recent_network_rows(user_id=author.pk, since=now - timedelta(hours=1), snapshot=now)
    assert [(r[0], r[4], r[5]) for r in recent] == [(post.pk, None, None)]


def test_periodic_check_reruns_the_switch_while_versions_are_mixed(switched_without_recompute, v2) -> None:
    assert services.recompute_all_if_versions_mixed() is not None
    # v2 never scored the post: its affect goes rather than staying on v1.
    assert not PostAffect.objects.exclude(model_version_id=v2.pk).exists()
    assert services.recompute_all_if_versions_mixed() is None  # nothing mixed any more: no work
