"""ml.metrics: accuracy, loss, per-class report, ECE, temperature scaling, confusion PNG (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from ml import metrics as M


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def test_accuracy_loss_and_confusion():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [0.5, 0.4, 0.1]])
    labels = np.array([0, 1, 1, 1])
    assert M.accuracy(probs, labels) == 0.5
    targets = np.eye(3)[labels]
    expected = -np.mean(np.log([0.7, 0.8, 0.3, 0.4]))
    assert M.cross_entropy(probs, targets) == pytest.approx(expected)
    soft = np.array([[0.5, 0.5, 0.0]] * 4)
    assert M.cross_entropy(probs, soft) == pytest.approx(
        np.mean(-0.5 * np.log(probs[:, 0]) - 0.5 * np.log(probs[:, 1]))
    )
    assert M.confusion(probs, labels).tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]
    with pytest.raises(ValueError, match="does not match"):
        M.cross_entropy(probs, targets[:, :2])


def test_per_class_matches_sklearn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 300)
    probs = _softmax(rng.normal(size=(300, 4)) + 2 * np.eye(4)[labels])
    report = M.per_class(probs, labels, ["a", "b", "c", "d"])
    pred = probs.argmax(axis=1)
    assert report["macro"]["f1"] == pytest.approx(f1_score(labels, pred, average="macro"))
    assert report["weighted"]["f1"] == pytest.approx(f1_score(labels, pred, average="weighted"))
    assert sum(c["support"] for c in report["classes"].values()) == 300
    # a class absent from the data does not drag the macro average down
    absent = M.per_class(probs[labels != 3], labels[labels != 3], ["a", "b", "c", "d"])
    assert absent["classes_absent"] == ["d"]


def test_expected_calibration_error_by_hand():
    # 15 bins; confidences 0.95 (bin 14) and 0.55 (bin 8)
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    labels = np.array([0, 1, 0, 0])
    expected = 0.5 * abs(0.5 - 0.95) + 0.5 * abs(1.0 - 0.55)
    assert M.expected_calibration_error(probs, labels) == pytest.approx(expected)
    perfect = np.array([[1.0, 0.0]] * 3)
    assert M.expected_calibration_error(perfect, np.zeros(3, int)) == 0.0


def test_temperature_scaling_recovers_overconfidence():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6000, 5)) * 1.5
    labels = np.array([rng.choice(5, p=p) for p in _softmax(logits)])
    overconfident = _softmax(2.0 * logits)  # the true distribution is softmax(log p / 2)
    t = M.fit_temperature(overconfident, labels)
    assert t == pytest.approx(2.0, rel=0.08)
    calibrated = M.apply_temperature(overconfident, t)
    assert np.allclose(calibrated.sum(axis=1), 1.0)
    assert np.array_equal(calibrated.argmax(axis=1), overconfident.argmax(axis=1))
    assert M.expected_calibration_error(calibrated, labels) < M.expected_calibration_error(overconfident, labels) / 2
    cross = M.cross_calibrate(overconfident, labels, folds=2, seed=0)
    assert len(cross["per_fold"]) == 2 and cross["ece_after"] < cross["ece_before"]
    assert all(r["n_fit"] + r["n_held_out"] == 6000 for r in cross["per_fold"])
    with pytest.raises(ValueError, match="positive"):
        M.apply_temperature(overconfident, 0.0)
    with pytest.raises(ValueError, match="at least 4"):
        M.cross_calibrate(overconfident[:3], labels[:3])


def test_class_bias_calibration_recovers_skewed_priors():
    """Bias-corrected temperature scaling finds a known per-class offset and T; it can move the top class,
    which temperature alone cannot, and it beats temperature alone on held-out NLL and accuracy."""
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(8000, 4)) * 1.5
    labels = np.array([rng.choice(4, p=p) for p in _softmax(logits)])
    true_bias = np.array([1.0, -0.5, 0.0, -0.5])  # the model under-rates class 0 and over-rates 1 and 3
    skewed = _softmax(2.0 * (logits - true_bias))  # truth: softmax(log(p) / 2 + b)
    t, bias = M.fit_temperature_and_bias(skewed, labels)
    assert t == pytest.approx(2.0, rel=0.08)
    assert bias.sum() == pytest.approx(0.0, abs=1e-9) and np.allclose(bias, true_bias - true_bias.mean(), atol=0.08)
    fixed = M.apply_temperature(skewed, t, bias)
    assert np.allclose(fixed.sum(axis=1), 1.0) and not np.array_equal(fixed.argmax(1), skewed.argmax(1))
    assert M.fit_calibration(skewed, labels) == (M.fit_temperature(skewed, labels), None)
    plain = M.cross_calibrate(skewed, labels, folds=2, seed=0)
    both = M.cross_calibrate(skewed, labels, folds=2, seed=0, class_bias=True)
    assert both["fits_class_bias"] and len(both["per_fold"][0]["class_bias"]) == 4
    assert both["nll_after"] < plain["nll_after"] and both["accuracy_after"] > plain["accuracy_after"] + 0.01
    assert plain["accuracy_after"] == pytest.approx(plain["accuracy_before"])  # T alone keeps the top class
    with pytest.raises(ValueError, match="zero samples"):
        M.fit_temperature_and_bias(skewed[:0], labels[:0])


def test_evaluate_probs_report_and_png(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 50)
    probs = _softmax(rng.normal(size=(50, 3)) + np.eye(3)[labels])
    result = M.evaluate_probs(probs, np.eye(3)[labels], ["x", "y", "z"])
    for key in ("accuracy", "loss", "macro_f1", "weighted_f1", "ece", "per_class", "confusion_matrix"):
        assert key in result
    text = M.format_report(result, "title")
    assert "accuracy=" in text and "confusion matrix" in text and text.startswith("title")
    png = M.save_confusion_png(result["confusion_matrix"], ["x", "y", "z"], tmp_path / "cm" / "m.png", "t")
    assert png.read_bytes()[:4] == b"\x89PNG"
