"""The mood update through a real Celery worker: signal -> on_commit -> Redis -> worker.

Skipped unless CELERY_BROKER_URL is redis://... and Redis answers.
"""

from __future__ import annotations

import pytest
from django.db import transaction

from emotion import signals as emotion_signals
from emotion.models import ImageAnalysis
from recommender.models import MoodState, PostAffect
from tests import recommender_factories as rf
from tests.worker_tools import needs_redis_broker, wait_for

pytestmark = [
    pytest.mark.slow,
    needs_redis_broker,
]


@pytest.mark.celery_worker(queues=("default",))
def test_finished_analyses_update_mood_and_affect_in_the_worker(celery_worker_process, make_user):
    assert celery_worker_process.db_shared
    version = rf.model_version()
    user = make_user(username="workerviewer", emotion_consent=True)
    selfie = rf.selfie(user, version, rf.SAD)
    post = rf.post(user)
    analysis = ImageAnalysis.objects.create(owner=user, source="post", post=post, status="done", model_version=version)
    rf.reading(analysis, version, rf.HAPPY)
    with transaction.atomic():  # like the emotion app: sent on commit, queued on commit
        transaction.on_commit(lambda: emotion_signals.analysis_finished.send(sender=ImageAnalysis, analysis=selfie))
        transaction.on_commit(lambda: emotion_signals.analysis_finished.send(sender=ImageAnalysis, analysis=analysis))
    wait_for(lambda: MoodState.objects.filter(user=user).exists(), 30, "the mood update", celery_worker_process.log)
    wait_for(
        lambda: PostAffect.objects.filter(post=post).exists(), 30, "the post affect update", celery_worker_process.log
    )
    assert PostAffect.objects.get(post=post).dominant_emotion == "happiness"
    log = celery_worker_process.log()
    assert "recommender.tasks.mood_recompute" in log and "recommender.tasks.post_affect_recompute" in log
