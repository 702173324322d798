"""Classification metrics for FER models (numpy + scikit-learn; no TensorFlow).

All functions take `probs` float (N, K) rows of class probabilities and either integer
`labels` (N,) or target distributions `targets` (N, K) (one-hot for hard labels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

EPS = 1e-7
ECE_BINS = 15


def _as_probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D (N, K), got shape {probs.shape}")
    return probs


def accuracy(probs: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy (fraction, 0..1)."""
    probs = _as_probs(probs)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    return float(np.mean(probs.argmax(axis=1) == labels))


def cross_entropy(probs: np.ndarray, targets: np.ndarray) -> float:
    """Mean cross-entropy -sum(t * log p) against target distributions (natural log)."""
    probs = np.clip(_as_probs(probs), EPS, 1.0)
    targets = np.asarray(targets, dtype=np.float64)
    if targets.shape != probs.shape:
        raise ValueError(f"targets shape {targets.shape} does not match probs {probs.shape}")
    if len(probs) == 0:
        return float("nan")
    return float(np.mean(-np.sum(targets * np.log(probs), axis=1)))


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of integer labels."""
    probs = np.clip(_as_probs(probs), EPS, 1.0)
    labels = np.asarray(labels, dtype=int)
    return float(-np.mean(np.log(probs[np.arange(len(labels)), labels])))


def confusion(probs: np.ndarray, labels: np.ndarray, num_classes: int | None = None) -> np.ndarray:
    """Confusion matrix, rows = true class, columns = predicted class (int64 (K, K))."""
    from sklearn.metrics import confusion_matrix

    probs = _as_probs(probs)
    k = num_classes or probs.shape[1]
    return confusion_matrix(np.asarray(labels, dtype=int), probs.argmax(axis=1), labels=list(range(k))).astype(np.int64)


def per_class(probs: np.ndarray, labels: np.ndarray, names: Sequence[str]) -> dict:
    """Per-class precision/recall/F1/support plus macro and support-weighted averages."""
    from sklearn.metrics import precision_recall_fscore_support

    probs = _as_probs(probs)
    labels = np.asarray(labels, dtype=int)
    k = len(names)
    pred = probs.argmax(axis=1)
    p, r, f, s = precision_recall_fscore_support(labels, pred, labels=list(range(k)), zero_division=0)
    classes = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(names)
    }
    present = s > 0  # classes absent from the evaluated split would drag the macro mean to 0 for no reason
    macro = {
        "precision": float(p[present].mean()) if present.any() else 0.0,
        "recall": float(r[present].mean()) if present.any() else 0.0,
        "f1": float(f[present].mean()) if present.any() else 0.0,
    }
    weighted = {
        "precision": float(np.average(p, weights=s)) if s.sum() else 0.0,
        "recall": float(np.average(r, weights=s)) if s.sum() else 0.0,
        "f1": float(np.average(f, weights=s)) if s.sum() else 0.0,
    }
    return {
        "classes": classes,
        "macro": macro,
        "weighted": weighted,
        "classes_absent": [n for n, ok in zip(names, present) if not ok],
    }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Top-label ECE with `bins` equal-width confidence bins: sum_b |B|/N * |acc(B) - conf(B)|."""
    probs = _as_probs(probs)
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    if n == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    # Bin b covers (b/bins, (b+1)/bins]; confidence 0 falls in bin 0.
    index = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() / n * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


def apply_temperature(probs: np.ndarray, temperature: float, class_bias: np.ndarray | None = None) -> np.ndarray:
    """Temperature scaling on log-probabilities: softmax(log(p) / T [+ b]) (float64 rows summing to 1).

    `class_bias` b (K,) is the per-class offset of bias-corrected temperature scaling (`fit_temperature_and_bias`).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = np.log(np.clip(_as_probs(probs), 1e-12, 1.0)) / temperature
    if class_bias is not None:
        logits = logits + np.asarray(class_bias, dtype=np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _calibration_inputs(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(log p, integer labels, row index) for the calibration fits; refuses zero samples."""
    probs = _as_probs(probs)
    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        raise ValueError("cannot fit a calibration on zero samples")
    return np.log(np.clip(probs, 1e-12, 1.0)), labels, np.arange(len(labels))


