"""Dataset loading: Kaggle FER-2013 CSV, Microsoft FER+ votes, and `<split>/<emotion>/*.png` folders.

Everything is returned as uint8 face crops of shape (N, 48, 48) plus float32 target
distributions (one-hot for hard labels) in the canonical label order of :mod:`ml.labels`.
Decoded CSVs are cached as .npz files so that a second load takes well under a second.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ml import labels as L

IMAGE_SIDE = 48
SPLITS = ("Training", "PublicTest", "PrivateTest")
LABEL_MODES = ("fer2013", "ferplus-majority", "ferplus-distribution")
FOLDER_SPLITS = {"Training": ("train",), "PublicTest": ("val", "valid", "validation", "test"), "PrivateTest": ("test",)}


class DataError(Exception):
    """A dataset file is missing or malformed; the message says what and where."""


@dataclass
class Split:
    """Images of one split with one or more target sets ("heads") and per-sample weights."""

    images: np.ndarray  # uint8 (N, 48, 48)
    targets: dict[str, np.ndarray]  # head -> float32 (N, K) distributions
    weights: dict[str, np.ndarray] = field(default_factory=dict)  # head -> float32 (N,) 0 = ignore
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)  # head -> class names

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, index: np.ndarray) -> Split:
        return Split(
            self.images[index],
            {k: v[index] for k, v in self.targets.items()},
            {k: v[index] for k, v in self.weights.items()},
            dict(self.labels),
        )


# --------------------------------------------------------------------------- FER-2013 CSV


def _cache_dir() -> Path:
    return Path(os.environ.get("FEEDMOOD_CACHE_DIR", Path.home() / ".cache" / "feedmood"))


def _cache_path(source: Path) -> Path:
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return _cache_dir() / f"{source.name}.{key}.npz"


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def find_fer2013_csv(data_dir: str | os.PathLike) -> Path:
    """Return the fer2013.csv(.gz) inside `data_dir` (or `data_dir` itself if it is the file)."""
    path = Path(data_dir)
    if path.is_file():
        return path
    for name in ("fer2013.csv.gz", "fer2013.csv"):
        if (path / name).is_file():
            return path / name
    raise DataError(f"no fer2013.csv or fer2013.csv.gz in {path} (does the directory exist?)")


def parse_fer2013_csv(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse a Kaggle-format CSV into (pixels uint8 (N,48,48), emotion codes int8 (N,), usage str (N,))."""
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or [h.strip() for h in header[:3]] != ["emotion", "pixels", "Usage"]:
                raise DataError(f"{path}: expected header 'emotion,pixels,Usage', found {header!r}")
            pixels, codes, usage = [], [], []
            for line_no, row in enumerate(reader, start=2):
                if len(row) != 3:
                    raise DataError(f"{path}:{line_no}: expected 3 columns, found {len(row)}")
                values = np.array(row[1].split(), dtype=np.int64)
                if values.size != IMAGE_SIDE * IMAGE_SIDE:
                    raise DataError(f"{path}:{line_no}: expected {IMAGE_SIDE * IMAGE_SIDE} pixels, found {values.size}")
                if values.min() < 0 or values.max() > 255:
                    raise DataError(f"{path}:{line_no}: pixel values must be in 0..255")
                code = int(row[0])
                if not 0 <= code < len(L.FER2013_CODES):
                    raise DataError(f"{path}:{line_no}: emotion code {code} is not in 0..6")
                if row[2] not in SPLITS:
                    raise DataError(f"{path}:{line_no}: unknown Usage {row[2]!r}; expected one of {SPLITS}")
                pixels.append(values.astype(np.uint8))
                codes.append(code)
                usage.append(row[2])
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    except (ValueError, OverflowError) as exc:
        raise DataError(f"{path}: malformed value: {exc}") from exc
    if not pixels:
        raise DataError(f"{path}: no data rows")
    images = np.stack(pixels).reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    return images, np.asarray(codes, dtype=np.int8), np.asarray(usage)


