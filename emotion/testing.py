"""Test and benchmark helpers for emotion analysis (dev-only: imports scikit-image lazily).

- sample images with real faces, built from scikit-image's bundled
  ``astronaut`` photo (no downloads): one face, several faces (side by side,
  or a group photo with known face boxes), none;
- :func:`test_model_dir`: the shipped model at ``settings.FEEDMOOD_MODEL_DIR``
  if it exists, otherwise a tiny artifact built ONCE per process with the ml
  CLIs (``ml.train`` + ``ml.export``) on synthetic data.

pytest fixtures built on these live in ``tests/test_emotion_*.py``.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from ml.card import CARD_NAME

PROJECT_DIR = Path(__file__).resolve().parent.parent

_build_lock = threading.Lock()
_built: dict[str, Path] = {}


# --- Images ------------------------------------------------------------------------------


#: The face in :func:`astronaut` as (x, y, w, h): where OpenCV's frontal-face cascades agree at full resolution.
ASTRONAUT_FACE = (175, 65, 98, 98)


def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo (Eileen Collins, public domain NASA image): RGB 512x512, one face."""
    from skimage import data

    return data.astronaut()


def encode(array: np.ndarray, fmt: str = "JPEG", **save: object) -> bytes:
    """Encode an RGB/grey uint8 array with Pillow."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}) | save)
    return buf.getvalue()


def one_face_image(width: int = 640, height: int = 480) -> np.ndarray:
    """RGB ``height x width`` photo with one face: the astronaut centred on a grey background."""
    import cv2

    canvas = np.full((height, width, 3), 200, np.uint8)
    side = min(width, height)
    photo = cv2.resize(astronaut(), (side, side), interpolation=cv2.INTER_AREA)
    x0, y0 = (width - side) // 2, (height - side) // 2
    canvas[y0 : y0 + side, x0 : x0 + side] = photo
    return canvas


def one_face_jpeg(width: int = 640, height: int = 480) -> bytes:
    return encode(one_face_image(width, height), "JPEG")


def multi_face_image(count: int = 3) -> np.ndarray:
    """``count`` face photos side by side (every other one mirrored): RGB 512 x 512*count."""
    photo = astronaut()
    tiles = [photo if i % 2 == 0 else photo[:, ::-1] for i in range(count)]
    return np.ascontiguousarray(np.concatenate(tiles, axis=1))


def one_face_box(width: int = 640, height: int = 480) -> tuple[int, int, int, int]:
    """Where the face is in :func:`one_face_image` ``(width, height)``: (x, y, w, h)."""
    side = min(width, height)
    k = side / 512
    x, y, w, h = ASTRONAUT_FACE
    return (round((width - side) // 2 + x * k), round((height - side) // 2 + y * k), round(w * k), round(h * k))


def group_image(
    count: int = 4, width: int = 640, height: int = 480, face: int = 80
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """A group photo: ``count`` astronaut heads (face side ``face`` px, every other one mirrored)
    in a grid on grey; returns the RGB image and the face boxes (x, y, w, h), in reading order."""
    import cv2

    x, y, w, h = ASTRONAUT_FACE
    pad = round(0.6 * w)
    head = astronaut()[y - min(pad, y) : y + h + pad, x - pad : x + w + pad]  # the face with hair, neck, shoulders
    top = min(pad, y)
    k = face / w
    tile = cv2.resize(head, (round(head.shape[1] * k), round(head.shape[0] * k)), interpolation=cv2.INTER_AREA)
    th, tw = tile.shape[:2]
    cols = min(count, max(1, width // tw))
    rows = -(-count // cols)
    if rows * th > height:
        raise ValueError(f"{count} faces of {face} px do not fit in {width}x{height}")
    canvas = np.full((height, width, 3), 200, np.uint8)
    gap_x, gap_y = (width - cols * tw) // (cols + 1), (height - rows * th) // (rows + 1)
    boxes = []
    for i in range(count):
        r, c = divmod(i, cols)
        ox, oy = gap_x + c * (tw + gap_x), gap_y + r * (th + gap_y)
        canvas[oy : oy + th, ox : ox + tw] = tile if i % 2 == 0 else tile[:, ::-1]
        fx = pad * k if i % 2 == 0 else tw - (pad + w) * k
        boxes.append((round(ox + fx), round(oy + top * k), face, face))
    return canvas, boxes


def no_face_image(width: int = 640, height: int = 480) -> np.ndarray:
    """A smooth colour gradient: certainly no face."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    r, g = np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width))
    return np.stack([r, g, (r + g) / 2], axis=-1).astype(np.uint8)


