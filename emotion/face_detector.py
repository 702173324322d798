"""BlazeFace (MediaPipe) face detector with six landmarks, run with LiteRT on grey images.

Pure numpy + OpenCV + ``ai_edge_litert`` (no Django).  The weights are the MediaPipe
``.tflite`` files shipped in ``emotion/face_models/`` (Apache-2.0, see the README there);
nothing is downloaded.  The interpreter is created on first use in the process that uses it
and re-created when the process id changes, so a detector built in a Celery prefork parent
is never shared with a child.

A pass letterboxes a square region to the model's input side, runs the SSD head and decodes
the anchors as MediaPipe's ``TfLiteTensorsToDetectionsCalculator`` does (boxes and keypoints
are offsets from fixed-size anchors, in input pixels), then weighted NMS.  Faces smaller
than the whole-image pass can see are searched on overlapping tiles (see :meth:`plan`).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

MODELS_DIR = Path(__file__).resolve().parent / "face_models"
#: Keypoint order of the BlazeFace models (subject's right eye is on the image's left).
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")
RAW_SCORE_LIMIT = 80.0

# Group-photo search (:meth:`BlazeFace.detect_pyramid`), fitted on composed group photos (seed 2525 of
# ``bench/photo_scenes.py``) and measured on others (``bench/results/photo_detectors.md``).
#: Input pixels of the smallest face of each pyramid level.
PYRAMID_FACE = 40.0
#: BlazeFace's box is tighter than the face (about 0.8-0.9 of its side): a face of ``min_face`` px may be boxed smaller.
PYRAMID_BOX = 0.8
#: Score of a pyramid candidate (low: the verifier decides) ...
PYRAMID_CANDIDATE = 0.3
#: A candidate is kept when it scores ``PYRAMID_KEEP`` and the face-mesh model's face-presence logit is
#: ``VERIFY_LOGIT`` or more, or when it scores ``PYRAMID_KEEP_LOW`` and that logit is ``VERIFY_LOGIT_HIGH``.
PYRAMID_KEEP = 0.64
VERIFY_LOGIT = 2.0
PYRAMID_KEEP_LOW = 0.55
VERIFY_LOGIT_HIGH = 8.0
#: The verifier looks at a square of this many times the box's side.
VERIFY_ZOOM = 1.5


@dataclass(frozen=True)
class ModelSpec:
    """One BlazeFace variant: file, input side and SSD anchor layout."""

    file: str
    side: int
    strides: tuple[int, ...]
    anchors_per_cell: tuple[int, ...]
    #: Smallest face side (input pixels) this variant finds reliably; smaller ones are left to tiles.
    min_face: float


MODELS = {
    "short": ModelSpec("face_detection_short_range.tflite", 128, (8, 16), (2, 6), 28.0),
}


@dataclass(frozen=True)
class Detection:
    """A face: box ``(x0, y0, x1, y1)``, score and the six keypoints ``(6, 2)``, in image pixels."""

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray

    @property
    def side(self) -> float:
        return max(self.box[2] - self.box[0], self.box[3] - self.box[1])

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """(image-left eye, image-right eye) centres."""
        return self.keypoints[0], self.keypoints[1]


def anchors(spec: ModelSpec, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Anchor centres ``(N, 2)`` in 0..1, in the model's output order, for an input of ``height`` x ``width``
    (default: the model's square side; the network is fully convolutional, so any multiple of 16 runs)."""
    height, width = height or spec.side, width or spec.side
    out = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell):
        rows, cols = height // stride, width // stride
        ys, xs = np.mgrid[0:rows, 0:cols]
        centres = np.stack([(xs.ravel() + 0.5) / cols, (ys.ravel() + 0.5) / rows], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou: float = 0.3):
    """MediaPipe's weighted NMS: each cluster (IoU > ``iou`` with its best box) is replaced by its
    score-weighted mean box and keypoints, with the best score.  Returns (boxes, scores, points)."""
    order = np.argsort(-scores)
    boxes, scores, points = boxes[order], scores[order], points[order]
    areas = np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])
    left = np.ones(len(boxes), bool)
    out_b, out_s, out_p = [], [], []
    for i in range(len(boxes)):
        if not left[i]:
            continue
        ix = np.clip(np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]), 0, None)
        inter = ix * iy
        overlap = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        members = left & (overlap > iou)
        members[i] = True
        w = scores[members][:, None]
        out_b.append((boxes[members] * w).sum(0) / w.sum())
        out_p.append((points[members] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
        left &= ~members
    if not out_b:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32)
    return np.array(out_b), np.array(out_s), np.array(out_p)


class BlazeFace:
    """A BlazeFace variant (``"short"``, or a :class:`ModelSpec` for a study) with a lazily created LiteRT interpreter."""

    def __init__(
        self,
        model: str | ModelSpec = "short",
        *,
        threads: int = 1,
        min_score: float = 0.5,
        tile_score: float = 0.6,
        confirm_above: float = 0.75,
        models_dir: Path = MODELS_DIR,
    ):
        if isinstance(model, str) and model not in MODELS:
            raise ValueError(f"unknown BlazeFace model {model!r}; expected one of {', '.join(MODELS)}")
        self.spec = MODELS[model] if isinstance(model, str) else model
        self.models_dir = Path(models_dir)
        self.model = model
        self.threads = threads
        self.min_score = min_score
        #: Tiles look at many more windows than the whole image: a stricter threshold keeps false positives down.
        self.tile_score = max(min_score, tile_score)
        #: A detection at least this sure stands even when the closer look (:meth:`refine`) loses it;
        #: weaker ones must be seen again there, which removes most false positives of the tiles.
        self.confirm_above = confirm_above
        self.anchors = anchors(self.spec)
        self._pid: int | None = None
        #: One interpreter per input shape (the model's square, and the pyramid's whole-image passes).
        self._interps: dict[tuple[int, int], Any] = {}
        self._abandoned: list[Any] = []
        self._lock = threading.Lock()

    def _interpreter(self, shape: tuple[int, int] | None = None) -> Any:
        """(interpreter, input index, regressors index, scores index, anchors) for an input of ``shape``."""
        shape = shape or (self.spec.side, self.spec.side)
        pid = os.getpid()
        if self._pid != pid:  # first use, or forked: build this process's own interpreters
            if self._interps:  # forked: never run the parent's interpreters' destructors here
                self._abandoned.append(self._interps)
            self._interps = {}
            self._lock = threading.Lock()
            self._pid = pid
        if shape not in self._interps:
            self._interps[shape] = self._build(shape)
        return self._interps[shape]

    def _build(self, shape: tuple[int, int]) -> Any:
        from ai_edge_litert.interpreter import Interpreter

        path = self.models_dir / self.spec.file
        if not path.is_file():
            raise RuntimeError(f"face detector weights {path} are missing")
        interp = Interpreter(model_path=str(path), num_threads=self.threads)
        if shape != (self.spec.side, self.spec.side):
            interp.resize_tensor_input(interp.get_input_details()[0]["index"], [1, shape[0], shape[1], 3])
        interp.allocate_tensors()
        outs = sorted(interp.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        anc = self.anchors if shape == (self.spec.side, self.spec.side) else anchors(self.spec, *shape)
        return (interp, interp.get_input_details()[0]["index"], outs[0]["index"], outs[1]["index"], anc)

    def load(self) -> BlazeFace:
        """Create the interpreter now (a worker child warming up); returns self."""
        self._interpreter()
        return self

    def _pass(self, patch: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One model pass on a grey uint8 input (sides multiples of 16): boxes ``(N, 4)``, scores and
        keypoints ``(N, 6, 2)`` in input pixels, after weighted NMS."""
        height, width = patch.shape
        x = np.repeat((patch.astype(np.float32) * (2.0 / 255.0) - 1.0)[None, :, :, None], 3, axis=3)
        interp, inp, reg_i, cls_i, anc = self._interpreter((height, width))
        with self._lock:
            interp.set_tensor(inp, x)
            interp.invoke()
            raw = interp.get_tensor(reg_i)[0].copy()
            logits = interp.get_tensor(cls_i)[0, :, 0].copy()
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        keep = scores >= min_score
        if not keep.any():
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 6, 2), np.float32)
        raw, scores, anc = raw[keep], scores[keep], anc[keep]
        size = np.array([width, height], np.float32)  # offsets are in input pixels
        centre = raw[:, 0:2] / size + anc
        half = raw[:, 2:4] / size / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1) * np.tile(size, 2)
        points = (raw[:, 4:16].reshape(-1, 6, 2) / size + anc[:, None, :]) * size
        return weighted_nms(boxes, scores, points)

    def run_square(
        self, gray: np.ndarray, x0: float, y0: float, size: float, min_score: float | None = None
    ) -> list[Detection]:
        """Detect in the square ``[x0, x0+size) x [y0, y0+size)`` of ``gray`` (zero-padded outside)."""
        side = self.spec.side
        k = side / size
        m = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]], np.float32)
        patch = cv2.warpAffine(
            gray,
            m,
            (side, side),
            flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        boxes, scores, points = self._pass(patch, self.min_score if min_score is None else min_score)
        return _detections(boxes / k, scores, points / k, x0, y0)

    def run_scaled(self, gray: np.ndarray, scale: float, min_score: float) -> list[Detection]:
        """Detect on the whole of ``gray`` resized by ``scale`` in one pass (input padded to multiples of 16)."""
        height, width = gray.shape[:2]
        rows, cols = max(16, math.ceil(height * scale / 16) * 16), max(16, math.ceil(width * scale / 16) * 16)
        m = np.array([[scale, 0, 0], [0, scale, 0]], np.float32)
        flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        patch = cv2.warpAffine(gray, m, (cols, rows), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        boxes, scores, points = self._pass(patch, min_score)
        return _detections(boxes / scale, scores, points / scale, 0.0, 0.0)

    def plan(self, height: int, width: int, min_face: float) -> list[tuple[float, float, float]]:
        """Squares ``(x0, y0, size)`` to search so every face of side >= ``min_face`` px is seen at
        >= the model's reliable size: the whole image, then levels of overlapping tiles, each half
        the previous size (the last just small enough), overlapping by 1.2x the smallest face the
        previous level finds, so a face too small for it lies whole inside some tile."""
        ratio = self.spec.min_face / self.spec.side
        size = float(max(height, width))
        squares = [((width - size) / 2, (height - size) / 2, size)]
        while min_face > 0 and size * ratio > min_face:
            previous = size * ratio
            size = max(size / 2, min_face / ratio)
            step = size - min(size / 2, 1.2 * previous)
            squares += [(x, y, size) for y in _starts(height, size, step) for x in _starts(width, size, step)]
        return squares

    def refine(self, gray: np.ndarray, face: Detection, zoom: float = 2.0, sure: bool = False) -> Detection | None:
        """``face`` detected again on a square ``zoom`` times its side around it, where it fills about half
        the model's input: a search pass sees most faces at 30-60 input pixels, where keypoints are a
        pixel or two off (eye-line angles off by 10-20 degrees); here they are 3-4x finer.  The
        closer look must see the face with at least ``min_score``; a first detection that it does not
        confirm is kept only if it scored ``confirm_above`` or more, or is ``sure`` (as large as the
        whole-image pass sees, where its threshold was measured on selfies), else dropped (None)."""
        x0, y0, x1, y1 = face.box
        size = zoom * face.side
        closer = self.run_square(gray, (x0 + x1 - size) / 2, (y0 + y1 - size) / 2, size, min(self.min_score, 0.3))
        closer = [d for d in closer if _intersection(np.array(d.box), np.array(face.box)) > 0.5 * _area(face.box)]
        best = max(closer, key=lambda d: d.score) if closer else None
        if best is not None and best.score >= self.min_score:
            return best
        if sure or face.score >= self.confirm_above:
            return best or face
        return None

    def detect(
        self,
        gray: np.ndarray,
        min_face: float = 0.0,
        max_faces: int = 64,
        fallback_face: float = 0.0,
        refine: bool = True,
    ) -> list[Detection]:
        """Faces in ``gray`` (uint8 HxW) down to ``min_face`` px (0: what the whole-image pass sees).

        When that finds nothing and ``fallback_face`` is smaller than what was searched, the tiles
        down to ``fallback_face`` are searched too (a face the whole image shows too small or too
        blurred often stands out on a closer tile)."""
        height, width = gray.shape[:2]
        squares = self.plan(height, width, min_face)
        whole = squares[0]
        found = [d for sq in squares for d in self.run_square(gray, *sq, None if sq == whole else self.tile_score)]
        if not found and fallback_face > 0:
            extra = [sq for sq in self.plan(height, width, fallback_face) if sq not in squares]
            found = [d for sq in extra for d in self.run_square(gray, *sq, self.tile_score)]
            squares = squares + extra
        if len(squares) > 1 and len(found) > 1:
            found = merge(found)
        found = sorted((d for d in found if d.side >= min_face), key=lambda d: -d.score)[:max_faces]
        if not refine:
            return found
        whole_image_sees = max(height, width) * self.spec.min_face / self.spec.side
        refined = (self.refine(gray, d, sure=d.side >= whole_image_sees) for d in found)
        return [d for d in refined if d is not None]

    def pyramid(self, height: int, width: int, min_face: float) -> list[float]:
        """Scales of the whole-image passes that see faces from ``min_face`` px up to what the 128x128
        whole-image pass sees: each level shows its smallest face at ``PYRAMID_FACE`` input pixels and
        covers one octave (its faces at 40-80 px, where the model scores them best)."""
        seen = max(height, width) * self.spec.min_face / self.spec.side
        scales, face = [], float(min_face)
        while 0 < face < seen:
            scales.append(PYRAMID_FACE / face)
            face *= 2.0
        return scales

    def detect_pyramid(
        self, gray: np.ndarray, min_face: float, verifier: FaceVerifier, max_faces: int = 64
    ) -> list[Detection]:
        """Every face of ``min_face`` px and up, for group photos: the whole-image pass plus one pass per
        :meth:`pyramid` level (no tiles: no face is cut by a tile edge), candidates at a low score
        (``PYRAMID_CANDIDATE``), then each candidate must score ``PYRAMID_KEEP`` and be confirmed by
        ``verifier`` (a second model that looks at the face closely); nested and overlapping boxes are
        resolved, and each face is looked at again for its keypoints (:meth:`refine`)."""
        height, width = gray.shape[:2]
        side = float(max(height, width))
        found = self.run_square(gray, (width - side) / 2, (height - side) / 2, side)
        for scale in self.pyramid(height, width, min_face):
            top = 2.0 * PYRAMID_FACE * 1.5 / scale  # larger faces belong to the next level
            found += [d for d in self.run_scaled(gray, scale, PYRAMID_CANDIDATE) if d.side <= top]
        found = [d for d in found if d.side >= PYRAMID_BOX * min_face]
        if len(found) > 1:  # clusters only: a confident box must not hide a face inside it before verification
            found = merge(found, inside=math.inf)
        faces = [d for d in found if d.score >= PYRAMID_KEEP_LOW and verifier.confirms(gray, d)]
        faces = _resolve_overlaps(faces)[:max_faces]
        return [self._keypoints_from_closer_look(gray, d) for d in faces]

    def _keypoints_from_closer_look(self, gray: np.ndarray, face: Detection) -> Detection:
        """``face`` (its box and score) with the closer look's finer keypoints when that look sees the same
        face (IoU >= 0.5); the box stays the confirmed one, which the verifier and overlap rules judged."""
        closer = self.refine(gray, face, sure=True)
        if closer is None or _iou(np.array(closer.box), np.array(face.box)) < 0.5:
            return face
        return Detection(face.box, face.score, closer.keypoints)


def _detections(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, x0: float, y0: float) -> list[Detection]:
    """Detections from pass outputs already in image scale, shifted by ``(x0, y0)``; empty boxes dropped."""
    shift = np.array([x0, y0, x0, y0])
    return [
        Detection(tuple(float(v) for v in b + shift), float(s), p + shift[:2])
        for b, s, p in zip(boxes, scores, points)
        if b[2] > b[0] and b[3] > b[1]
    ]


def _starts(length: int, size: float, step: float) -> list[float]:
    """Tile origins along one axis: evenly spread, first at 0 and last at ``length - size``
    (centred when the tile is longer than the axis)."""
    if size >= length:
        return [(length - size) / 2]
    count = math.ceil((length - size) / step) + 1
    return [float(v) for v in np.linspace(0.0, length - size, count)]


def merge(found: list[Detection], iou: float = 0.3, inside: float = 0.5) -> list[Detection]:
    """Detections of overlapping passes merged by weighted NMS; then a box that lies mostly (``inside``
    of its area) within a higher-scoring one is dropped: part of a face cut by a tile edge."""
    boxes = np.array([d.box for d in found], np.float64)
    scores = np.array([d.score for d in found], np.float64)
    points = np.stack([d.keypoints for d in found]).astype(np.float64)
    b, s, p = weighted_nms(boxes, scores, points, iou)
    kept: list[int] = []
    for i in range(len(b)):  # b is sorted by score, best first
        area = (b[i, 2] - b[i, 0]) * (b[i, 3] - b[i, 1])
        if all(_intersection(b[i], b[j]) < inside * area for j in kept):
            kept.append(i)
    return [Detection(tuple(float(v) for v in b[i]), float(s[i]), p[i]) for i in kept]


def _resolve_overlaps(faces: list[Detection], inside: float = 0.5, overlap: float = 0.3) -> list[Detection]:
    """Confirmed faces, best first, without a box lying mostly (``inside`` of its area) within another
    confirmed one (part of a face) or overlapping a better one by more than ``overlap`` of its area."""
    faces = sorted(faces, key=lambda d: -d.score)
    boxes = [np.array(d.box) for d in faces]
    nested = {
        i
        for i, a in enumerate(boxes)
        for j, b in enumerate(boxes)
        if i != j and _area(b) > _area(a) and _intersection(a, b) > inside * _area(a)
    }
    kept: list[int] = []
    for i in range(len(faces)):
        if i not in nested and all(_intersection(boxes[i], boxes[j]) <= overlap * _area(boxes[i]) for j in kept):
            kept.append(i)
    return [faces[i] for i in kept]


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    inter = _intersection(a, b)
    return inter / max(_area(a) + _area(b) - inter, 1e-9)


def _area(box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


class FaceVerifier:
    """Is there a face in this box?  MediaPipe's face-mesh model (``face_landmark.tflite``) has a
    face-presence output, made to tell a tracked face from background; here it confirms detector
    candidates.  The box's square, ``VERIFY_ZOOM`` times its side and turned so the eyes are level, is
    scaled to the model's 192x192 input (values -1..1).  The interpreter is built per process, as for
    :class:`BlazeFace`."""

    FILE = "face_landmark.tflite"
    SIDE = 192

    def __init__(self, *, threads: int = 1, models_dir: Path = MODELS_DIR):
        self.threads = threads
        self.models_dir = Path(models_dir)
        self._pid: int | None = None
        self._interp: Any = None
        self._abandoned: list[Any] = []
        self._lock = threading.Lock()

    def _interpreter(self) -> Any:
        pid = os.getpid()
        if self._pid != pid:
            from ai_edge_litert.interpreter import Interpreter

            path = self.models_dir / self.FILE
            if not path.is_file():
                raise RuntimeError(f"face verifier weights {path} are missing")
            if self._interp is not None:
                self._abandoned.append(self._interp)
            interp = Interpreter(model_path=str(path), num_threads=self.threads)
            interp.allocate_tensors()
            flag = next(d for d in interp.get_output_details() if int(np.prod(d["shape"])) == 1)
            self._interp = (interp, interp.get_input_details()[0]["index"], flag["index"])
            self._lock = threading.Lock()
            self._pid = pid
        return self._interp

    def logit(self, gray: np.ndarray, face: Detection) -> float:
        """The model's face-presence logit for ``face`` in ``gray``."""
        x0, y0, x1, y1 = face.box
        cx, cy, size = (x0 + x1) / 2, (y0 + y1) / 2, VERIFY_ZOOM * face.side
        (ax, ay), (bx, by) = face.eyes
        m = cv2.getRotationMatrix2D((cx, cy), math.degrees(math.atan2(by - ay, bx - ax)), self.SIDE / size)
        m[:, 2] += (self.SIDE / 2 - cx, self.SIDE / 2 - cy)
        crop = cv2.warpAffine(gray, m, (self.SIDE, self.SIDE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        x = np.repeat((crop.astype(np.float32) * (2.0 / 255.0) - 1.0)[None, :, :, None], 3, axis=3)
        interp, inp, out = self._interpreter()
        with self._lock:
            interp.set_tensor(inp, x)
            interp.invoke()
            return float(interp.get_tensor(out).ravel()[0])

    def confirms(self, gray: np.ndarray, face: Detection) -> bool:
        """The detection ``face`` stands: a fair detector score with a clear face-presence logit, or a
        weaker score with a very clear one (small faces score low on the detector, not here)."""
        if face.score < PYRAMID_KEEP_LOW:
            return False
        logit = self.logit(gray, face)
        return logit >= VERIFY_LOGIT_HIGH or (face.score >= PYRAMID_KEEP and logit >= VERIFY_LOGIT)


_local = threading.local()
#: Detectors of a parent process, kept (not destroyed) in a forked child: see ``BlazeFace._interpreter``.
_inherited: list[dict] = []


def _thread_models() -> dict[Any, Any]:
    """This process and thread's detectors (a forked child starts a new dict and keeps the parent's)."""
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:
        if getattr(_local, "detectors", None):
            _inherited.append(_local.detectors)
        _local.detectors, _local.pid = {}, pid
    return _local.detectors


def blazeface(model: str = "short", min_score: float = 0.5) -> BlazeFace:
    """One detector per model, process and thread (built lazily; never before a fork is used after it)."""
    models = _thread_models()
    key = (model, min_score)
    if key not in models:
        models[key] = BlazeFace(model, min_score=min_score)
    return models[key]


def verifier() -> FaceVerifier:
    """This process and thread's :class:`FaceVerifier` (built lazily, as :func:`blazeface`)."""
    models = _thread_models()
    if "verifier" not in models:
        models["verifier"] = FaceVerifier()
    return models["verifier"]