def fit_temperature(probs: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature T minimising the NLL of softmax(log(p) / T) on (probs, labels).

    Optimised over log T with a bounded scalar search (NLL is smooth in log T).
    """
    from scipy.optimize import minimize_scalar

    log_p, labels, rows = _calibration_inputs(probs, labels)

    def objective(log_t: float) -> float:
        z = log_p / math.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(log_norm - z[rows, labels]))

    result = minimize_scalar(
        objective, bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded", options={"xatol": 1e-5}
    )
    return float(math.exp(result.x))


def fit_temperature_and_bias(probs: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Bias-corrected temperature scaling (Alexandari et al. 2020): the T and per-class offsets b (K,)
    minimising the NLL of softmax(log(p) / T + b) on (probs, labels).

    b is returned centred (mean 0; softmax ignores a common shift). Unlike T alone, b can change the top
    class: it corrects class priors the training left skewed (class weights, label noise).
    """
    from scipy.optimize import minimize

    log_p, labels, rows = _calibration_inputs(probs, labels)
    start = math.log(fit_temperature(probs, labels))

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        inv_t = math.exp(-x[0])
        z = log_p * inv_t + x[1:]
        z = z - z.max(axis=1, keepdims=True)
        exp = np.exp(z)
        total = exp.sum(axis=1)
        grad_z = exp / total[:, None]
        grad_z[rows, labels] -= 1.0
        grad_z /= len(labels)
        loss = float(np.mean(np.log(total) - z[rows, labels]))
        return loss, np.concatenate([[-float((grad_z * log_p).sum()) * inv_t], grad_z.sum(axis=0)])

    classes = log_p.shape[1]
    x0 = np.concatenate([[start], np.zeros(classes)])
    result = minimize(
        objective,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=[(math.log(0.05), math.log(20.0))] + [(-10.0, 10.0)] * classes,
    )
    bias = result.x[1:] - result.x[1:].mean()
    return float(math.exp(result.x[0])), bias


def rounded_bias(bias: np.ndarray | None) -> list[float] | None:
    """Class offsets as model cards store them (6 decimals); shipped figures are computed from these."""
    return None if bias is None else [round(float(b), 6) for b in bias]


def fit_calibration(probs: np.ndarray, labels: np.ndarray, class_bias: bool = False) -> tuple[float, np.ndarray | None]:
    """(T, b) of bias-corrected temperature scaling when `class_bias`, else (T, None) of plain temperature scaling."""
    if class_bias:
        return fit_temperature_and_bias(probs, labels)
    return fit_temperature(probs, labels), None


def calibration_fit(probs: np.ndarray, labels: np.ndarray, class_bias: bool = False, seed: int = 0) -> dict:
    """One kind of calibration as a card ships it: T and b fitted on all rows (b rounded by `rounded_bias`),
    the accuracy of the calibrated probabilities (in-sample) and the 2-fold `cross_calibrate` figures."""
    temperature, bias = fit_calibration(probs, labels, class_bias)
    bias = rounded_bias(bias)
    return {
        "temperature": temperature,
        "class_bias": bias,
        "accuracy": accuracy(apply_temperature(probs, temperature, bias), labels),
        "cross": cross_calibrate(probs, labels, folds=2, seed=seed, class_bias=class_bias),
    }


def cross_calibrate(
    probs: np.ndarray, labels: np.ndarray, folds: int = 2, seed: int = 0, class_bias: bool = False
) -> dict:
    """Honest calibration estimate: fit T (and b, with `class_bias`) on all folds but one, measure ECE/NLL and
    accuracy on the held-out fold.

    Returns the per-fold calibrations and the held-out ECE/NLL/accuracy before and after scaling,
    averaged over folds (each fold weighted equally).
    """
    probs = _as_probs(probs)
    labels = np.asarray(labels, dtype=int)
    n = len(labels)
    if n < 2 * folds:
        raise ValueError(f"need at least {2 * folds} samples for {folds}-fold calibration, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    rows = []
    for i, held in enumerate(parts):
        fit = np.concatenate([p for j, p in enumerate(parts) if j != i])
        t, bias = fit_calibration(probs[fit], labels[fit], class_bias)
        scaled = apply_temperature(probs[held], t, bias)
        rows.append(
            {
                "temperature": t,
                **({"class_bias": rounded_bias(bias)} if bias is not None else {}),
                "n_fit": len(fit),
                "n_held_out": len(held),
                "ece_before": expected_calibration_error(probs[held], labels[held]),
                "ece_after": expected_calibration_error(scaled, labels[held]),
                "nll_before": nll(probs[held], labels[held]),
                "nll_after": nll(scaled, labels[held]),
                "accuracy_before": accuracy(probs[held], labels[held]),
                "accuracy_after": accuracy(scaled, labels[held]),
            }
        )
    keys = ("ece_before", "ece_after", "nll_before", "nll_after", "accuracy_before", "accuracy_after")
    mean = {key: float(np.mean([r[key] for r in rows])) for key in keys}
    return {"folds": folds, "seed": seed, "fits_class_bias": class_bias, "per_fold": rows, **mean}


def evaluate_probs(probs: np.ndarray, targets: np.ndarray, names: Sequence[str]) -> dict:
    """Every metric FeedMood reports, for probs vs target distributions (label = argmax of target)."""
    probs = _as_probs(probs)
    targets = np.asarray(targets, dtype=np.float64)
    labels = targets.argmax(axis=1)
    report = per_class(probs, labels, names)
    return {
        "n": len(labels),
        "accuracy": accuracy(probs, labels),
        "loss": cross_entropy(probs, targets),
        "macro_f1": report["macro"]["f1"],
        "weighted_f1": report["weighted"]["f1"],
        "macro_precision": report["macro"]["precision"],
        "macro_recall": report["macro"]["recall"],
        "ece": expected_calibration_error(probs, labels),
        "per_class": report["classes"],
        "classes_absent": report["classes_absent"],
        "labels": list(names),
        "confusion_matrix": confusion(probs, labels, len(names)).tolist(),
    }


def format_report(metrics: dict, title: str = "") -> str:
    """A readable plain-text table of :func:`evaluate_probs` output."""
    names = metrics["labels"]
    lines = [title] if title else []
    lines.append(
        f"n={metrics['n']}  accuracy={100 * metrics['accuracy']:.2f}%  loss={metrics['loss']:.4f}  "
        f"macro-F1={metrics['macro_f1']:.4f}  weighted-F1={metrics['weighted_f1']:.4f}  ECE={metrics['ece']:.4f}"
    )
    width = max(9, max(len(n) for n in names) + 1)
    lines.append("")
    lines.append(f"{'class':<{width}} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for name in names:
        c = metrics["per_class"][name]
        lines.append(f"{name:<{width}} {c['precision']:>9.3f} {c['recall']:>7.3f} {c['f1']:>7.3f} {c['support']:>8d}")
    if "macro_precision" in metrics:
        lines.append(
            f"{'macro avg':<{width}} {metrics['macro_precision']:>9.3f} {metrics['macro_recall']:>7.3f} "
            f"{metrics['macro_f1']:>7.3f} {metrics['n']:>8d}"
        )
    lines.append("")
    short = [n[:7] for n in names]
    lines.append("confusion matrix (rows = true, columns = predicted)")
    lines.append(" " * width + " ".join(f"{s:>7}" for s in short))
    for name, row in zip(names, metrics["confusion_matrix"]):
        lines.append(f"{name:<{width}}" + " ".join(f"{v:>7d}" for v in row))
    return "\n".join(lines)


def save_confusion_png(matrix: np.ndarray | list, names: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Write a confusion-matrix heat map (row-normalised colours, raw counts printed) as PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix, dtype=np.int64)
    row_sums = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, row_sums, out=np.zeros(matrix.shape, dtype=float), where=row_sums > 0)
    k = len(names)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.7 * k), dpi=110)
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(k), labels=names, rotation=45, ha="right")
    ax.set_yticks(range(k), labels=names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title, fontsize=9)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                f"{matrix[i, j]}\n{norm[i, j]:.0%}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="row fraction")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
