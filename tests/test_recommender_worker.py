"""The mood update through a real Celery worker: signal -> on_commit -> Redis -> worker.

Skipped unless CELERY_BROKER_URL is redis://... and Redis answers.
"""

from __future__ import annotations

import time

import pytest
from django.conf import settings
from django.db import transaction

from emotion import signals as emotion_signals
from emotion.models import ImageAnalysis
from recommender.models import MoodState, PostAffect
from tests import recommender_factories as rf

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not str(settings.CELERY_BROKER_URL).startswith(("redis://", "rediss://")),
        reason="needs CELERY_BROKER_URL=redis://...",
    ),
]


def wait_for(check, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.celery_worker(queues=("default",))
def test_finished_analyses_update_mood_and_affect_in_the_worker(celery_worker_process, make_user):
    assert celery_worker_process.db_shared
    version = rf.model_version()
    user = make_user(username="workerviewer", emotion_consent=True)
    selfie = rf.selfie(user, version, rf.SAD)
    post = rf.post(user)
    analysis = ImageAnalysis.objects.create(owner=user, source="post", post=post, status="done",
                                            model_version=version)
    rf.reading(analysis, version, rf.HAPPY)
    with transaction.atomic():  # like the emotion app: sent on commit, queued on commit
        transaction.on_commit(lambda: emotion_signals.analysis_finished.send(sender=ImageAnalysis, analysis=selfie))
        transaction.on_commit(lambda: emotion_signals.analysis_finished.send(sender=ImageAnalysis, analysis=analysis))
    assert wait_for(lambda: MoodState.objects.filter(user=user).exists()), celery_worker_process.log()[-3000:]
    assert wait_for(lambda: PostAffect.objects.filter(post=post).exists()), celery_worker_process.log()[-3000:]
    assert PostAffect.objects.get(post=post).dominant_emotion == "happiness"
    log = celery_worker_process.log()
    assert "recommender.tasks.mood_recompute" in log and "recommender.tasks.post_affect_recompute" in log
