"""Facial-emotion pipeline: image bytes -> faces -> emotion probabilities.

Plain Python (no ORM), so it runs the same in the Celery worker, in
``manage.py analyze``, in the benchmark and in unit tests:

1. **decode** untrusted bytes with :func:`feedmood.images.decode_image_to_array`
   (size, pixel and format limits, EXIF orientation) to full-resolution grey,
   in one validated pass (JPEG: libjpeg outputs the luma plane directly);
2. **detect** every face: by default MediaPipe's BlazeFace short-range model
   (:mod:`emotion.face_detector`, six landmarks, faces smaller than the whole-image
   pass can see searched on tiles down to ``min_face``); or, as named
   alternatives (:data:`CONFIGS`), OpenCV's Haar cascade on a copy downscaled to
   a fixed pixel budget, searched octave by octave (:func:`face_candidates`);
3. **frame** each face like FER-2013 frames its crops (:func:`frame_faces`): a
   square fitted to the detector's box (``framing``), rotated so the eyes are
   level (``align``), resized to 48x48 with ``INTER_AREA``;
4. **classify** all crops with ONE batched ``predict_proba`` call.

Bad input raises :class:`PipelineError` (a clear, user-facing message); an
image without faces is a normal result with ``faces == ()``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import cv2
import numpy as np
from django.core.exceptions import ValidationError

from emotion import face_detector
from emotion.affect import valence_arousal
from feedmood.images import decode_image_to_array

FACE_SIDE = 48
DETECTORS = ("blazeface", "haar")
SEARCHES = ("tiles", "pyramid")
#: The default cascade (bundled with opencv-python-headless in ``cv2.data.haarcascades``).
CASCADE_FILE = "haarcascade_frontalface_alt2.xml"


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
    """Detection and cropping parameters.

    The defaults are the fastest-with-best-recall choice of ``bench/face_detection.py``
    (``bench/results/face_detection.md``; issue #5: a 640x480 JPEG with one face end to
    end in <= 12 ms median on 2 cores): OpenCV's ``alt2`` frontal-face Haar cascade on a
    copy of 288x216 = 62,208 pixels (any aspect ratio), scale factor 1.15, octave search
    and ``min_neighbors=1``.  Detection takes ~7 ms with 2 threads (~12 ms with 1).

    Trade-off: the smallest face found is ``min_face_side`` = 24 px of the detection copy,
    i.e. 1/9 (11%) of the short side of a 4:3 photo -- 53 px at 640x480, 107 px at
    1280x960 -- and 13% of it at 16:9 (141 px at 1920x1080).  Smaller faces (crowds, group
    photos taken from afar) are missed.  On the study's 609 faces in 301 scenes it finds
    67% of the faces (the old default, ``default`` cascade on 320x240, 1.15, 5 neighbours,
    min face 48 px at 640x480: 53%, at 18 ms) with 0.04 false positives per photo.
    These Haar figures are from ``bench/results/face_detection.md``; for group photos the named config
    ``blazeface-group`` is the one to select (``docs/photos.md``).
    """

    #: Longest side of the detection copy.
    detect_max_side: int = 640
    #: Pixel budget of the detection copy (288x216 for 4:3): bounds Haar's cost for any input.
    detect_max_pixels: int = 288 * 216
    #: Haar pyramid step: 1.1 finds more faces (~1.7x slower), 1.2-1.3 is faster but misses more.
    scale_factor: float = 1.15
    #: Raw cascade hits (beyond the first) a face needs; octave search yields fewer hits per
    #: face, and ``alt2`` is precise enough that 1 keeps false positives at the old level.
    min_neighbors: int = 1
    #: Smallest face, in pixels of the detection copy (>= the cascade's window: 20 for alt/alt2, 24 for default).
    min_face_side: int = 24
    #: Extra context around each detected box, as a fraction of its side.
    margin: float = 0.15
    #: Histogram equalisation before detection (helps in dim or low-contrast photos).
    equalize: bool = True
    max_faces: int = 32
    #: Search the pyramid octave by octave (see :func:`face_candidates`): same scales, about half the cost.
    octaves: bool = True
    #: Which of OpenCV's bundled frontal-face Haar cascades (a file name in ``cv2.data.haarcascades``).
    cascade: str = CASCADE_FILE
    #: ``"blazeface"`` (landmarks; the fields below) or ``"haar"`` (the cascade fields above).
    detector: str = "blazeface"
    #: BlazeFace score threshold.
    min_score: float = 0.5
    #: Smallest face searched, as a fraction of the image's short side (0.05 = 24 px at 640x480);
    #: faces below what the whole-image pass sees are searched on tiles (slower); 0 = whole image only.
    min_face: float = 0.0
    #: When nothing is found, faces down to this fraction of the short side are searched on tiles (0: off).
    fallback_face: float = 0.2
    #: How faces below the whole-image pass are searched: ``"tiles"`` (overlapping squares, the fallback
    #: above), or ``"pyramid"`` (whole-image passes at larger scales, every candidate confirmed by the
    #: face-mesh model; for group photos, see ``emotion.face_detector.BlazeFace.detect_pyramid``).
    search: str = "tiles"
    #: Crop square from the detector's box: side = ``framing[0]`` x box width, centre = box centre
    #: + (``framing[1]``, ``framing[2]``) x box width (fitted to FER-2013 by ``bench/photo_pipeline.py``).
    framing: tuple[float, float, float] = (1.15, 0.0, -0.1)
    #: Rotate each crop so the eyes are level (needs a detector with landmarks) ...
    align: bool = True
    #: ... except for this many degrees of roll, left as they are: FER-2013's own crops are not
    #: levelled (their faces roll by about +-10 degrees), so levelling those small rolls moves the
    #: crop away from the training data.
    align_slack: float = 10.0

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {self.detector!r}")
        if not (0.0 < self.min_score < 1.0) or not (0.0 <= self.min_face < 1.0 and 0.0 <= self.fallback_face < 1.0):
            raise ValueError("min_score must be in (0, 1), min_face and fallback_face in [0, 1)")
        framing = tuple(float(v) for v in self.framing)
        if len(framing) != 3 or not framing[0] > 0 or not all(math.isfinite(v) for v in framing):
            raise ValueError("framing must be (scale > 0, dx, dy)")
        object.__setattr__(self, "framing", framing)
        if not (0.0 <= self.align_slack <= 90.0):
            raise ValueError("align_slack must be between 0 and 90 degrees")
        if self.search not in SEARCHES:
            raise ValueError(f"search must be one of {', '.join(SEARCHES)}, not {self.search!r}")
        if self.search == "pyramid" and not (self.detector == "blazeface" and self.min_face > 0):
            raise ValueError("search 'pyramid' needs the blazeface detector and a min_face > 0")
        if self.align and self.detector != "blazeface":
            raise ValueError("align needs landmarks: only the blazeface detector has them")
        if not (
            isinstance(self.cascade, str)
            and self.cascade.startswith("haarcascade_frontalface")
            and os.path.basename(self.cascade) == self.cascade
            and self.cascade.endswith(".xml")
        ):
            raise ValueError(
                f"cascade must be one of OpenCV's haarcascade_frontalface*.xml files, not {self.cascade!r}"
            )
        if not self.scale_factor > 1.0:
            raise ValueError("scale_factor must be > 1")
        if self.detect_max_side < 1 or self.detect_max_pixels < 1 or self.min_face_side < 1 or self.min_neighbors < 0:
            raise ValueError("detect_max_side, detect_max_pixels and min_face_side must be >= 1, min_neighbors >= 0")


#: Smallest face the group search looks for, as a fraction of the short side (24 px at 640x480).
GROUP_MIN_FACE = 0.05


def for_group_photos(config: PipelineConfig) -> PipelineConfig:
    """``config`` with the group search (every face down to 24 px at 640x480, the verified scale pyramid of
    ``blazeface-group``) for images that may show several people; framing and alignment stay the card's.
    A config that already searches below the whole-image pass, or a Haar config, is returned as it is."""
    if config.detector != "blazeface" or config.min_face > 0:
        return config
    return dataclasses.replace(config, min_face=GROUP_MIN_FACE, search="pyramid")


#: Haar settings as they were the default before BlazeFace (crop margin 0.15 = framing 1.3).
HAAR_CONFIG = PipelineConfig(detector="haar", framing=(1.3, 0.0, 0.0), align=False)
DEFAULT_CONFIG = PipelineConfig()
#: Named configurations (``settings.FEEDMOOD_FER_PIPELINE`` or a model card may name one); see ``docs/photos.md``.
CONFIGS: dict[str, PipelineConfig] = {
    "blazeface": DEFAULT_CONFIG,
    # Group photos: every face down to 24 px at 640x480 (scale pyramid, candidates confirmed by a second model).
    "blazeface-group": for_group_photos(DEFAULT_CONFIG),
    # The previous group search: tiles down to 24 px (about 100 detector passes per photo).
    "blazeface-tiles": PipelineConfig(min_face=GROUP_MIN_FACE),
    "haar": HAAR_CONFIG,
    "haar-thorough": PipelineConfig(
        detector="haar",
        cascade="haarcascade_frontalface_alt.xml",
        detect_max_pixels=448 * 336,
        scale_factor=1.1,
        framing=(1.3, 0.0, 0.0),
        align=False,
    ),
}


#: Keys of a card's ``pipeline`` that document it and are not settings.
NOTE_KEYS = frozenset({"fitted_by"})


def config_from(spec: str | dict[str, Any] | None) -> PipelineConfig:
    """A config from a model card's or the settings' ``pipeline`` entry: ``None`` (the default), the
    name of one of :data:`CONFIGS`, or a dict of :class:`PipelineConfig` fields, optionally with
    ``"name"`` for the named config it starts from.  Raises ``ValueError`` for anything else."""
    if spec is None:
        return DEFAULT_CONFIG
    if isinstance(spec, str):
        if spec not in CONFIGS:
            raise ValueError(f"unknown pipeline {spec!r}; expected one of {', '.join(CONFIGS)}")
        return CONFIGS[spec]
    if not isinstance(spec, dict):
        raise ValueError(f"a pipeline must be a name or a dict of settings, not {type(spec).__name__}")
    fields = {k: v for k, v in spec.items() if k not in NOTE_KEYS}
    base = config_from(fields.pop("name", None))
    known = set(PipelineConfig.__dataclass_fields__)
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown pipeline settings {unknown}")
    try:
        return dataclasses.replace(base, **fields) if fields else base
    except TypeError as exc:
        raise ValueError(f"invalid pipeline settings: {exc}") from None


def card_fields(config: PipelineConfig, name: str = "blazeface") -> dict[str, Any]:
    """What a model card records of ``config``: its name and the detector, framing and alignment."""
    keys: tuple[str, ...] = (
        "detector",
        "min_score",
        "min_face",
        "fallback_face",
        "search",
        "framing",
        "align",
        "align_slack",
    )
    if config.detector == "haar":
        keys = (
            "detector",
            "cascade",
            "detect_max_pixels",
            "scale_factor",
            "min_neighbors",
            "margin",
            "framing",
            "align",
        )
    if config.search == "tiles":  # the default search: cards written before it existed stay as they are
        keys = tuple(k for k in keys if k != "search")
    return {"name": name} | {
        k: list(v) if isinstance(v, tuple) else v for k, v in ((k, getattr(config, k)) for k in keys)
    }


@dataclass(frozen=True)
class Box:
    """A face rectangle in original-image pixels (after EXIF orientation)."""

    x: int
    y: int
    w: int
    h: int
    #: Eye-line angle in degrees (image-left eye to image-right eye, y down); 0 without landmarks.
    angle: float = 0.0

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


def face_cascade(name: str = CASCADE_FILE) -> cv2.CascadeClassifier:
    """One of OpenCV's bundled Haar cascades, loaded lazily once per process/thread.

    Keyed by pid so a forked worker child never reuses its parent's object,
    and thread-local because ``detectMultiScale`` is not thread-safe.
    """
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:
        _local.cascades, _local.pid = {}, pid
    cascade: cv2.CascadeClassifier | None = _local.cascades.get(name)
    if cascade is None:
        path = os.path.join(cv2.data.haarcascades, name)  # type: ignore[attr-defined]  # not in OpenCV's stubs
        cascade = cv2.CascadeClassifier(path)
        if cascade.empty():
            raise RuntimeError(f"could not load the OpenCV face cascade from {path}")
        _local.cascades[name] = cascade
    return cascade


# --- Stages -----------------------------------------------------------------------------


def decode(data: bytes, max_pixels: int | None = None) -> np.ndarray:
    """Validate and decode untrusted bytes to a full-resolution ``uint8`` grey image.

    Raises :class:`PipelineError` with the validator's message.
    """
    try:
        return decode_image_to_array(data, mode="L", max_pixels=max_pixels)
    except ValidationError as exc:
        raise PipelineError(" ".join(exc.messages), code=getattr(exc, "code", None) or "invalid") from None


def detection_scale(height: int, width: int, config: PipelineConfig = DEFAULT_CONFIG) -> float:
    """Factor (<= 1) that brings the image within the detection side and pixel budget."""
    return min(
        1.0,
        config.detect_max_side / max(height, width),
        math.sqrt(config.detect_max_pixels / (height * width)),
    )


def detection_image(gray: np.ndarray, config: PipelineConfig = DEFAULT_CONFIG) -> np.ndarray:
    """The copy the cascade searches: ``gray`` shrunk to the detection budget (``INTER_AREA``), equalised."""
    height, width = gray.shape[:2]
    scale = detection_scale(height, width, config)
    small = gray
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    if config.equalize and min(small.shape[:2]) >= config.min_face_side:
        small = cv2.equalizeHist(small)
    return small


def face_candidates(small: np.ndarray, config: PipelineConfig = DEFAULT_CONFIG) -> np.ndarray:
    """Raw (ungrouped) cascade hits in ``small`` as an ``int32 (N, 4)`` array of x, y, w, h.

    With ``config.octaves`` the pyramid is searched one octave at a time:
    windows of 1-2x the cascade's size on ``small``, 2-4x on a half-size copy,
    4-8x on a quarter-size copy, and so on (same scale factor, same minimum
    face).  OpenCV slides the window by 2 pixels of the scaled image below
    scale 2 but by 1 pixel from scale 2 up, so those levels cost ~3.6x more
    per pixel; octaves keep the 2-pixel step (1/12 of the window) everywhere,
    which roughly halves the cost of the pyramid for the same scales.
    """
    cascade = face_cascade(config.cascade)
    win_w, win_h = cascade.getOriginalWindowSize()
    min_side = max(1, config.min_face_side)
    if min(small.shape[:2]) < min_side:
        return np.zeros((0, 4), np.int32)
    if not config.octaves:
        found = cascade.detectMultiScale(
            small, scaleFactor=config.scale_factor, minNeighbors=0, minSize=(min_side, min_side)
        )
        return np.asarray(found, dtype=np.int32).reshape(-1, 4)
    height, width = small.shape[:2]
    found_all: list[np.ndarray] = []
    image = small
    while image.shape[0] >= win_h and image.shape[1] >= win_w:
        fy, fx = height / image.shape[0], width / image.shape[1]  # ``small`` pixels per octave pixel
        lo = math.ceil(min_side / min(fx, fy))
        if lo <= 2 * max(win_w, win_h) - 1:
            hits = cascade.detectMultiScale(
                image,
                scaleFactor=config.scale_factor,
                minNeighbors=0,
                minSize=(lo, lo),
                maxSize=(2 * win_w - 1, 2 * win_h - 1),  # scales < 2: the 2-pixel step
            )
            octave = np.asarray(hits, dtype=np.float64).reshape(-1, 4)
            if len(octave):
                found_all.append(np.rint(octave * (fx, fy, fx, fy)))
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA)
    if not found_all:
        return np.zeros((0, 4), np.int32)
    boxes: np.ndarray = np.concatenate(found_all).astype(np.int32)
    return boxes


def group_candidates(candidates: np.ndarray, min_neighbors: int) -> np.ndarray:
    """Raw hits -> faces ``(M, 4)``: OpenCV's own grouping, then nested duplicates removed.

    ``cv2.groupRectangles`` (eps 0.2) is exactly what ``detectMultiScale`` does with
    ``minNeighbors``: clusters of similar rectangles, kept when they have more than
    ``min_neighbors`` members.  Its rule against a box inside another only fires when the
    outer cluster has more than 3 members; with few hits per face (octaves, low
    ``min_neighbors``) a second, smaller box on the same face survives.  So of two boxes
    whose intersection is half the smaller one's area or more, only the stronger (more
    hits; then larger) is kept.  ``min_neighbors=0`` returns the raw hits, as OpenCV does.
    """
    if min_neighbors <= 0 or len(candidates) == 0:
        return candidates
    rects, counts = cv2.groupRectangles(candidates.tolist(), min_neighbors, 0.2)
    grouped = np.asarray(rects, dtype=np.int32).reshape(-1, 4)
    weights = np.asarray(counts, dtype=np.int64).reshape(-1)
    return suppress_overlaps(grouped, weights)


def suppress_overlaps(boxes: np.ndarray, weights: np.ndarray, max_overlap: float = 0.5) -> np.ndarray:
    """Greedy suppression, strongest first (weight, then area): a box is dropped when its intersection
    with an already kept box is at least ``max_overlap`` of the smaller of the two areas."""
    if len(boxes) < 2:
        return boxes
    areas = boxes[:, 2].astype(np.int64) * boxes[:, 3]
    order = sorted(range(len(boxes)), key=lambda i: (-weights[i], -areas[i]))
    kept: list[int] = []
    for i in order:
        x, y, w, h = boxes[i]
        for j in kept:
            ix = min(x + w, boxes[j, 0] + boxes[j, 2]) - max(x, boxes[j, 0])
            iy = min(y + h, boxes[j, 1] + boxes[j, 3]) - max(y, boxes[j, 1])
            if ix > 0 and iy > 0 and ix * iy >= max_overlap * min(areas[i], areas[j]):
                break
        else:
            kept.append(i)
    return boxes[sorted(kept)]


def detect_faces(gray: np.ndarray, config: PipelineConfig = DEFAULT_CONFIG) -> list[Box]:
    """Every frontal face in ``gray`` as boxes in its own coordinates, left to right (then top to bottom)."""
    if config.detector == "blazeface":
        return blazeface_faces(gray, config)
    height, width = gray.shape[:2]
    small = detection_image(gray, config)
    found = group_candidates(face_candidates(small, config), config.min_neighbors)
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


def blazeface_faces(gray: np.ndarray, config: PipelineConfig = DEFAULT_CONFIG) -> list[Box]:
    """BlazeFace detections as boxes (clipped to the image) with their eye-line angle."""
    height, width = gray.shape[:2]
    detector = face_detector.blazeface("short", config.min_score)
    short = min(height, width)
    if config.search == "pyramid":
        found = detector.detect_pyramid(
            gray, config.min_face * short, face_detector.verifier(), max_faces=config.max_faces
        )
    else:
        found = detector.detect(
            gray,
            min_face=config.min_face * short,
            max_faces=config.max_faces,
            fallback_face=config.fallback_face * short,
        )
    boxes = []
    for face in found:
        x0, y0, x1, y1 = face.box
        x0, y0 = max(0, round(x0)), max(0, round(y0))
        x1, y1 = min(width, round(x1)), min(height, round(y1))
        if x1 > x0 and y1 > y0:
            (ax, ay), (bx, by) = face.eyes
            boxes.append(Box(x0, y0, x1 - x0, y1 - y0, round(math.degrees(math.atan2(by - ay, bx - ax)), 3)))
    return sorted(boxes, key=lambda b: (b.x, b.y))


def framed_square(box: Box, framing: tuple[float, float, float]) -> tuple[float, float, float]:
    """Centre x, y and side of the crop square for ``box`` (see ``PipelineConfig.framing``)."""
    scale, dx, dy = framing
    return box.x + box.w / 2 + dx * box.w, box.y + box.h / 2 + dy * box.w, scale * box.w


def frame_faces(gray: np.ndarray, boxes: Sequence[Box], config: PipelineConfig = DEFAULT_CONFIG) -> np.ndarray:
    """``uint8 (N, 48, 48)`` crops framed like FER-2013: each box's :func:`framed_square`, rotated by
    the eye-line angle when ``config.align`` (eyes level), edge pixels repeated outside the image.

    The region around the square is first shrunk with ``INTER_AREA`` to twice the output side,
    rotated and cut there, then shrunk to 48x48 with ``INTER_AREA``, so large faces are not aliased.
    """
    height, width = gray.shape[:2]
    out = 2 * FACE_SIDE
    crops = np.empty((len(boxes), FACE_SIDE, FACE_SIDE), dtype=np.uint8)
    for i, box in enumerate(boxes):
        cx, cy, side = framed_square(box, config.framing)
        half = 0.75 * side  # covers the square at any rotation (sqrt(2) / 2 < 0.75)
        x0, y0 = math.floor(cx - half), math.floor(cy - half)
        x1, y1 = math.ceil(cx + half), math.ceil(cy + half)
        region = gray[max(0, y0) : min(height, y1), max(0, x0) : min(width, x1)]
        region = cv2.copyMakeBorder(
            region, max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width), cv2.BORDER_REPLICATE
        )
        k = min(1.0, out / side)
        if k < 1.0:
            region = cv2.resize(
                region,
                (max(1, round(region.shape[1] * k)), max(1, round(region.shape[0] * k))),
                interpolation=cv2.INTER_AREA,
            )
        kx, ky = region.shape[1] / (x1 - x0), region.shape[0] / (y1 - y0)
        centre = ((cx - x0) * kx, (cy - y0) * ky)
        angle = math.copysign(max(0.0, abs(box.angle) - config.align_slack), box.angle) if config.align else 0.0
        m = np.asarray(cv2.getRotationMatrix2D(centre, angle, out / (side * kx)), dtype=np.float64)
        m[:, 2] += (out / 2 - centre[0], out / 2 - centre[1])
        patch = cv2.warpAffine(region, m, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        crops[i] = cv2.resize(patch, (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)
    return crops


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


def aggregate_faces(faces: Sequence[FaceResult], width: int, height: int) -> FaceResult | None:
    """One reading for a whole image: the confidence-weighted mean of its faces (``None`` without faces).

    Post images may show people other than the author, so only this aggregate
    is stored for them: no per-face box or reading.  The box is the whole image;
    ``confidence`` is the mean face confidence; ``dominant`` the argmax of the
    weighted mean distribution (the recommender's ``affect_from_faces`` of this
    one face gives the same valence, arousal and dominant emotion as of all faces).
    """
    if not faces:
        return None
    weights = np.clip(np.asarray([f.confidence for f in faces], dtype=np.float64), 0.0, 1.0)
    if weights.sum() <= 0.0:
        weights = np.ones(len(faces))
    weights = weights / weights.sum()
    labels = list(faces[0].probabilities)
    probs = {
        name: round(float(sum(w * f.probabilities.get(name, 0.0) for w, f in zip(weights, faces))), 6)
        for name in labels
    }
    return FaceResult(
        index=0,
        box=Box(0, 0, int(width), int(height)),
        probabilities=probs,
        dominant=max(labels, key=lambda name: probs[name]),
        confidence=round(float(np.mean([min(max(f.confidence, 0.0), 1.0) for f in faces])), 6),
        valence=round(float(sum(w * f.valence for w, f in zip(weights, faces))), 6),
        arousal=round(float(sum(w * f.arousal for w, f in zip(weights, faces))), 6),
    )


def analyze_array(gray: np.ndarray, classifier: Classifier, config: PipelineConfig = DEFAULT_CONFIG) -> PipelineResult:
    """Detect and classify faces in an already decoded grey image (decode_ms = 0)."""
    t0 = time.perf_counter()
    boxes = detect_faces(gray, config)
    t1 = time.perf_counter()
    if config.detector == "haar" and config.framing == (1 + 2 * config.margin, 0.0, 0.0):
        crops = crop_faces(gray, boxes, config.margin)  # the Haar default as it always cropped
    else:
        crops = frame_faces(gray, boxes, config)
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


def analyze_bytes(
    data: bytes, classifier: Classifier, config: PipelineConfig = DEFAULT_CONFIG, *, max_pixels: int | None = None
) -> PipelineResult:
    """Run the whole pipeline on untrusted image bytes.

    ``max_pixels`` refuses larger images from their header, before decoding (default: the upload limit).
    Raises :class:`PipelineError` when the bytes are not an acceptable image.
    """
    t0 = time.perf_counter()
    gray = decode(data, max_pixels)
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
