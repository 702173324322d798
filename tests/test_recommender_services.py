"""Recommender services and receivers against the real database and emotion models."""

from __future__ import annotations

import pytest

from emotion import signals as emotion_signals
from emotion.models import ImageAnalysis
from feedmood import services as social_services
from recommender import selectors, services
from recommender.models import MoodState, PostAffect
from tests import recommender_factories as rf

pytestmark = pytest.mark.django_db


@pytest.fixture
def version():
    return rf.model_version()


@pytest.fixture
def consenting(make_user):
    return make_user(username="carol", emotion_consent=True)


def test_mood_recompute_stores_decayed_sums(consenting, version):
    rf.selfie(consenting, version, rf.SAD, hours_ago=1)
    rf.selfie(consenting, version, rf.HAPPY, hours_ago=48)  # two half-lives: weighs a quarter
    state = services.mood_recompute(user=consenting)
    assert state is not None and state.reading_count == 2 and state.model_version_id == version.pk
    mood = selectors.mood_get(user=consenting)
    assert mood.known and mood.label == "sadness" and mood.valence < -0.3


def test_no_mood_is_inferred_without_consent(make_user, version):
    user = make_user(username="dave")  # emotion_consent defaults to False
    rf.selfie(user, version, rf.SAD)
    assert services.mood_recompute(user=user) is None
    assert not MoodState.objects.filter(user=user).exists()
    mood = selectors.mood_get(user=user)
    assert not mood.known and mood.reason == "no consent"


def test_old_readings_make_the_mood_unknown(consenting, version):
    rf.selfie(consenting, version, rf.SAD, hours_ago=24 * 6)
    services.mood_recompute(user=consenting)
    mood = selectors.mood_get(user=consenting)
    assert not mood.known and mood.reason == "no recent selfie"


def test_only_the_active_model_version_is_used(consenting, version):
    rf.selfie(consenting, version, rf.SAD)
    newer = rf.model_version(name="rescored")
    analysis = ImageAnalysis.objects.get(owner=consenting)
    rf.reading(analysis, newer, rf.HAPPY)  # the same selfie rescored by the newer, active model
    services.mood_recompute(user=consenting)
    assert selectors.mood_get(user=consenting).label == "happiness"
    assert MoodState.objects.get(user=consenting).model_version_id == newer.pk

    rf.activate(version)  # switch back: recompute_all must not mix versions
    result = services.recompute_all()
    assert result["users"] >= 1
    assert selectors.mood_get(user=consenting).label == "sadness"
    assert MoodState.objects.get(user=consenting).model_version_id == version.pk


def test_post_affect_from_faces_no_faces_and_unscored(make_user, version):
    author = make_user(username="erin")
    two = rf.post_with_faces(author, version, [rf.HAPPY, rf.SAD])
    affect = PostAffect.objects.get(post=two)
    assert affect.face_count == 2 and affect.source == "faces" and affect.model_version_id == version.pk
    v_h, _ = rf.circumplex(rf.HAPPY)
    v_s, _ = rf.circumplex(rf.SAD)
    assert affect.valence == pytest.approx((v_h + v_s) / 2)

    none = rf.post_with_faces(author, version, [])
    affect = PostAffect.objects.get(post=none)
    assert affect.face_count == 0 and affect.valence is None and not affect.known

    unscored = rf.post(author)
    assert services.post_affect_recompute(post=unscored) is None
    assert not PostAffect.objects.filter(post=unscored).exists()

    # A new active version that has not rescored the post drops the old version's affect.
    rf.model_version(name="v2")
    services.post_affect_recompute(post=two)
    assert not PostAffect.objects.filter(post=two).exists()


def test_analysis_finished_signal_updates_the_mood(consenting, version, django_capture_on_commit_callbacks):
    analysis = rf.selfie(consenting, version, rf.SAD)
    with django_capture_on_commit_callbacks(execute=True):
        emotion_signals.analysis_finished.send(sender=ImageAnalysis, analysis=analysis)
    assert MoodState.objects.filter(user=consenting).exists()
    assert selectors.mood_get(user=consenting).label == "sadness"


def test_analysis_finished_signal_updates_post_affect(make_user, version, django_capture_on_commit_callbacks):
    author = make_user(username="frank")
    post = rf.post(author)
    analysis = ImageAnalysis.objects.create(
        owner=author, source="post", post=post, status="done", model_version=version
    )
    rf.reading(analysis, version, rf.HAPPY)
    with django_capture_on_commit_callbacks(execute=True):
        emotion_signals.analysis_finished.send(sender=ImageAnalysis, analysis=analysis)
    assert PostAffect.objects.get(post=post).dominant_emotion == "happiness"


def test_erasure_and_withdrawal_drop_the_mood(consenting, version, django_capture_on_commit_callbacks):
    rf.selfie(consenting, version, rf.SAD)
    rf.post_with_faces(consenting, version, [rf.HAPPY])
    services.mood_recompute(user=consenting)
    emotion_signals.readings_erased.send(sender=ImageAnalysis, user=consenting)
    assert not MoodState.objects.filter(user=consenting).exists()
    assert not PostAffect.objects.filter(post__author=consenting).exists()

    rf.selfie(consenting, version, rf.SAD)
    services.mood_recompute(user=consenting)
    with django_capture_on_commit_callbacks(execute=True):
        social_services.profile_update(user=consenting, data={"emotion_consent": False})
    assert not MoodState.objects.filter(user=consenting).exists()
    assert not ImageAnalysis.objects.filter(owner=consenting).exists()  # the emotion app erased readings
    assert selectors.mood_get(user=consenting).reason == "no consent"


def test_half_life_change_recomputes_the_mood(consenting, version, django_capture_on_commit_callbacks):
    rf.selfie(consenting, version, rf.SAD, hours_ago=30)
    services.mood_recompute(user=consenting)
    assert selectors.mood_get(user=consenting).confidence == pytest.approx(0.9 * 0.5 ** (30 / 24), rel=1e-3)
    # Read path: a changed half-life is honoured at once, even before the recompute task ran.
    consenting.profile.mood_half_life_hours = 60
    consenting.profile.save(update_fields=["mood_half_life_hours"])
    assert selectors.mood_get(user=consenting).confidence == pytest.approx(0.9 * 0.5 ** (30 / 60), rel=1e-3)
    with django_capture_on_commit_callbacks(execute=True):
        social_services.profile_update(user=consenting, data={"mood_half_life_hours": 12})
    assert MoodState.objects.get(user=consenting).half_life_hours == 12
    assert selectors.mood_get(user=consenting).confidence == pytest.approx(0.9 * 0.5 ** (30 / 12), rel=1e-3)
