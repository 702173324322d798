"""The seeds' workflow in ml.train / ml.evaluate: an exactly resumable data stream, the `resnet` alias, `.h5`
checkpoints, stratified --limit, --val-split, the label modes in train_meta.json and the end-of-training report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml import data as D
from ml import labels as L
from ml.synthetic import faces, write_fer_csv
from tests.test_ml_cli import assert_clean_error, env, run  # noqa: F401  (env is a fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
TINY = ("--model", "feednet", "--width", 4, "--batch-size", 16, "--verbose", 0)


def class_folders(root: Path, names: tuple[str, ...], per_class: int) -> Path:
    """root/train/<name>/*.png, `per_class` synthetic faces each, the files in class order."""
    images, _ = faces(per_class * len(names), len(names), seed=5)
    for k, name in enumerate(names):
        (root / "train" / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(images[k * per_class + i]).save(root / "train" / name / f"{i:03d}.png")
    return root


def log_rows(run_dir: Path) -> list[dict[str, float]]:
    with open(run_dir / "log.csv", newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


# --------------------------------------------------------------------------- in process


def test_a_resumed_stream_sees_the_batches_of_the_uninterrupted_one():
    from ml.pipeline import make_dataset

    images, cls = faces(40, 7, seed=4)
    targets, weights = {"fer2013": np.eye(7, dtype=np.float32)[cls]}, {"fer2013": np.ones(40, np.float32)}

    def batches(first: int) -> list[tuple[np.ndarray, ...]]:
        ds = make_dataset(
            images,
            targets,
            weights,
            16,
            shuffle=True,
            augment=True,
            erase=0.5,
            mixup=0.2,
            cutmix=1.0,
            mix_prob=0.5,
            seed=3,
            epochs=(first, 3),
        )
        return [tuple(np.asarray(t) for t in batch) for batch in ds]

    whole, resumed = batches(0), batches(1)
    assert len(whole) == 9 and len(resumed) == 6  # 3 batches an epoch
    for a, b in zip(whole[3:], resumed):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(whole[0][0], whole[3][0])  # each epoch is shuffled and augmented anew
    assert not np.array_equal(whole[0][1], whole[3][1])


def test_resnet_is_an_alias_of_resnet50():
    from ml.train import parse_args

    assert parse_args(["--model", "resnet"]).model == "resnet50"
    assert parse_args(["--model", "resnet50v2"]).model == "resnet50v2"


def test_the_reference_cnn_output_depends_on_the_face_at_initialisation():
    """Without BatchNorm, Glorot-initialised ReLU layers shrink the signal so much that the untrained CNN gives
    every face the same softmax (spread ~3e-4) and training sat at the majority class; He kernels keep it (~2e-2)."""
    import keras

    from ml.models.cnn import build_cnn

    keras.utils.set_random_seed(0)
    x = faces(64, 8, seed=0)[0][..., None].astype("float32")
    probs = np.asarray(build_cnn((48, 48, 1), 8)(x, training=False))
    assert probs.std(axis=0).mean() > 5e-3


def test_stratified_limit_keeps_every_class_of_class_ordered_folders(tmp_path):
    root = class_folders(tmp_path / "d", ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"), 10)
    split = D.load_split(root, "fer2013", "Training")
    assert split.targets["fer2013"][:10].argmax(axis=1).tolist() == [0] * 10  # the files come in class order
    small = D.stratified_subset(split, 21, seed=0)
    assert np.bincount(small.targets["fer2013"].argmax(axis=1), minlength=7).tolist() == [3] * 7
    uneven = split.subset(np.r_[0:10, 10:12, 20:30])  # 10 anger, 2 disgust, 10 fear
    counts = np.bincount(D.stratified_subset(uneven, 11, seed=0).targets["fer2013"].argmax(axis=1), minlength=7)
    assert counts[:3].tolist() == [5, 1, 5]


def test_stratified_holdout_is_disjoint_and_keeps_the_shares(tmp_path):
    split = D.load_split(write_fer_csv(tmp_path / "d", n_train=140, n_public=7), "fer2013", "Training")
    rest, held = D.stratified_holdout(split, 0.2, seed=1)
    assert len(held) == 28 and len(rest) == 112
    whole = np.bincount(split.targets["fer2013"].argmax(axis=1), minlength=7)
    shares = np.bincount(held.targets["fer2013"].argmax(axis=1), minlength=7)
    assert np.all(np.abs(shares - 0.2 * whole) < 1)
    seen = {img.tobytes() for img in rest.images}
    assert not any(img.tobytes() in seen for img in held.images)
    with pytest.raises(D.DataError, match="leaves one side empty"):
        D.stratified_holdout(split.subset(np.arange(2)), 0.2, seed=1)


def test_evaluate_loads_h5_checkpoints_like_keras_ones(tmp_path):
    from ml import models as M
    from ml.checkpoints import load_checkpoint
    from ml.evaluate import main

    data = write_fer_csv(tmp_path / "d", n_train=8, n_public=40)
    model = M.build_model("feednet", (48, 48, 1), 7, width=4)
    model.save(tmp_path / "cnn_best.keras")
    model.save(tmp_path / "cnn_best.h5")
    reports = {}
    for name in ("cnn_best.keras", "cnn_best.h5"):
        assert (
            main(["--checkpoint", str(tmp_path / name), "--data", str(data), "--json", str(tmp_path / f"{name}.json")])
            == 0
        )
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())["metrics"]
    assert reports["cnn_best.h5"]["confusion_matrix"] == reports["cnn_best.keras"]["confusion_matrix"]
    assert reports["cnn_best.h5"]["loss"] == pytest.approx(reports["cnn_best.keras"]["loss"], rel=1e-5)
    model.save_weights(tmp_path / "only.weights.h5")
    with pytest.raises(ValueError, match="whole model saved by model.save, not weights only"):
        load_checkpoint(tmp_path / "only.weights.h5")


# --------------------------------------------------------------------------- the real CLI


@pytest.mark.slow
@pytest.mark.timeout(600)  # three to four real training processes; 2 shared cores
def test_stopped_and_resumed_training_equals_the_uninterrupted_run(env, tmp_path):
    data = write_fer_csv(tmp_path / "d", n_train=96, n_public=32)
    common = (*TINY, "--epochs", 3, "--data", data, "--mixup", 0.2, "--random-erasing", 0.5)
    whole = run(env, "ml.train", *common, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    first = run(env, "ml.train", *common, "--out", tmp_path / "parts", "--stop-after", 1)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(log_rows(tmp_path / "parts")) == 1
    second = run(env, "ml.train", *common, "--out", tmp_path / "parts", "--resume")
    assert second.returncode == 0, second.stderr[-3000:]
    uninterrupted, resumed = log_rows(tmp_path / "whole"), log_rows(tmp_path / "parts")
    assert [row["epoch"] for row in resumed] == [0, 1, 2]
    for a, b in zip(uninterrupted, resumed):  # same batches, same dropout masks: the same training
        for key in ("accuracy", "loss", "val_accuracy", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), (a["epoch"], key)


@pytest.mark.slow
@pytest.mark.timeout(600)  # three to four real training processes; 2 shared cores
def test_train_only_folders_val_split_limit_and_label_modes(env, tmp_path):
    names = ("angry", "contempt", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    root = class_folders(tmp_path / "d", names, 8)
    common = (*TINY, "--epochs", 1, "--data", root)
    refused = run(env, "ml.train", *common, "--out", tmp_path / "refused")
    assert_clean_error(refused, 1, "pass --val-split 0.1")

    out = tmp_path / "run"
    done = run(env, "ml.train", *common, "--out", out, "--val-split", 0.25, "--limit", 24)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((out / "train_meta.json").read_text())
    assert meta["label_modes"] == ["ferplus-majority"] and list(meta["heads"]) == ["ferplus"]
    assert "ferplus-majority" in done.stderr  # the note that the folders chose the 8-class head
    assert meta["data"]["val_split"].startswith("Training: a stratified 0.25 share")
    counts = meta["data"]["class_counts"]
    assert counts["train"]["ferplus"] == dict.fromkeys(L.FERPLUS_LABELS, 3)  # 24 of 48, every class
    assert counts["val"]["ferplus"] == dict.fromkeys(L.FERPLUS_LABELS, 2)  # the 16 held out, every class

    report = json.loads((out / "val_metrics.json").read_text())
    metrics = report["metrics"]["ferplus"]
    assert report["checkpoint"] == "best.keras" and metrics["n"] == 16
    assert np.array(metrics["confusion_matrix"]).shape == (8, 8) and np.array(metrics["confusion_matrix"]).sum() == 16
    assert set(metrics["per_class"]) == set(L.FERPLUS_LABELS)
    assert meta["val_metrics"]["ferplus"]["accuracy"] == metrics["accuracy"]
    printed = done.stdout[done.stdout.index("end of training: best.keras, head ferplus") :]
    assert f"accuracy={100 * metrics['accuracy']:.2f}%" in printed and "weighted-F1=" in printed
    assert "macro avg" in printed and "precision" in printed and "confusion matrix" in printed


@pytest.mark.slow
@pytest.mark.timeout(600)  # three to four real training processes; 2 shared cores
def test_resnet_alias_trains_resnet50_and_says_fine_tuning_is_skipped(env, tmp_path):
    from ml.checkpoints import load_checkpoint

    data = write_fer_csv(tmp_path / "d", n_train=16, n_public=8)
    common = ("--model", "resnet", "--epochs", 1, "--base-size", 32, "--batch-size", 8, "--data", data, "--verbose", 0)
    done = run(env, "ml.train", *common, "--freeze-epochs", 1, "--out", tmp_path / "frozen")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (
        "--epochs 1 <= --freeze-epochs 1: the resnet50 base stays frozen and no fine-tuning phase runs" in done.stderr
    )
    meta = json.loads((tmp_path / "frozen" / "train_meta.json").read_text())
    assert meta["model"] == "resnet50" and meta["epochs_run"] == 1

    whole = run(env, "ml.train", *common, "--freeze-epochs", 0, "--out", tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "no fine-tuning phase" not in whole.stderr
    bases = [load_checkpoint(tmp_path / name / "last.keras").get_layer("base") for name in ("frozen", "whole")]
    kernel = "conv1_conv"  # the same initial weights (same seed): only a trained base moves them
    assert not np.allclose(bases[0].get_layer(kernel).get_weights()[0], bases[1].get_layer(kernel).get_weights()[0])


# --------------------------------------------------------------------------- shipped seed artifacts

SEED_ARTIFACTS = {"cnn-ferplus": ("ferplus-majority", L.FERPLUS_LABELS), "cnn-fer2013": ("fer2013", L.FER2013_LABELS)}
ARTIFACT_ROOT = Path(__file__).resolve().parents[1] / "ml" / "artifacts"


@pytest.mark.parametrize("name", sorted(SEED_ARTIFACTS))
def test_shipped_reference_cnn_serves_and_beats_the_majority_class_on_publictest(name):
    """An exported reference CNN loads in ml.runtime, its card records the architecture's cost, and it labels
    PublicTest faces better than always answering the most frequent class of those faces."""
    from ml.models.cnn import build_cnn
    from ml.models.cost import count_macs
    from ml.runtime import EmotionClassifier
    from tests.fer_data import shared_fer_dir

    path = ARTIFACT_ROOT / name
    if not path.is_dir():
        pytest.skip(f"ml/artifacts/{name} is not exported (docs/seed-models.md)")
    mode, labels = SEED_ARTIFACTS[name]
    clf = EmotionClassifier.load(path)
    assert clf.labels == labels
    card = json.loads((path / "model_card.json").read_text())
    reference = build_cnn((48, 48, 1), len(labels))
    assert card["cost"] == {"params": reference.count_params(), "macs_per_face": count_macs(reference)}
    assert card["training"]["model"] == "cnn" and card["training"]["train_wall_seconds_all_phases"] > 0
    data_dir = shared_fer_dir()
    if data_dir is None:
        pytest.skip("FER-2013 data not present (set FEEDMOOD_FER_DATA)")
    split = D.load_split(data_dir, mode, "PublicTest")
    truth = split.targets[D.head_for(mode)][:400].argmax(axis=1)
    predicted = clf.predict_proba(split.images[:400]).argmax(axis=1)
    majority = np.bincount(truth).max() / len(truth)
    assert (predicted == truth).mean() > majority + 0.1, ((predicted == truth).mean(), majority)
