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


def anchors(spec: ModelSpec) -> np.ndarray:
    """Anchor centres ``(N, 2)`` in 0..1, in the model's output order."""
    out = []
    for stride, per_cell in zip(spec.strides, spec.anchors_per_cell):
        cells = spec.side // stride
        ys, xs = np.mgrid[0:cells, 0:cells]
        centres = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
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
        self._interp: Any = None
        self._abandoned: list[Any] = []
        self._lock = threading.Lock()

    def _interpreter(self) -> Any:
        pid = os.getpid()
        if self._pid != pid:  # first use, or forked: build this process's own interpreter
            from ai_edge_litert.interpreter import Interpreter

            path = self.models_dir / self.spec.file
            if not path.is_file():
                raise RuntimeError(f"face detector weights {path} are missing")
            if self._interp is not None:  # forked: never run the parent's interpreter's destructor here
                self._abandoned.append(self._interp)
            interp = Interpreter(model_path=str(path), num_threads=self.threads)
            interp.allocate_tensors()
            outs = sorted(interp.get_output_details(), key=lambda d: -int(d["shape"][-1]))
            self._interp = (interp, interp.get_input_details()[0]["index"], outs[0]["index"], outs[1]["index"])
            self._lock = threading.Lock()
            self._pid = pid
        return self._interp

    def load(self) -> BlazeFace:
        """Create the interpreter now (a worker child warming up); returns self."""
        self._interpreter()
        return self

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
        x = np.repeat((patch.astype(np.float32) * (2.0 / 255.0) - 1.0)[None, :, :, None], 3, axis=3)
        interp, inp, reg_i, cls_i = self._interpreter()
        with self._lock:
            interp.set_tensor(inp, x)
            interp.invoke()
            raw = interp.get_tensor(reg_i)[0].copy()
            logits = interp.get_tensor(cls_i)[0, :, 0].copy()
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -RAW_SCORE_LIMIT, RAW_SCORE_LIMIT)))
        keep = scores >= (self.min_score if min_score is None else min_score)
        if not keep.any():
            return []
        raw, scores, anc = raw[keep], scores[keep], self.anchors[keep]
        centre = raw[:, 0:2] / side + anc
        half = raw[:, 2:4] / side / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        points = raw[:, 4:16].reshape(-1, 6, 2) / side + anc[:, None, :]
        boxes, scores, points = weighted_nms(boxes, scores, points)
        return [
            Detection(tuple(float(v) for v in b * size + (x0, y0, x0, y0)), float(s), p * size + (x0, y0))
            for b, s, p in zip(boxes, scores, points)
            if b[2] > b[0] and b[3] > b[1]
        ]

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


def _area(box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _intersection(a: np.ndarray, b: np.ndarray) -> float:
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


_local = threading.local()
#: Detectors of a parent process, kept (not destroyed) in a forked child: see ``BlazeFace._interpreter``.
_inherited: list[dict] = []


def blazeface(model: str = "short", min_score: float = 0.5) -> BlazeFace:
    """One detector per model, process and thread (built lazily; never before a fork is used after it)."""
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:
        if getattr(_local, "detectors", None):
            _inherited.append(_local.detectors)
        _local.detectors, _local.pid = {}, pid
    key = (model, min_score)
    detector = _local.detectors.get(key)
    if detector is None:
        detector = _local.detectors[key] = BlazeFace(model, min_score=min_score)
    return detector
