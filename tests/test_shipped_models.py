"""The models FeedMood ships: they load through ml.runtime and still score what their cards record."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml import data as D
from ml.labels import FER2013_LABELS, FERPLUS_LABELS
from ml.runtime import EmotionClassifier
from tests.fer_data import shared_fer_dir

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = {
    "ferplus": FERPLUS_LABELS,
    "fer2013": FER2013_LABELS,
    "ferplus-ensemble": FERPLUS_LABELS,
    "fer2013-ensemble": FER2013_LABELS,
    "ferplus-ensemble3": FERPLUS_LABELS,
    "fer2013-ensemble3": FER2013_LABELS,
    "cnn-ferplus": FERPLUS_LABELS,  # the seeds' reference CNN (docs/seed-models.md), opt-in
}
TOLERANCE = 0.01  # int8 kernels may differ in the last bits across CPUs


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_artifact_loads_and_gives_calibrated_probabilities(name: str) -> None:
    clf = EmotionClassifier.load(ROOT / "ml" / "artifacts" / name)
    assert clf.labels == ARTIFACTS[name]
    faces = np.random.default_rng(0).integers(0, 256, size=(70, 48, 48), dtype=np.uint8)
    probs = clf.predict_proba(faces)
    assert probs.shape == (70, len(ARTIFACTS[name])) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    card = json.loads((ROOT / "ml" / "artifacts" / name / "model_card.json").read_text())
    for key in ("accuracy", "macro_f1", "weighted_f1", "per_class", "confusion_matrix"):
        assert key in card["metrics"], key
    assert card["reproduce"] and card["training"]["train_wall_seconds_all_phases"] > 0


@pytest.mark.parametrize("name", sorted(ARTIFACTS))
def test_artifact_keeps_recorded_accuracy_on_fixed_publictest_slice(name: str) -> None:
    data_dir = shared_fer_dir()
    if data_dir is None:
        pytest.skip("FER-2013 data not present (set FEEDMOOD_FER_DATA)")
    path = ROOT / "ml" / "artifacts" / name
    recorded = json.loads((path / "model_card.json").read_text())["regression_slice"]
    split = D.load_split(data_dir, recorded["label_mode"], recorded["split"])
    head = D.head_for(recorded["label_mode"])
    rows = recorded["rows"]
    probs = EmotionClassifier.load(path).predict_proba(split.images[:rows])
    accuracy = float((probs.argmax(1) == split.targets[head][:rows].argmax(1)).mean())
    assert accuracy == pytest.approx(recorded["accuracy"], abs=TOLERANCE)


@pytest.mark.parametrize("name", ["ferplus", "fer2013"])
def test_default_artifacts_are_calibrated_in_both_tta_modes(name: str) -> None:
    """The defaults also record the other TTA mode (FEEDMOOD_MODEL_TTA): its temperature, metrics and slice."""
    path = ROOT / "ml" / "artifacts" / name
    card = json.loads((path / "model_card.json").read_text())
    other = card["other_tta"]
    assert other["tta"] is not card["tta"] and other["n"] == card["metrics"]["n"]
    clf = EmotionClassifier.load(path, tta=other["tta"])
    assert clf.temperature == other["temperature"] != card["temperature"]
    data_dir = shared_fer_dir()
    if data_dir is None:
        pytest.skip("FER-2013 data not present (set FEEDMOOD_FER_DATA)")
    split = D.load_split(data_dir, card["label_mode"], "PublicTest")
    rows = other["regression_slice"]["rows"]
    probs = clf.predict_proba(split.images[:rows])
    accuracy = float((probs.argmax(1) == split.targets[card["head"]][:rows].argmax(1)).mean())
    assert accuracy == pytest.approx(other["regression_slice"]["accuracy"], abs=TOLERANCE)