def read_fer2013(data_dir: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like :func:`parse_fer2013_csv` but cached as .npz (keyed by path, size and mtime)."""
    path = find_fer2013_csv(data_dir)
    cache = _cache_path(path)
    if cache.is_file():
        try:
            with np.load(cache) as npz:
                return npz["images"], npz["codes"], npz["usage"].astype(str)
        except (OSError, ValueError, KeyError):
            cache.unlink(missing_ok=True)
    images, codes, usage = parse_fer2013_csv(path)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, codes=codes, usage=usage.astype("U11"))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only home only costs speed
    return images, codes, usage


# --------------------------------------------------------------------------- FER+ votes


def read_ferplus_votes(path: str | os.PathLike, expected_rows: int | None = None) -> np.ndarray:
    """Read fer2013new.csv into int32 votes (N, 10): the 8 emotions in file order, unknown, NF."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"FER+ votes file {path} not found (expected Microsoft's fer2013new.csv)")
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            expected = ["Usage", "Image name", *L.FERPLUS_VOTE_COLUMNS, "unknown", "NF"]
            if header != expected:
                raise DataError(f"{path}: expected header {','.join(expected)}, found {','.join(header)}")
            votes = [[int(v) for v in row[2:12]] for row in reader if row]
    except ValueError as exc:
        raise DataError(f"{path}: malformed vote count: {exc}") from exc
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    array = np.asarray(votes, dtype=np.int32).reshape(-1, 10)
    if expected_rows is not None and len(array) != expected_rows:
        raise DataError(f"{path}: {len(array)} rows but fer2013 has {expected_rows}; FER+ joins by row position")
    return array


def ferplus_targets(votes: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """FER+ targets in canonical order and a validity mask, following Barsoum et al. 2016.

    Single votes are dropped as outliers. `majority` keeps rows whose top emotion has more
    than half of the remaining votes (one-hot); `distribution` keeps rows whose top choice is an
    emotion and returns the normalised vote distribution over the 8 emotions. Rows whose top
    choice is unknown or not-a-face are invalid in both modes.
    """
    counts = np.where(votes <= 1, 0, votes).astype(np.float32)
    total = counts.sum(axis=1)
    top = counts.argmax(axis=1)
    top_is_emotion = (top < 8) & (total > 0)
    order = [L.FERPLUS_VOTE_COLUMNS.index(name) for name in L.FERPLUS_LABELS]
    emotions = counts[:, :8][:, order]
    if mode == "majority":
        valid = top_is_emotion & (counts.max(axis=1) > 0.5 * total)
        targets = np.eye(8, dtype=np.float32)[emotions.argmax(axis=1)]
    elif mode == "distribution":
        emotion_total = emotions.sum(axis=1, keepdims=True)
        valid = top_is_emotion
        targets = np.divide(emotions, emotion_total, out=np.zeros_like(emotions), where=emotion_total > 0)
    else:
        raise ValueError(f"unknown FER+ mode {mode!r}; use majority or distribution")
    targets[~valid] = 0.0
    return targets.astype(np.float32), valid


def fer2013_targets(codes: np.ndarray) -> np.ndarray:
    """One-hot FER-2013 targets in canonical 7-class order."""
    order = np.array([L.FER2013_LABELS.index(name) for name in L.FER2013_CODES])
    return np.eye(len(L.FER2013_LABELS), dtype=np.float32)[order[codes.astype(int)]]


# --------------------------------------------------------------------------- public loaders


def head_for(label_mode: str) -> str:
    """The output head a label mode trains: `fer2013` or `ferplus`."""
    if label_mode not in LABEL_MODES:
        raise DataError(f"unknown label mode {label_mode!r}; choose from {', '.join(LABEL_MODES)}")
    return "fer2013" if label_mode == "fer2013" else "ferplus"


def load_split(data_dir: str | os.PathLike, label_modes: tuple[str, ...] | str, split: str) -> Split:
    """Load one split with targets for each label mode (several modes = a multi-task split).

    `data_dir` holds either fer2013.csv(.gz) (+ fer2013new.csv for FER+ modes) or class folders.
    Rows invalid for one head keep weight 0 for that head; rows invalid for every head are dropped.
    """
    modes = (label_modes,) if isinstance(label_modes, str) else tuple(label_modes)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose from {', '.join(SPLITS)}")
    heads = [head_for(mode) for mode in modes]
    if len(set(heads)) != len(heads):
        raise DataError(f"label modes {modes} train the same head twice")
    root = Path(data_dir)
    if root.is_dir() and not any((root / n).exists() for n in ("fer2013.csv", "fer2013.csv.gz")):
        if any(mode != "fer2013" and mode != "ferplus-majority" for mode in modes) or len(modes) > 1:
            raise DataError("class folders carry hard labels only: use --labels fer2013 or ferplus-majority")
        return load_folder_split(root, split, head=heads[0])

    images, codes, usage = read_fer2013(root)
    rows = np.flatnonzero(usage == split)
    if rows.size == 0:
        raise DataError(f"{find_fer2013_csv(root)} has no {split} rows")
    result = Split(images[rows], {}, {}, {})
    for mode, head in zip(modes, heads):
        if mode == "fer2013":
            targets, valid = fer2013_targets(codes[rows]), np.ones(rows.size, bool)
            result.labels[head] = L.FER2013_LABELS
        else:
            votes_path = (root if root.is_dir() else root.parent) / "fer2013new.csv"
            votes = read_ferplus_votes(votes_path, expected_rows=len(codes))[rows]
            targets, valid = ferplus_targets(votes, mode.split("-", 1)[1])
            result.labels[head] = L.FERPLUS_LABELS
        result.targets[head] = targets
        result.weights[head] = valid.astype(np.float32)
    keep = np.flatnonzero(np.any(np.stack(list(result.weights.values())) > 0, axis=0))
    return result.subset(keep)


def load_folder_split(root: Path, split: str, head: str) -> Split:
    """Load `root/<train|val|test>/<emotion>/*.(png|jpg|jpeg)` into a Split (images resized to 48x48)."""
    from PIL import Image, UnidentifiedImageError

    folder = next((root / name for name in FOLDER_SPLITS[split] if (root / name).is_dir()), None)
    if folder is None:
        raise DataError(f"{root}: no folder for split {split} (looked for {', '.join(FOLDER_SPLITS[split])})")
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        try:
            classes[sub] = L.canonical_name(sub.name)
        except ValueError as exc:
            raise DataError(f"{sub}: {exc}") from exc
    label_set = L.FERPLUS_LABELS if "contempt" in classes.values() or head == "ferplus" else L.FER2013_LABELS
    images, indices = [], []
    for sub, name in classes.items():
        for file in sorted(sub.iterdir()):
            if file.suffix.lower() not in (".png", ".jpg", ".jpeg"):
                continue
            try:
                with Image.open(file) as img:
                    gray = img.convert("L").resize((IMAGE_SIDE, IMAGE_SIDE), Image.BILINEAR)
            except (OSError, UnidentifiedImageError) as exc:
                raise DataError(f"{file}: not a readable image ({exc})") from exc
            images.append(np.asarray(gray, dtype=np.uint8))
            indices.append(label_set.index(name))
    if not images:
        raise DataError(f"{folder}: no .png/.jpg images found in its class folders")
    targets = np.eye(len(label_set), dtype=np.float32)[indices]
    head = "ferplus" if label_set == L.FERPLUS_LABELS else "fer2013"
    return Split(np.stack(images), {head: targets}, {head: np.ones(len(images), np.float32)}, {head: label_set})


def class_weights(targets: np.ndarray, valid: np.ndarray, kind: str = "balanced") -> np.ndarray:
    """Per-class weights from the argmax labels: `balanced` (n / (K * n_k)), `sqrt`, or `none`."""
    k = targets.shape[1]
    if kind == "none":
        return np.ones(k, np.float32)
    counts = np.bincount(targets[valid > 0].argmax(axis=1), minlength=k).astype(np.float64)
    weights = counts.sum() / (k * np.maximum(counts, 1.0))
    if kind == "sqrt":
        weights = np.sqrt(weights)
    elif kind != "balanced":
        raise ValueError(f"unknown class weighting {kind!r}; use balanced, sqrt or none")
    return weights.astype(np.float32)


# --------------------------------------------------------------------------- stratified subsets


def split_classes(split: Split) -> np.ndarray:
    """Each row's class in the split's first head (argmax of its target), -1 where that head has no label."""
    head = next(iter(split.targets))
    valid = split.weights[head] > 0 if head in split.weights else np.ones(len(split), bool)
    return np.where(valid, split.targets[head].argmax(axis=1), -1)


def stratified_indices(classes: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of `n` rows drawn at random so each class keeps its share of `classes` (largest remainder)."""
    n = min(int(n), len(classes))
    kinds, counts = np.unique(classes, return_counts=True)
    quota = counts * n / len(classes)
    take = np.floor(quota).astype(int)
    take[np.argsort(take - quota, kind="stable")[: n - take.sum()]] += 1  # the largest remainders
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(classes == kind), size=k, replace=False) for kind, k in zip(kinds, take)]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, int)


def stratified_subset(split: Split, n: int, seed: int) -> Split:
    """`n` rows of `split` with the class shares of the whole (for --limit smoke runs)."""
    return split.subset(stratified_indices(split_classes(split), n, seed))


def stratified_holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """(rest, held out): a stratified `fraction` of `split` carved out as validation data."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"validation fraction must be between 0 and 1, got {fraction}")
    held = stratified_indices(split_classes(split), round(fraction * len(split)), seed)
    if held.size == 0 or held.size == len(split):
        raise DataError(f"a {fraction:.0%} validation split of {len(split)} images leaves one side empty")
    rest = np.setdiff1d(np.arange(len(split)), held)
    return split.subset(rest), split.subset(held)