def rotated_with_exif(array: np.ndarray) -> bytes:
    """JPEG whose pixels are rotated 90 degrees and whose EXIF orientation (6) rotates them back upright."""
    stored = np.ascontiguousarray(np.rot90(array, k=1))  # 90 deg counter-clockwise
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    return encode(stored, "JPEG", exif=exif.tobytes())


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (a decompression-bomb header)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def fer_faces(data_dir: str | Path, count: int = 4, emotion_code: int = 3) -> np.ndarray | None:
    """The first ``count`` 48x48 FER-2013 faces with ``emotion_code`` (3 = happy), or ``None`` if absent."""
    import csv
    import gzip

    data_dir = Path(data_dir)
    path = next((p for p in (data_dir / "fer2013.csv.gz", data_dir / "fer2013.csv") if p.is_file()), None)
    if path is None:
        return None
    opener = gzip.open if path.suffix == ".gz" else open
    faces = []
    with opener(path, "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            if int(row["emotion"]) == emotion_code:
                faces.append(np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48))
                if len(faces) == count:
                    break
    return np.stack(faces) if faces else None


# --- Model artifact -----------------------------------------------------------------------


def shipped_model_dir() -> Path | None:
    """``settings.FEEDMOOD_MODEL_DIR`` if it holds an exported artifact."""
    from django.conf import settings

    directory = Path(settings.FEEDMOOD_MODEL_DIR)
    return directory if (directory / CARD_NAME).is_file() else None


def build_tiny_model(work_dir: Path) -> Path:
    """Train (1 epoch, width 8) and export a tiny 8-class FER+ artifact on synthetic data via the ml CLIs."""
    from ml import synthetic

    work_dir.mkdir(parents=True, exist_ok=True)
    data_dir = synthetic.write_fer_csv(work_dir / "data", n_train=192, n_public=64, seed=0)
    run_dir, out_dir = work_dir / "run", work_dir / "artifact"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    commands = [
        [sys.executable, "-m", "ml.train", "--model", "feednet", "--width", "8", "--labels", "ferplus-majority",
         "--epochs", "1", "--data", str(data_dir), "--out", str(run_dir), "--verbose", "0"],
        [sys.executable, "-m", "ml.export", "--checkpoint", str(run_dir / "best.keras"), "--out", str(out_dir),
         "--head", "ferplus", "--format", "tflite", "--data", str(data_dir), "--name", "tiny-synthetic-ferplus",
         "--bench-runs", "1", "--latency-runs", "2", "--calibration-faces", "32"],
    ]  # fmt: skip
    for command in commands:
        done = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command[1:4])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    if not (out_dir / CARD_NAME).is_file():
        raise RuntimeError(f"ml.export wrote no {CARD_NAME} into {out_dir}")
    return out_dir


def test_model_dir(scratch: Path) -> Path:
    """The model tests use: the shipped artifact, else a tiny one built once per process under ``scratch``."""
    shipped = shipped_model_dir()
    if shipped is not None:
        return shipped
    with _build_lock:
        if "tiny" not in _built:
            _built["tiny"] = build_tiny_model(scratch / "tiny-fer-model")
        return _built["tiny"]


test_model_dir.__test__ = False  # not a pytest test
