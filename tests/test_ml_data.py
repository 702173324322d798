"""ml.data: Kaggle FER-2013 CSV, FER+ votes, class folders, caching and error messages (no Django, no TF)."""

from __future__ import annotations

import csv
import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml import data as D
from ml import labels as L
from ml.synthetic import faces, write_fer_csv

VOTE_HEADER = ["Usage", "Image name", *L.FERPLUS_VOTE_COLUMNS, "unknown", "NF"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FEEDMOOD_CACHE_DIR", str(tmp_path / "cache"))


def _csv_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def _write_rows(path: Path, rows: list[list]) -> Path:
    with open(path, "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def _votes(**counts: int) -> list[int]:
    columns = [*L.FERPLUS_VOTE_COLUMNS, "unknown", "NF"]
    row = [0] * 10
    for name, n in counts.items():
        row[columns.index(name)] = n
    return row


# --------------------------------------------------------------------------- FER-2013 CSV


def test_fer2013_csv_parsing_matches_file(tmp_path):
    root = write_fer_csv(tmp_path / "d", n_train=30, n_public=10, n_private=5)
    rows = _csv_rows(root / "fer2013.csv")[1:]
    train = D.load_split(root, "fer2013", "Training")
    assert len(train) == 30 and train.images.shape == (30, 48, 48) and train.images.dtype == np.uint8
    assert train.labels == {"fer2013": L.FER2013_LABELS}
    target = train.targets["fer2013"]
    assert target.dtype == np.float32 and target.shape == (30, 7) and np.all(target.sum(axis=1) == 1)
    for i, (code, pixels, usage) in enumerate(rows[:30]):
        assert usage == "Training"
        assert np.array_equal(train.images[i].reshape(-1), np.array(pixels.split(), dtype=np.uint8))
        assert L.FER2013_LABELS[target[i].argmax()] == L.FER2013_CODES[int(code)]
    assert len(D.load_split(root, "fer2013", "PublicTest")) == 10
    assert len(D.load_split(root, "fer2013", "PrivateTest")) == 5


def test_gzipped_csv_is_read(tmp_path):
    root = write_fer_csv(tmp_path / "d", n_train=8, n_public=4, ferplus=False)
    with open(root / "fer2013.csv", "rb") as src, gzip.open(root / "fer2013.csv.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (root / "fer2013.csv").unlink()
    assert len(D.load_split(root, "fer2013", "Training")) == 8


def test_decoded_csv_is_cached(tmp_path, monkeypatch):
    root = write_fer_csv(tmp_path / "d", n_train=8, n_public=4, ferplus=False)
    first = D.read_fer2013(root)
    cached = list((tmp_path / "cache").glob("fer2013.csv.*.npz"))
    assert len(cached) == 1

    def boom(path):
        raise AssertionError("the CSV was parsed again instead of using the cache")

    monkeypatch.setattr(D, "parse_fer2013_csv", boom)
    second = D.read_fer2013(root)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)


def test_cache_is_invalidated_when_the_file_changes(tmp_path):
    root = write_fer_csv(tmp_path / "d", n_train=8, n_public=4, ferplus=False)
    D.read_fer2013(root)
    write_fer_csv(root, n_train=6, n_public=2, ferplus=False, seed=1)
    images, _, usage = D.read_fer2013(root)
    assert len(images) == 8 and list(usage).count("Training") == 6


# --------------------------------------------------------------------------- FER+ rules


def test_ferplus_majority_and_distribution_rules():
    votes = np.array(
        [
            _votes(neutral=6, happiness=3, surprise=1),  # single vote dropped: 6/9 > half -> neutral
            _votes(neutral=5, happiness=5),  # tie 5/10 is not a majority
            _votes(unknown=6, neutral=4),  # top choice unknown -> invalid
            _votes(NF=10),  # not a face -> invalid
            _votes(contempt=4, anger=3, sadness=2, fear=1),  # 4/9 no majority; fear's single vote dropped
            _votes(happiness=7, unknown=3),  # 7/10 majority; distribution over emotions only
            _votes(
                anger=1, disgust=1, fear=1, sadness=1, neutral=1, happiness=1, surprise=1, contempt=1, unknown=1, NF=1
            ),  # every vote single -> nothing left
        ]
    )
    idx = {name: L.FERPLUS_LABELS.index(name) for name in L.FERPLUS_LABELS}

    maj, maj_ok = D.ferplus_targets(votes, "majority")
    assert maj_ok.tolist() == [True, False, False, False, False, True, False]
    assert maj[0].argmax() == idx["neutral"] and maj[0].sum() == 1
    assert maj[5].argmax() == idx["happiness"]
    assert np.all(maj[~maj_ok] == 0)

    dist, dist_ok = D.ferplus_targets(votes, "distribution")
    assert dist_ok.tolist() == [True, True, False, False, True, True, False]
    assert dist[0][idx["neutral"]] == pytest.approx(6 / 9) and dist[0][idx["happiness"]] == pytest.approx(3 / 9)
    assert dist[0][idx["surprise"]] == 0.0
    assert dist[1][idx["neutral"]] == pytest.approx(0.5) and dist[1][idx["happiness"]] == pytest.approx(0.5)
    assert dist[4][idx["contempt"]] == pytest.approx(4 / 9) and dist[4][idx["fear"]] == 0.0
    assert dist[5][idx["happiness"]] == pytest.approx(1.0)
    assert np.allclose(dist[dist_ok].sum(axis=1), 1.0) and np.all(dist[~dist_ok] == 0)

    with pytest.raises(ValueError, match="unknown FER\\+ mode"):
        D.ferplus_targets(votes, "plurality")


def test_ferplus_load_split_drops_not_a_face_and_keeps_contempt(tmp_path):
    root = write_fer_csv(tmp_path / "d", n_train=64, n_public=16)
    maj = D.load_split(root, "ferplus-majority", "Training")
    nf_rows = [i for i in range(64) if i % 23 == 22]
    assert len(maj) == 64 - len(nf_rows)
    assert maj.labels["ferplus"] == L.FERPLUS_LABELS and maj.targets["ferplus"].shape[1] == 8
    assert maj.targets["ferplus"][:, L.FERPLUS_LABELS.index("contempt")].sum() > 0
    dist = D.load_split(root, "ferplus-distribution", "Training")
    assert np.allclose(dist.targets["ferplus"].sum(axis=1), 1.0)
    # multi-task: not-a-face rows stay for the fer2013 head with ferplus weight 0
    both = D.load_split(root, ("fer2013", "ferplus-distribution"), "Training")
    assert len(both) == 64 and set(both.targets) == {"fer2013", "ferplus"}
    assert both.weights["ferplus"][nf_rows].sum() == 0 and both.weights["fer2013"].sum() == 64


def test_same_head_twice_is_rejected(tmp_path):
    root = write_fer_csv(tmp_path / "d", n_train=8, n_public=4)
    with pytest.raises(D.DataError, match="same head twice"):
        D.load_split(root, ("ferplus-majority", "ferplus-distribution"), "Training")


# --------------------------------------------------------------------------- malformed input


def test_missing_directory(tmp_path):
    with pytest.raises(D.DataError, match="no fer2013.csv"):
        D.load_split(tmp_path / "nope", "fer2013", "Training")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda rows: [["label", "pixels", "Usage"], *rows[1:]], "expected header 'emotion,pixels,Usage'"),
        (
            lambda rows: [rows[0], [rows[1][0], " ".join(rows[1][1].split()[:100]), rows[1][2]], *rows[2:]],
            "expected 2304 pixels, found 100",
        ),
        (lambda rows: [rows[0], ["9", rows[1][1], rows[1][2]], *rows[2:]], "emotion code 9"),
        (lambda rows: [rows[0], [rows[1][0], rows[1][1], "Validation"], *rows[2:]], "unknown Usage 'Validation'"),
        (lambda rows: [rows[0], [rows[1][0], rows[1][1]], *rows[2:]], "expected 3 columns, found 2"),
        (lambda rows: [rows[0], ["x", rows[1][1], rows[1][2]], *rows[2:]], "malformed value"),
        (lambda rows: [rows[0], [rows[1][0], rows[1][1].replace("1", "999", 1), rows[1][2]], *rows[2:]], "0..255"),
        (lambda rows: rows[:1], "no data rows"),
    ],
)
def test_malformed_fer2013_csv(tmp_path, mutate, message):
    root = write_fer_csv(tmp_path / "d", n_train=4, n_public=2, ferplus=False)
    _write_rows(root / "fer2013.csv", mutate(_csv_rows(root / "fer2013.csv")))
    with pytest.raises(
        D.DataError, match=message.replace("(", "\\(").replace(")", "\\)").replace("+", "\\+").replace(".", "\\.")
    ) as info:
        D.load_split(root, "fer2013", "Training")
    assert "fer2013.csv" in str(info.value)


