"""Which classifier holds up on photos: PublicTest and composed photos side by side, the pull toward neutral,
and a per-class prior correction fitted on photos.

    .venv/bin/python bench/photo_models.py --models ml/artifacts/ferplus runs/.../artifact [--count 400]

Photo proxy (``bench/photo_scenes.py``): one PublicTest face per 640x480 photo, either *clean* (160-260 px,
JPEG 90, as in ``photo_pipeline.py``) or *degraded* (100-200 px, defocus blur, gamma and contrast, sensor
noise, JPEG 35-75). Each photo goes through the default pipeline's detection and framing once; every model
then classifies the same crops and the same faces' raw 48x48 PublicTest crops.

- *right per photo*: the face is found (IoU >= 0.3) and its top label is the FER+ majority label;
- *neutral pull*: share of found non-neutral faces called neutral, on the photo crop minus on the raw crop;
- *prior correction*: per-class offsets ``b`` (softmax(log p + b), the card's ``class_bias`` form) fitted by
  log-loss on the crops of OTHER photos (fit seeds) and measured on the evaluation seeds and on PublicTest.

Writes ``bench/results/photo_models.{json,md}``.  Needs ``$FEEDMOOD_FER_DATA``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import photo_pipeline  # noqa: E402,F401  (sets up Django)
import photo_scenes as ps  # noqa: E402

from emotion import pipeline  # noqa: E402
from ml.runtime import EmotionClassifier  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SETS = {  # name: (seed, degraded, face side range)
    "clean": (26, False, (160, 260)),
    "degraded": (31, True, (100, 200)),
}
FIT_SETS = {"clean": (25, False, (160, 260)), "degraded": (30, True, (100, 200))}


def photo_crops(data: Path, count: int, seed: int, degraded: bool, sides: tuple[int, int]) -> dict:
    """Detect and frame every photo of one set once: crops of the found faces, their labels and raw crops."""
    photos, names = ps.selfies(data, count, seed=seed, lo=sides[0], hi=sides[1], degraded=degraded)
    images, _labels, _ = ps.publictest(data)
    crops, raw, labels, found = [], [], [], []
    for photo in photos:
        grey = pipeline.decode(photo.jpeg)
        boxes = pipeline.detect_faces(grey)
        owner, _fp = ps.match([photo.faces[0]["box"]], [(b.x, b.y, b.w, b.h) for b in boxes])
        found.append(owner[0] >= 0)
        if owner[0] >= 0:
            crops.append(pipeline.frame_faces(grey, [boxes[owner[0]]])[0])
            raw.append(images[photo.faces[0]["row"]])
            labels.append(photo.faces[0]["label"])
    return {
        "photos": len(photos),
        "found": int(np.sum(found)),
        "crops": np.stack(crops),
        "raw": np.stack(raw),
        "labels": np.array(labels),
        "names": names,
    }


def fit_class_bias(probs: np.ndarray, labels: np.ndarray, steps: int = 2000, lr: float = 0.5) -> np.ndarray:
    """Per-class offsets b minimising the log-loss of softmax(log p + b) (gradient descent; sum(b) = 0)."""
    logp = np.log(np.clip(probs, 1e-9, 1.0))
    onehot = np.eye(probs.shape[1])[labels]
    b = np.zeros(probs.shape[1])
    for _ in range(steps):
        z = logp + b
        q = np.exp(z - z.max(axis=1, keepdims=True))
        q /= q.sum(axis=1, keepdims=True)
        b -= lr * (q - onehot).mean(axis=0)
        b -= b.mean()
    return b


def corrected(probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    z = np.log(np.clip(probs, 1e-9, 1.0)) + bias
    q = np.exp(z - z.max(axis=1, keepdims=True))
    return q / q.sum(axis=1, keepdims=True)


def figures(pred_photo: np.ndarray, pred_raw: np.ndarray, labels: np.ndarray, photos: int, names) -> dict:
    """Right per photo, accuracies, per-class recall and the pull toward neutral of one model on one set."""
    neutral = names.index("neutral")
    others = labels != neutral
    recall = {
        name: {
            "n": int((labels == k).sum()),
            "photo": round(float((pred_photo[labels == k] == k).mean()), 3) if (labels == k).any() else None,
            "raw": round(float((pred_raw[labels == k] == k).mean()), 3) if (labels == k).any() else None,
        }
        for k, name in enumerate(names)
    }
    called_neutral_photo = float((pred_photo[others] == neutral).mean())
    called_neutral_raw = float((pred_raw[others] == neutral).mean())
    return {
        "right_per_photo": round(float((pred_photo == labels).sum()) / photos, 4),
        "accuracy_photo_crops": round(float((pred_photo == labels).mean()), 4),
        "accuracy_raw_crops": round(float((pred_raw == labels).mean()), 4),
        "non_neutral_called_neutral_photo": round(called_neutral_photo, 4),
        "non_neutral_called_neutral_raw": round(called_neutral_raw, 4),
        "neutral_pull_points": round(100 * (called_neutral_photo - called_neutral_raw), 2),
        "predicted_neutral_share_photo": round(float((pred_photo == neutral).mean()), 4),
        "true_neutral_share": round(float((labels == neutral).mean()), 4),
        "recall": recall,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=[str(ROOT / "ml" / "artifacts" / "ferplus")])
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--data", default=os.environ.get("FEEDMOOD_FER_DATA"))
    parser.add_argument("--out", default=str(RESULTS / "photo_models"))
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("set $FEEDMOOD_FER_DATA or --data")
    data = Path(args.data)
    sets = {name: photo_crops(data, args.count, *spec) for name, spec in SETS.items()}
    fits = {name: photo_crops(data, args.count, *spec) for name, spec in FIT_SETS.items()}
    images, labels, names = ps.publictest(data)
    result: dict = {
        "count": args.count,
        "sets": {
            k: {"seed": v[0], "degraded": v[1], "sides": v[2], "found": sets[k]["found"]} for k, v in SETS.items()
        },
        "fit_sets": {k: {"seed": v[0], "degraded": v[1], "sides": v[2]} for k, v in FIT_SETS.items()},
        "models": {},
    }
    for model_dir in args.models:
        clf = EmotionClassifier.load(model_dir)
        assert tuple(clf.labels) == tuple(names), (clf.labels, names)
        public = clf.predict_proba(images)
        fit_probs = np.concatenate([clf.predict_proba(f["crops"]) for f in fits.values()])
        fit_labels = np.concatenate([f["labels"] for f in fits.values()])
        bias = fit_class_bias(fit_probs, fit_labels)
        row: dict = {
            "publictest_accuracy": round(float((public.argmax(1) == labels).mean()), 4),
            "publictest_accuracy_with_prior_correction": round(
                float((corrected(public, bias).argmax(1) == labels).mean()), 4
            ),
            "class_bias": [round(float(v), 4) for v in bias],
            "sets": {},
        }
        for set_name, s in sets.items():
            photo, raw = clf.predict_proba(s["crops"]), clf.predict_proba(s["raw"])
            row["sets"][set_name] = {
                "model": figures(photo.argmax(1), raw.argmax(1), s["labels"], s["photos"], names),
                "prior_corrected": figures(
                    corrected(photo, bias).argmax(1), corrected(raw, bias).argmax(1), s["labels"], s["photos"], names
                ),
            }
        row["artifact"] = (
            os.path.relpath(Path(model_dir).resolve(), ROOT)
            if Path(model_dir).resolve().is_relative_to(ROOT)
            else Path(model_dir).name
        )
        result["models"][clf.name] = row
        print(clf.name, json.dumps({k: v for k, v in row.items() if k != "sets"}), flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    write_markdown(result, names, out.with_suffix(".md"))
    print(out.with_suffix(".md").read_text())
    return 0


def write_markdown(result: dict, names, path: Path) -> None:
    sets = result["sets"]
    lines = [
        "# Classifiers on photos: PublicTest, composed photos, the pull toward neutral",
        "",
        "Generated by `bench/photo_models.py`; raw data in `photo_models.json`. "
        + "; ".join(
            f"*{k}*: {result['count']} photos (seed {v['seed']}), faces {v['sides'][0]}-{v['sides'][1]} px"
            + (", blur, light, noise, JPEG 35-75" if v["degraded"] else ", JPEG 90")
            + f", {v['found']} found"
            for k, v in sets.items()
        )
        + ". Default pipeline (detection, framing, alignment); every model classifies the same crops. "
        "Prior correction fitted on other photos (seeds "
        + ", ".join(str(v["seed"]) for v in result["fit_sets"].values())
        + ").",
        "",
        "| model | PublicTest acc. | "
        + " | ".join(
            f"{k}: right per photo | {k}: acc. on photo crops | {k}: raw-crop acc. | {k}: neutral pull (points)"
            for k in sets
        )
        + " |",
        "|---|---:|" + "---:|---:|---:|---:|" * len(sets),
    ]
    for name, row in result["models"].items():
        for mode, label in (("model", name), ("prior_corrected", f"{name} + prior correction")):
            acc = row["publictest_accuracy" if mode == "model" else "publictest_accuracy_with_prior_correction"]
            cells = []
            for k in sets:
                f = row["sets"][k][mode]
                cells += [
                    f"{f['right_per_photo']:.1%}",
                    f"{f['accuracy_photo_crops']:.1%}",
                    f"{f['accuracy_raw_crops']:.1%}",
                    f"{f['neutral_pull_points']:+.1f}",
                ]
            lines.append(f"| {label} | {acc:.1%} | " + " | ".join(cells) + " |")
    lines += ["", "Per-class recall on the degraded photos (photo crop / raw crop), models as they ship:", ""]
    lines += ["| model | " + " | ".join(f"{n} (n)" for n in names) + " |", "|---|" + "---:|" * len(names)]
    for name, row in result["models"].items():
        rec = row["sets"]["degraded"]["model"]["recall"]
        cells = [f"{rec[n]['photo']:.2f} / {rec[n]['raw']:.2f} ({rec[n]['n']})" if rec[n]["n"] else "-" for n in names]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Neutral pull = share of found non-neutral faces called neutral on the photo crop minus the same on their "
        "raw 48x48 crops.",
        "",
    ]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
