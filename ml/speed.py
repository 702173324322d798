"""Inference speed of a classifier as the service runs it: faces/s at batch 64 and ms for one face."""

from __future__ import annotations

import statistics
import time

import numpy as np

from ml.runtime import BATCH, EmotionClassifier


def measure_speed(clf: EmotionClassifier, faces: np.ndarray, batch_runs: int = 10, latency_runs: int = 50) -> dict:
    """faces/s at batch 64 (median over `batch_runs` calls) and ms for one face (median over `latency_runs`).

    Call i takes the i-th batch (face) of `faces`, round robin, so a selective flip pays for the share
    of unsure faces the data has, not that of one batch.
    """
    if len(faces) < BATCH:
        faces = np.resize(faces, (BATCH, *faces.shape[1:]))
    batches = [faces[start : start + BATCH] for start in range(0, len(faces) - BATCH + 1, BATCH)]
    clf.predict_proba(batches[0])  # warm-up: builds the interpreter / traces the function
    clf.predict_proba(faces[:1])
    times = []
    for i in range(batch_runs):
        batch = batches[i % len(batches)]
        start = time.perf_counter()
        clf.predict_proba(batch)
        times.append(time.perf_counter() - start)
    single = []
    for i in range(latency_runs):
        face = faces[i % len(faces) : i % len(faces) + 1]
        start = time.perf_counter()
        clf.predict_proba(face)
        single.append(time.perf_counter() - start)
    return {
        "faces_per_s_b64": round(BATCH / statistics.median(times), 1),
        "ms_per_face_b1": round(1000 * statistics.median(single), 3),
        "batch_runs": batch_runs,
        "latency_runs": latency_runs,
    }
