"""Staff see no individual emotion data.

The Django admin lists no readings, moods or post affect (not even inline);
the dashboard needs its own permission and shows only completed days, so one
selfie never changes a shown cell, however often it is refreshed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from recommender.models import MoodState, PostAffect
from tests import recommender_factories as rf
from tests.dashboard_seed import make_users, make_version, selfie

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/dashboard/"
EMOTION_ADMIN_PAGES = ("/admin/emotion/facereading/", "/admin/recommender/moodstate/",
                       "/admin/recommender/postaffect/")  # fmt: skip


def _staff(make_user: Any, *, permitted: bool) -> Client:
    user = make_user(username=f"staff-{permitted}", is_staff=True)
    if permitted:
        user.user_permissions.add(Permission.objects.get(codename="view_emotion_dashboard"))
    client = Client()
    client.force_login(user)
    return client


def test_the_admin_shows_no_individual_emotion_data(admin_client: Client, make_user) -> None:
    version = rf.model_version()
    sad = make_user(username="sadperson", emotion_consent=True)
    analysis = rf.selfie(sad, version, rf.SAD, hours_ago=0.1)
    rf.post_with_faces(sad, version, [rf.SAD], hours_ago=1)
    from recommender import services

    services.mood_recompute(user=sad)
    assert MoodState.objects.filter(user=sad).exists() and PostAffect.objects.exists()
    for url in EMOTION_ADMIN_PAGES:  # the finding: ?dominant_emotion=sadness listed one user by name
        assert admin_client.get(url, {"dominant_emotion": "sadness"}).status_code == 404, url
    index = admin_client.get("/admin/").content.decode()
    assert "Face readings" not in index and "Mood states" not in index and "Post affects" not in index
    page = admin_client.get(f"/admin/emotion/imageanalysis/{analysis.pk}/change/").content.decode()
    assert "sadness" not in page and "valence" not in page.lower()


def test_the_dashboard_needs_its_own_permission_not_just_staff(make_user) -> None:
    assert _staff(make_user, permitted=False).get(DASHBOARD).status_code == 403
    assert _staff(make_user, permitted=True).get(DASHBOARD).status_code == 200


def test_one_selfie_never_changes_a_shown_dashboard_cell(admin_client: Client, settings) -> None:
    """The finding: before and after one user's single selfie, ``?refresh=1`` showed "sadness: 1 of 14"."""
    settings.FEEDMOOD_DASHBOARD_CACHE_SECONDS = 0  # every view recomputes: no cache hides a change
    version = make_version()
    users = make_users(14)
    yesterday = timezone.localtime(timezone.now()).replace(hour=0, minute=0, second=0) - timedelta(hours=6)
    for user in users:
        selfie(user, version, "happiness", at=yesterday)
    client = admin_client

    def shown() -> tuple[Any, ...]:
        ctx = client.get(DASHBOARD, {"refresh": "1"}).context
        emotions = ctx["emotions"]
        return (
            str(emotions["svg"]),
            emotions["shown"],
            emotions["readings"],
            str(ctx["mood"]["donut"]),
            str(ctx["mood"]["valence"]),
        )

    before = shown()
    assert before[1] == 1 and before[2] == 14  # yesterday is shown
    selfie(users[0], version, "sadness", at=timezone.now() - timedelta(seconds=1))
    assert shown() == before


@pytest.mark.parametrize("erase", ["withdraw consent", "erase readings", "delete account"])
def test_erasure_drops_the_dashboards_cached_aggregates_at_once(
    erase: str, make_user, client_for, django_capture_on_commit_callbacks
) -> None:
    from django.core.cache import cache

    from dashboard.views import CACHE_KEY

    user = make_user(username="leaving", password="pw-leaving-123", emotion_consent=True)
    client = client_for(user)
    cache.set(CACHE_KEY, {"aggregates": "computed before the erasure"}, 600)
    with django_capture_on_commit_callbacks(execute=True):
        if erase == "withdraw consent":
            response = client.patch("/api/me/", {"emotion_consent": False}, format="json")
        elif erase == "erase readings":
            response = client.delete("/api/me/emotions/")
        else:
            response = client.delete("/api/me/", {"password": "pw-leaving-123"}, format="json")
    assert response.status_code in (200, 204), response.content
    assert cache.get(CACHE_KEY) is None
