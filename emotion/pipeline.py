"""Facial-emotion pipeline: image bytes -> faces -> emotion probabilities.

Plain Python (no ORM), so it runs the same in the Celery worker, in
``manage.py analyze``, in the benchmark and in unit tests:

1. **decode** untrusted bytes with :func:`feedmood.images.decode_image_to_array`
   (size, pixel and format limits, EXIF orientation) to full-resolution grey;
2. **detect** every face with OpenCV's Haar cascade on a copy downscaled to
   a fixed pixel budget (Haar cost grows with pixels); boxes are mapped back
   to original-image coordinates;
3. **crop** each face with a margin (clipped to the image) from the
   full-resolution image and resize it to 48x48 (``INTER_AREA``);
4. **classify** all crops with ONE batched ``predict_proba`` call.

Bad input raises :class:`PipelineError` (a clear, user-facing message); an
image without faces is a normal result with ``faces == ()``.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
from django.core.exceptions import ValidationError

from emotion.affect import valence_arousal
from feedmood.images import decode_image_to_array

FACE_SIDE = 48
CASCADE_FILE = "haarcascade_frontalface_default.xml"


class Classifier(Protocol):
    """What the pipeline needs from :class:`ml.runtime.EmotionClassifier`."""

    labels: tuple[str, ...]

    def predict_proba(self, faces: np.ndarray) -> np.ndarray: ...


class PipelineError(Exception):
    """The input cannot be analysed; ``str(exc)`` is safe to show to the user."""

    def __init__(self, message: str, code: str = "invalid"):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class PipelineConfig:
    """Detection and cropping parameters (defaults tuned for selfies and feed photos)."""

    #: Longest side of the detection copy.
    detect_max_side: int = 640
    #: Pixel budget of the detection copy (320x240): bounds Haar's cost for any input.
    detect_max_pixels: int = 320 * 240
    #: Haar pyramid step; 1.1 finds more faces, 1.2 is twice as fast.
    scale_factor: float = 1.15
    min_neighbors: int = 5
    #: Smallest face, in pixels of the detection copy (24 is the cascade's window).
    min_face_side: int = 24
    #: Extra context around each detected box, as a fraction of its side.
    margin: float = 0.15
    #: Histogram equalisation before detection (helps in dim or low-contrast photos).
    equalize: bool = True
    max_faces: int = 32


DEFAULT_CONFIG = PipelineConfig()


@dataclass(frozen=True)
class Box:
    """A face rectangle in original-image pixels (after EXIF orientation)."""

    x: int
    y: int
    w: int
    h: int

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(frozen=True)
class FaceResult:
    """One detected face and its emotion reading."""

    index: int
    box: Box
    probabilities: dict[str, float]
    dominant: str
    confidence: float
    valence: float
    arousal: float

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        """The ``k`` most probable labels, most probable first."""
        return sorted(self.probabilities.items(), key=lambda item: item[1], reverse=True)[:k]


@dataclass(frozen=True)
class PipelineResult:
    """Everything one run of the pipeline found, with per-stage timings in ms."""

    width: int
    height: int
    faces: tuple[FaceResult, ...]
    labels: tuple[str, ...]
    decode_ms: float
    detect_ms: float
    classify_ms: float

    @property
    def face_count(self) -> int:
        return len(self.faces)

    @property
    def total_ms(self) -> float:
        return self.decode_ms + self.detect_ms + self.classify_ms


# --- Face detector (one cascade per process and thread) ----------------------------------

_local = threading.local()


def face_cascade() -> cv2.CascadeClassifier:
    """OpenCV's frontal-face Haar cascade, loaded lazily once per process/thread.

    Keyed by pid so a forked worker child never reuses its parent's object,
    and thread-local because ``detectMultiScale`` is not thread-safe.
    """
    pid = os.getpid()
    cascade = getattr(_local, "cascade", None)
    if cascade is None or getattr(_local, "pid", None) != pid:
        path = os.path.join(cv2.data.haarcascades, CASCADE_FILE)
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise RuntimeError(f"could not load the OpenCV face cascade from {path}")
        _local.cascade, _local.pid = cascade, pid
    return cascade


# --- Stages -----------------------------------------------------------------------------


def decode(data: bytes) -> np.ndarray:
    """Validate and decode untrusted bytes to a full-resolution ``uint8`` grey image.

    Raises :class:`PipelineError` with the validator's message.
    """
    try:
        return decode_image_to_array(data, mode="L")
    except ValidationError as exc:
        raise PipelineError(" ".join(exc.messages), code=getattr(exc, "code", None) or "invalid") from None


def detection_scale(height: int, width: int, config: PipelineConfig = DEFAULT_CONFIG) -> float:
    """Factor (<= 1) that brings the image within the detection side and pixel budget."""
    return min(
        1.0,
        config.detect_max_side / max(height, width),
        math.sqrt(config.detect_max_pixels / (height * width)),
    )


def detect_faces(gray: np.ndarray, config: PipelineConfig = DEFAULT_CONFIG) -> list[Box]:
    """Every frontal face in ``gray`` as boxes in its own coordinates, in reading order."""
    height, width = gray.shape[:2]
    scale = detection_scale(height, width, config)
    small = gray
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    if min(small.shape[:2]) < config.min_face_side:
        return []
    if config.equalize:
        small = cv2.equalizeHist(small)
    found = face_cascade().detectMultiScale(
        small,
        scaleFactor=config.scale_factor,
        minNeighbors=config.min_neighbors,
        minSize=(config.min_face_side, config.min_face_side),
    )
    sx, sy = width / small.shape[1], height / small.shape[0]
    boxes = []
    for x, y, w, h in np.asarray(found, dtype=np.float64).reshape(-1, 4):
        x0, y0 = max(0, round(x * sx)), max(0, round(y * sy))
        x1, y1 = min(width, round((x + w) * sx)), min(height, round((y + h) * sy))
        if x1 > x0 and y1 > y0:
            boxes.append(Box(x0, y0, x1 - x0, y1 - y0))
    # Largest faces first when capping, then a stable left-to-right, top-to-bottom order.
    boxes = sorted(boxes, key=lambda b: b.w * b.h, reverse=True)[: config.max_faces]
    return sorted(boxes, key=lambda b: (b.x, b.y))


def crop_faces(gray: np.ndarray, boxes: Sequence[Box], margin: float = DEFAULT_CONFIG.margin) -> np.ndarray:
    """``uint8 (N, 48, 48)`` crops: each box grown by ``margin``, clipped, resized with INTER_AREA."""
    height, width = gray.shape[:2]
    crops = np.empty((len(boxes), FACE_SIDE, FACE_SIDE), dtype=np.uint8)
    for i, box in enumerate(boxes):
        dx, dy = round(box.w * margin), round(box.h * margin)
        x0, y0 = max(0, box.x - dx), max(0, box.y - dy)
        x1, y1 = min(width, box.x + box.w + dx), min(height, box.y + box.h + dy)
        crops[i] = cv2.resize(gray[y0:y1, x0:x1], (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)
    return crops


def classify(crops: np.ndarray, classifier: Classifier) -> np.ndarray:
    """One batched ``predict_proba`` for all crops -> float32 ``(N, K)``."""
    if len(crops) == 0:
        return np.zeros((0, len(classifier.labels)), dtype=np.float32)
    probs = np.asarray(classifier.predict_proba(crops), dtype=np.float32)
    if probs.shape != (len(crops), len(classifier.labels)):
        raise RuntimeError(f"classifier returned shape {probs.shape} for {len(crops)} faces")
    return probs


def readings(boxes: Sequence[Box], probs: np.ndarray, labels: Sequence[str]) -> tuple[FaceResult, ...]:
    """Turn boxes and probabilities into :class:`FaceResult` objects."""
    affect = valence_arousal(probs, labels) if len(boxes) else np.zeros((0, 2))
    faces = []
    for i, (box, row) in enumerate(zip(boxes, probs)):
        top = int(np.argmax(row))
        faces.append(
            FaceResult(
                index=i,
                box=box,
                probabilities={name: round(float(p), 6) for name, p in zip(labels, row)},
                dominant=labels[top],
                confidence=float(row[top]),
                valence=round(float(affect[i, 0]), 6),
                arousal=round(float(affect[i, 1]), 6),
            )
        )
    return tuple(faces)


def analyze_array(gray: np.ndarray, classifier: Classifier, config: PipelineConfig = DEFAULT_CONFIG) -> PipelineResult:
    """Detect and classify faces in an already decoded grey image (decode_ms = 0)."""
    t0 = time.perf_counter()
    boxes = detect_faces(gray, config)
    t1 = time.perf_counter()
    crops = crop_faces(gray, boxes, config.margin)
    probs = classify(crops, classifier)
    t2 = time.perf_counter()
    labels = tuple(classifier.labels)
    return PipelineResult(
        width=int(gray.shape[1]),
        height=int(gray.shape[0]),
        faces=readings(boxes, probs, labels),
        labels=labels,
        decode_ms=0.0,
        detect_ms=(t1 - t0) * 1000.0,
        classify_ms=(t2 - t1) * 1000.0,
    )


def analyze_bytes(data: bytes, classifier: Classifier, config: PipelineConfig = DEFAULT_CONFIG) -> PipelineResult:
    """Run the whole pipeline on untrusted image bytes.

    Raises :class:`PipelineError` when the bytes are not an acceptable image.
    """
    t0 = time.perf_counter()
    gray = decode(data)
    decode_ms = (time.perf_counter() - t0) * 1000.0
    result = analyze_array(gray, classifier, config)
    return PipelineResult(
        width=result.width,
        height=result.height,
        faces=result.faces,
        labels=result.labels,
        decode_ms=decode_ms,
        detect_ms=result.detect_ms,
        classify_ms=result.classify_ms,
    )