def test_malformed_ferplus_votes(tmp_path):
    root = write_fer_csv(tmp_path / "d", n_train=4, n_public=2)
    rows = _csv_rows(root / "fer2013new.csv")
    _write_rows(root / "fer2013new.csv", [VOTE_HEADER[:-1], *rows[1:]])
    with pytest.raises(D.DataError, match="expected header"):
        D.load_split(root, "ferplus-majority", "Training")
    _write_rows(root / "fer2013new.csv", rows[:-1])
    with pytest.raises(D.DataError, match="5 rows but fer2013 has 6"):
        D.load_split(root, "ferplus-majority", "Training")
    _write_rows(root / "fer2013new.csv", [rows[0], [*rows[1][:2], "many", *rows[1][3:]], *rows[2:]])
    with pytest.raises(D.DataError, match="malformed vote count"):
        D.load_split(root, "ferplus-majority", "Training")
    (root / "fer2013new.csv").unlink()
    with pytest.raises(D.DataError, match="FER\\+ votes file .* not found"):
        D.load_split(root, "ferplus-majority", "Training")


def test_unknown_split_and_label_mode(tmp_path):
    root = write_fer_csv(tmp_path / "d", n_train=4, n_public=2)
    with pytest.raises(D.DataError, match="unknown split"):
        D.load_split(root, "fer2013", "Validation")
    with pytest.raises(D.DataError, match="unknown label mode"):
        D.load_split(root, "ferplus", "Training")
    with pytest.raises(D.DataError, match="no PrivateTest rows"):
        D.load_split(root, "fer2013", "PrivateTest")


