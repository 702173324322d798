"""Photos composed from FER-2013 PublicTest faces, with exact ground truth (issue #25).

- :func:`selfies`: one PublicTest face per 640x480 JPEG, 160-260 px, tilted up to +-12
  degrees, on a scikit-image background, with its FER+ majority label and the exact
  square (centre, side, angle) where the original 48x48 crop was pasted;
- :func:`group_scenes`: 4-10 faces of 24-110 px (FER PublicTest, LFW, astronaut) per
  640x480 photo, plus photos with no face (false positives).

Faces are pasted with ``bench/face_detection.py``'s padding and feathering, so a detector
sees a face, not a square.  Deterministic for a seed; nothing is downloaded.
"""

from __future__ import annotations

import dataclasses
import io
import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import face_detection as fd  # noqa: E402  (bench/face_detection.py: backgrounds, patches)


@dataclasses.dataclass
class Photo:
    """A composed photo: JPEG bytes and its faces (``box`` x, y, w, h; ``square`` cx, cy, side, angle)."""

    name: str
    jpeg: bytes
    faces: list[dict]


def jpeg(grey: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(grey).convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def publictest(data_dir: Path, label_mode: str = "ferplus-majority") -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """PublicTest faces (N, 48, 48) and their label indices under ``label_mode``."""
    from ml.data import head_for, load_split

    split = load_split(data_dir, label_mode, "PublicTest")
    head = head_for(label_mode)
    return split.images, split.targets[head].argmax(axis=1), split.labels[head]


def paste(
    canvas: np.ndarray, face: np.ndarray, cx: float, cy: float, side: float, angle: float, rng: np.random.Generator
) -> None:
    """Paste ``face`` (48x48) so its crop square is centred at (cx, cy), ``side`` px, rotated ``angle``
    degrees (counter-clockwise, OpenCV's convention), with photometric jitter; in place."""
    patch = fd.tight_patch("fer", face)
    k = side / face.shape[0]
    px, py = patch.box[0] + face.shape[1] / 2, patch.box[1] + face.shape[0] / 2  # face centre in the patch
    m = cv2.getRotationMatrix2D((px, py), angle, k)
    m[:, 2] += (cx - px, cy - py)
    h, w = canvas.shape
    pix = cv2.warpAffine(
        patch.pixels.astype(np.float32), m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = cv2.warpAffine(patch.alpha.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    gamma = float(np.exp(rng.uniform(-0.25, 0.25)))
    pix = 255.0 * (np.clip(pix, 0, 255) / 255.0) ** gamma
    canvas[:] = alpha * pix + (1 - alpha) * canvas


def degrade(grey: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """A phone photo's troubles on a composed photo: defocus blur, dim or harsh light (gamma, contrast),
    sensor noise; returns the photo and the JPEG quality to save it at (35-75)."""
    out = grey.astype(np.float32)
    sigma = float(rng.uniform(0.0, 1.5))
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    gamma = float(np.exp(rng.uniform(-0.5, 0.5)))
    out = 255.0 * (np.clip(out, 0, 255) / 255.0) ** gamma
    mean = float(out.mean())
    out = (out - mean) * float(rng.uniform(0.55, 1.0)) + mean + float(rng.uniform(-20, 20))
    out += rng.normal(0.0, float(rng.uniform(1.0, 6.0)), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8), int(rng.integers(35, 76))


def selfies(
    data_dir: Path,
    count: int = 400,
    seed: int = 25,
    lo: float = 160,
    hi: float = 260,
    max_tilt: float = 12.0,
    degraded: bool = False,
) -> tuple[list[Photo], tuple[str, ...]]:
    """``count`` one-face 640x480 photos of random PublicTest faces (no repeats); ``degraded``: each photo
    then goes through :func:`degrade` (blur, light, noise, JPEG 35-75) instead of a clean JPEG at 90."""
    images, labels, names = publictest(data_dir)
    rng = np.random.default_rng(seed)
    bgs = fd.backgrounds()
    pick = rng.choice(len(images), size=min(count, len(images)), replace=False)
    photos = []
    for n, i in enumerate(pick):
        _bg, photo = bgs[int(rng.integers(len(bgs)))]
        canvas = fd._background(rng, photo, 640, 480)
        side = float(rng.uniform(lo, hi))
        angle = float(rng.uniform(-max_tilt, max_tilt))
        cx = float(rng.uniform(side * 0.75, 640 - side * 0.75))
        cy = float(rng.uniform(side * 0.7, 480 - side * 0.7))
        paste(canvas, images[i], cx, cy, side, angle, rng)
        grey = np.clip(canvas, 0, 255).astype(np.uint8)
        grey, quality = degrade(grey, rng) if degraded else (grey, 90)
        face = {
            "square": [cx, cy, side, angle],
            "box": [round(cx - side / 2), round(cy - side / 2), round(side), round(side)],
            "label": int(labels[i]),
            "row": int(i),
        }
        photos.append(Photo(f"selfie-{n:03d}", jpeg(grey, quality), [face]))
    return photos, names


#: Backgrounds that show a real face of their own (scikit-image's cameraman): no ground truth marks it, so a
#: detector that finds it would be charged a false positive.  Group scenes leave them out.
FACE_BACKGROUNDS = ("camera",)


def group_scenes(
    data_dir: Path | None, count: int = 120, empty: int = 60, seed: int = 2525, lo: float = 24, hi: float = 110
) -> list[Photo]:
    """``count`` 640x480 group photos with 4-10 faces of ``lo``-``hi`` px, then ``empty`` without faces
    (backgrounds without a face of their own)."""
    rng = np.random.default_rng(seed)
    sources = fd.face_sources(data_dir, seed)
    weights = {"astronaut": 0.2, "fer": 0.55, "lfw": 0.25} if "fer" in sources else {"astronaut": 0.5, "lfw": 0.5}
    bgs = [bg for bg in fd.backgrounds() if bg[0] not in FACE_BACKGROUNDS]
    photos = []
    for i in range(count + empty):
        n = int(rng.integers(4, 11)) if i < count else 0
        bg, grey, faces = fd.compose(rng, sources, weights, bgs, 640, 480, n, lo, hi)
        photos.append(Photo(f"{'group' if n else 'none'}-{i:03d}-{bg}", jpeg(grey), faces))
    return photos


def iou(a, b) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def match(truth: list, found: list, threshold: float = 0.3) -> tuple[list[int], int]:
    """Greedy best-IoU matching: for each truth box the index of its detection (-1: missed), and
    the number of unmatched detections (false positives)."""
    pairs = sorted(((iou(t, f), ti, fi) for ti, t in enumerate(truth) for fi, f in enumerate(found)), reverse=True)
    owner = [-1] * len(truth)
    used: set[int] = set()
    for score, ti, fi in pairs:
        if score < threshold:
            break
        if owner[ti] < 0 and fi not in used:
            owner[ti] = fi
            used.add(fi)
    return owner, len(found) - len(used)


def face_side_bucket(side: float, edges=(32, 48, 64, 96, 160)) -> str:
    """'<32', '<48', ... '>=160' for a face side in pixels."""
    for edge in edges:
        if side < edge:
            return f"<{edge}"
    return f">={edges[-1]}"


def rotation_deg(points: np.ndarray) -> float:
    """Angle (degrees) of the line from the first to the second point (image coordinates, y down)."""
    (x0, y0), (x1, y1) = points[:2]
    return math.degrees(math.atan2(y1 - y0, x1 - x0))
