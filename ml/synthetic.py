"""Tiny synthetic FER data for tests, smoke runs and benchmarks (no real faces, no downloads).

Each class gets its own simple, learnable pattern (a bright blob at a class-specific spot on
noise), written in the exact on-disk formats FeedMood reads: Kaggle `fer2013.csv` and
Microsoft's `fer2013new.csv` (FER+ votes, joined by row position).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ml import labels as L

SIDE = 48


def faces(n: int, num_classes: int = 7, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, 48, 48), int class ids (n,)) with class-dependent blobs on noise."""
    rng = np.random.default_rng(seed)
    classes = rng.integers(0, num_classes, size=n)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    images = rng.normal(90, 25, size=(n, SIDE, SIDE))
    for c in range(num_classes):
        angle = 2 * np.pi * c / num_classes
        cy, cx = SIDE / 2 + 14 * np.sin(angle), SIDE / 2 + 14 * np.cos(angle)
        blob = 140 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 6.0**2))
        images[classes == c] += blob
    return np.clip(images, 0, 255).astype(np.uint8), classes


def write_fer_csv(
    directory: str | Path,
    n_train: int = 96,
    n_public: int = 48,
    n_private: int = 0,
    seed: int = 0,
    ferplus: bool = True,
) -> Path:
    """Write fer2013.csv (+ fer2013new.csv when `ferplus`) into `directory`; returns the directory.

    FER-2013 codes follow the Kaggle order; FER+ votes give 8 of 10 votes to the same emotion
    (mapped to FER+ columns), so FER+ majority agrees with the FER-2013 label; every 16th row
    gets a contempt majority and every 23rd row is voted not-a-face.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    n = n_train + n_public + n_private
    images, codes = faces(n, 7, seed)
    usage = ["Training"] * n_train + ["PublicTest"] * n_public + ["PrivateTest"] * n_private
    with open(directory / "fer2013.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for img, code, use in zip(images, codes, usage, strict=True):
            writer.writerow([int(code), " ".join(map(str, img.reshape(-1).tolist())), use])
    if ferplus:
        columns = [*L.FERPLUS_VOTE_COLUMNS, "unknown", "NF"]
        with open(directory / "fer2013new.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Usage", "Image name", *columns])
            for i, (code, use) in enumerate(zip(codes, usage, strict=True)):
                votes = [0] * 10
                name = L.FER2013_CODES[int(code)]
                if i % 23 == 22:
                    votes[columns.index("NF")] = 10
                else:
                    target = "contempt" if i % 16 == 15 else name
                    votes[columns.index(target)] = 8
                    votes[columns.index("neutral" if target != "neutral" else "sadness")] += 2
                writer.writerow([use, f"fer{i:07d}.png", *votes])
    return directory