# --------------------------------------------------------------------------- class folders


def _save_png(path: Path, array: np.ndarray, mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode if array.ndim == 2 else "RGB").save(path)


def test_class_folders_case_insensitive_and_resized(tmp_path):
    imgs, _ = faces(6, seed=3)
    _save_png(tmp_path / "train" / "Happy" / "0.png", imgs[0])
    _save_png(tmp_path / "train" / "HAPPY" / "1.png", imgs[1])  # alias spelled differently, same class
    _save_png(tmp_path / "train" / "angry" / "2.png", imgs[2])
    _save_png(
        tmp_path / "train" / "Surprised" / "3.png", np.stack([np.kron(imgs[3], np.ones((2, 2), np.uint8))] * 3, axis=-1)
    )
    (tmp_path / "train" / "angry" / "notes.txt").write_text("ignored")
    _save_png(tmp_path / "val" / "Sad" / "4.png", imgs[4])

    train = D.load_split(tmp_path, "fer2013", "Training")
    assert train.images.shape == (4, 48, 48) and train.images.dtype == np.uint8
    names = [L.FER2013_LABELS[i] for i in train.targets["fer2013"].argmax(axis=1)]
    assert sorted(names) == ["anger", "happiness", "happiness", "surprise"]
    val = D.load_split(tmp_path, "fer2013", "PublicTest")
    assert L.FER2013_LABELS[val.targets["fer2013"][0].argmax()] == "sadness"
    with pytest.raises(D.DataError, match="hard labels only"):
        D.load_split(tmp_path, "ferplus-distribution", "Training")


def test_class_folders_with_contempt_use_ferplus_labels(tmp_path):
    imgs, _ = faces(2, seed=4)
    _save_png(tmp_path / "train" / "contempt" / "0.png", imgs[0])
    _save_png(tmp_path / "train" / "neutral" / "1.png", imgs[1])
    split = D.load_split(tmp_path, "ferplus-majority", "Training")
    assert split.labels == {"ferplus": L.FERPLUS_LABELS}


