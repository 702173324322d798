"""Valence and arousal of the canonical emotion labels (Russell's circumplex).

Russell's circumplex model of affect places every emotion on two bipolar
axes: *valence* (unpleasant -1 .. +1 pleasant) and *arousal* (deactivated
-1 .. +1 activated).  Source:

    J. A. Russell (1980). "A circumplex model of affect".
    Journal of Personality and Social Psychology 39(6), 1161-1178.
    doi:10.1037/h0077714

and the later review:

    J. Posner, J. A. Russell, B. S. Peterson (2005). "The circumplex model of
    affect: An integrative approach to affective neuroscience, cognitive
    development, and psychopathology". Development and Psychopathology 17(3),
    715-734. doi:10.1017/S0954579405050340

Russell's Figure 1 arranges 28 affect words on that circle.  The values
below are *approximate* placements, not numbers printed in the paper: each
label takes the quadrant and angle of the nearest of Russell's words (happy/
glad -> happiness, astonished -> surprise, sad/miserable -> sadness, angry ->
anger, afraid -> fear, the origin -> neutral), rounded to one decimal and
scaled to [-1, 1].  Disgust and contempt are not among the 28 words; they are
placed with the unpleasant, mildly activated words (annoyed, frustrated),
contempt less intense than disgust.  AffectNet (Mollahosseini, Hasani &
Mahoor 2017, IEEE Trans. Affective Computing) annotates both the categories
and valence/arousal on the same faces and can be used to refine the table.

These are coordinates of *category prototypes*, not measurements of a face:
a reading's valence/arousal is the probability-weighted mean
``sum_k p_k * v_k`` over the model's labels, so an uncertain prediction is
pulled towards the centre.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: label -> (valence, arousal), both in [-1, 1].
CIRCUMPLEX: Mapping[str, tuple[float, float]] = {
    "happiness": (0.8, 0.5),
    "surprise": (0.2, 0.8),
    "neutral": (0.0, 0.0),
    "sadness": (-0.7, -0.4),
    "anger": (-0.6, 0.7),
    "fear": (-0.6, 0.6),
    "disgust": (-0.7, 0.3),
    "contempt": (-0.5, 0.2),
}


def affect_table(labels: Sequence[str]) -> np.ndarray:
    """``(K, 2)`` float32 array of (valence, arousal) for ``labels`` in order.

    Raises ``ValueError`` for a label the circumplex does not place.
    """
    unknown = [name for name in labels if name not in CIRCUMPLEX]
    if unknown:
        raise ValueError(f"no valence/arousal for labels {unknown}; known: {sorted(CIRCUMPLEX)}")
    return np.asarray([CIRCUMPLEX[name] for name in labels], dtype=np.float32)


def valence_arousal(probabilities: np.ndarray, labels: Sequence[str]) -> np.ndarray:
    """Probability-weighted (valence, arousal): ``(N, K) -> (N, 2)``, or ``(K,) -> (2,)``.

    Rows are renormalised first so a model whose output does not sum to
    exactly 1 still yields values inside [-1, 1].
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    single = probs.ndim == 1
    probs = np.atleast_2d(probs)
    if probs.shape[1] != len(labels):
        raise ValueError(f"got {probs.shape[1]} probabilities for {len(labels)} labels")
    totals = probs.sum(axis=1, keepdims=True)
    probs = np.divide(probs, totals, out=np.zeros_like(probs), where=totals > 0)
    result = probs @ affect_table(labels).astype(np.float64)
    return result[0] if single else result
