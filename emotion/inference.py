"""Per-process cache of loaded emotion classifiers.

The classifier is loaded lazily on first use *in the process that uses it*:
never at import time and never in a Celery prefork parent (a TF/LiteRT
session created before ``fork`` can hang in the child).  The cache is keyed
by ``(pid, artifact_path)`` and cleared in forked children, so each worker
child builds its own interpreter.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from django.conf import settings

from emotion.affect import CIRCUMPLEX
from ml.runtime import EmotionClassifier

_lock = threading.Lock()
_cache: dict[tuple[int, str], EmotionClassifier] = {}
#: The parent's classifiers, kept alive in a forked child: destroying a LiteRT interpreter that
#: belongs to the parent's threads crashes the child (segmentation fault in ``Interpreter.__del__``).
_inherited: list[EmotionClassifier] = []


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the parent may have held it at fork time
    _inherited.extend(_cache.values())
    _cache.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def load_classifier(artifact_path: str | os.PathLike) -> EmotionClassifier:
    """Load and sanity-check an artifact (no caching): labels must be known emotions.

    Test-time flip follows ``settings.FEEDMOOD_MODEL_TTA`` (None: the artifact's card).
    """
    classifier = EmotionClassifier.load(artifact_path, tta=settings.FEEDMOOD_MODEL_TTA)
    unknown = [name for name in classifier.labels if name not in CIRCUMPLEX]
    if unknown:
        raise ValueError(f"model {classifier.name} has labels FeedMood does not know: {unknown}")
    return classifier


def get_classifier(artifact_path: str | os.PathLike) -> EmotionClassifier:
    """The cached classifier for ``artifact_path`` in this process (loaded on first call)."""
    key = (os.getpid(), str(Path(artifact_path).resolve()))
    classifier = _cache.get(key)
    if classifier is None:
        with _lock:
            classifier = _cache.get(key)
            if classifier is None:
                classifier = load_classifier(artifact_path)
                _cache[key] = classifier
    return classifier


def clear_cache() -> None:
    """Forget every loaded classifier (tests; after an artifact was replaced on disk)."""
    with _lock:
        _cache.clear()