def test_class_folders_errors(tmp_path):
    imgs, _ = faces(1, seed=5)
    with pytest.raises(D.DataError, match="no folder for split Training"):
        D.load_split(tmp_path, "fer2013", "Training")
    _save_png(tmp_path / "train" / "bored" / "0.png", imgs[0])
    with pytest.raises(D.DataError, match="unknown emotion class name 'bored'"):
        D.load_split(tmp_path, "fer2013", "Training")
    shutil.rmtree(tmp_path / "train" / "bored")
    (tmp_path / "train" / "happy").mkdir(parents=True)
    (tmp_path / "train" / "happy" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(D.DataError, match="not a readable image"):
        D.load_split(tmp_path, "fer2013", "Training")
    (tmp_path / "train" / "happy" / "broken.png").unlink()
    with pytest.raises(D.DataError, match="no .png/.jpg images"):
        D.load_split(tmp_path, "fer2013", "Training")


def test_class_weights():
    targets = np.eye(3, dtype=np.float32)[[0, 0, 0, 1, 2, 2]]
    valid = np.ones(6, np.float32)
    assert np.allclose(D.class_weights(targets, valid, "balanced"), [6 / 9, 6 / 3, 6 / 6])
    assert np.allclose(D.class_weights(targets, valid, "sqrt"), np.sqrt([6 / 9, 6 / 3, 6 / 6]))
    assert np.allclose(D.class_weights(targets, valid, "none"), 1.0)
    with pytest.raises(ValueError, match="unknown class weighting"):
        D.class_weights(targets, valid, "inverse")


def test_distillation_blend_keeps_invalid_rows_and_sums_to_one():
    from ml.distill import DistillError, agreement, blend_targets, parse_teacher

    targets = np.array([[1, 0, 0], [0, 0.5, 0.5], [0, 0, 0]], np.float32)
    valid = np.array([True, True, False])
    teacher = np.array([[0.2, 0.8, 0.0], [0.0, 1.0, 0.0], [0.3, 0.3, 0.4]], np.float32)
    mixed = blend_targets(targets, valid, teacher, 0.25)
    np.testing.assert_allclose(mixed[0], [0.8, 0.2, 0.0])
    np.testing.assert_allclose(mixed[1], [0.0, 0.625, 0.375])
    np.testing.assert_array_equal(mixed[2], [0, 0, 0])  # an invalid row stays ignored (weight 0, target 0)
    np.testing.assert_allclose(mixed[:2].sum(axis=1), 1.0)
    np.testing.assert_array_equal(blend_targets(targets, valid, teacher, 0.0), targets)
    assert agreement(targets, valid, teacher) == 0.5  # row 0 disagrees (0 vs 1); row 1 ties -> argmax 1 == 1
    assert parse_teacher(" ferplus = ml/artifacts/x ") == ("ferplus", "ml/artifacts/x")
    with pytest.raises(ValueError, match="HEAD=ARTIFACT_DIR"):
        parse_teacher("=x")
    with pytest.raises(DistillError, match="within"):
        blend_targets(targets, valid, teacher, -0.1)
    with pytest.raises(DistillError, match="shape"):
        blend_targets(targets, valid, teacher[:, :2], 0.5)


def test_online_teacher_rewrites_the_targets_of_each_augmented_batch(tmp_path):
    """The pipeline hands the augmented pixels to the teacher; its blend replaces valid rows only."""
    from ml.distill import OnlineTeacher
    from ml.pipeline import make_dataset

    class Recorder(OnlineTeacher):
        def __init__(self):  # no artifact: this teacher answers 1.0 on the class of each image's mean pixel
            self.head, self.alpha, self.seen = "ferplus", 0.5, []

        def blend(self, images, targets, weights):
            self.seen.append(images.copy())
            probs = np.eye(targets.shape[1], dtype=np.float32)[(images.mean(axis=(1, 2, 3)) > 127).astype(int)]
            return np.where((weights > 0)[:, None], 0.5 * probs + 0.5 * targets, targets).astype(np.float32)

    rng = np.random.default_rng(0)  # textured (a warp of a flat image is the same image): dark rows, then bright
    images = np.concatenate([rng.integers(0, 60, (4, 48, 48)), rng.integers(196, 256, (4, 48, 48))]).astype(np.uint8)
    targets = {
        "fer2013": np.eye(7, dtype=np.float32)[np.zeros(8, int)],
        "ferplus": np.eye(8, dtype=np.float32)[np.full(8, 2)],
    }
    weights = {"fer2013": np.ones(8, np.float32), "ferplus": np.array([1, 1, 1, 0, 1, 1, 1, 0], np.float32)}
    teacher = Recorder()
    ds = make_dataset(images, targets, weights, 8, shuffle=False, augment=True, single_output=False, teachers=[teacher])
    x, y, _ = next(iter(ds))
    np.testing.assert_array_equal(teacher.seen[0], x.numpy())  # the teacher saw the augmented batch itself
    assert not np.allclose(x.numpy()[..., 0], images)  # ... which differs from the stored images
    ferplus = y["ferplus"].numpy()
    np.testing.assert_allclose(ferplus[0], 0.5 * np.eye(8)[0] + 0.5 * np.eye(8)[2])
    np.testing.assert_allclose(ferplus[4], 0.5 * np.eye(8)[1] + 0.5 * np.eye(8)[2])
    np.testing.assert_array_equal(ferplus[[3, 7]], targets["ferplus"][[3, 7]])  # weight 0: untouched
    np.testing.assert_array_equal(y["fer2013"].numpy(), targets["fer2013"])  # no teacher for this head
