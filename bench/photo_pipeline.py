"""Framing fit and pipeline-induced loss on photos composed from FER-2013 PublicTest faces (issue #25).

    .venv/bin/python bench/photo_pipeline.py [--model ml/artifacts/ferplus] [--count 400]

1. **fit**: ``--count`` selfies (seed 25; 640x480, faces 160-260 px, tilt +-12 degrees) go through
   the BlazeFace detector; the box -> crop transform that reproduces where the 48x48 crop was
   pasted (side / box width, centre offset / box width) is the median over the matched faces.
2. **evaluate** on ``--count`` OTHER selfies (seed 26): per pipeline config, faces found, right
   per photo (found and classified as the face's FER+ majority label), right on found, and the
   classifier's accuracy on the same faces' raw 48x48 crops; *pipeline-induced loss* = raw-crop
   accuracy - right per photo.  Median / p95 ms of ``analyze_bytes`` end to end (decode, detect,
   frame, classify), run after the quality pass, single process.

Writes ``bench/results/photo_pipeline.{json,md}``.  Needs ``$FEEDMOOD_FER_DATA``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import django  # noqa: E402

django.setup()

import photo_scenes as ps  # noqa: E402

from emotion import pipeline  # noqa: E402
from ml.runtime import EmotionClassifier  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def matched_detections(photos: list[ps.Photo], config: pipeline.PipelineConfig) -> list[pipeline.Box | None]:
    """For each one-face photo, the detected box that matches its face (IoU >= 0.3), else None."""
    out = []
    for photo in photos:
        boxes = pipeline.detect_faces(pipeline.decode(photo.jpeg), config)
        owner, _fp = ps.match([photo.faces[0]["box"]], [(b.x, b.y, b.w, b.h) for b in boxes])
        out.append(boxes[owner[0]] if owner[0] >= 0 else None)
    return out


def fit_framing(photos: list[ps.Photo], boxes: list[pipeline.Box | None]) -> dict:
    """Median box -> crop-square transform over the matched faces (and its spread)."""
    rows = []
    for photo, box in zip(photos, boxes):
        if box is None:
            continue
        cx, cy, side, _angle = photo.faces[0]["square"]
        rows.append((side / box.w, (cx - box.x - box.w / 2) / box.w, (cy - box.y - box.h / 2) / box.w))
    r = np.array(rows)
    med = np.median(r, axis=0)
    return {
        "n": len(rows),
        "framing": [round(float(v), 3) for v in med],
        "iqr": [round(float(np.subtract(*np.percentile(r[:, i], [75, 25]))), 3) for i in range(3)],
    }


def evaluate(
    photos: list[ps.Photo], config: pipeline.PipelineConfig, clf: EmotionClassifier, raw_right: np.ndarray
) -> dict:
    """Quality of one config on one-face photos (no timing)."""
    found = right = fp = 0
    right_raw_on_found = 0
    for i, photo in enumerate(photos):
        result = pipeline.analyze_bytes(photo.jpeg, clf, config)
        boxes = [(f.box.x, f.box.y, f.box.w, f.box.h) for f in result.faces]
        owner, extra = ps.match([photo.faces[0]["box"]], boxes)
        fp += extra
        if owner[0] >= 0:
            found += 1
            right_raw_on_found += int(raw_right[i])
            face = result.faces[owner[0]]
            right += int(clf.labels.index(face.dominant) == photo.faces[0]["label"])
    n = len(photos)
    raw = float(raw_right.mean())
    return {
        "photos": n,
        "found": found / n,
        "fp_per_photo": fp / n,
        "right_per_photo": right / n,
        "right_on_found": right / max(1, found),
        "raw_crop_accuracy": raw,
        "raw_on_found": right_raw_on_found / max(1, found),
        "pipeline_loss_points": round(100 * (raw - right / n), 2),
    }


def timing(photos: list[ps.Photo], config: pipeline.PipelineConfig, clf: EmotionClassifier) -> dict:
    """Median and p95 ms of ``analyze_bytes`` over the photos (after one warm-up pass)."""
    for photo in photos[:10]:
        pipeline.analyze_bytes(photo.jpeg, clf, config)
    ms = []
    for photo in photos:
        t0 = time.perf_counter()
        pipeline.analyze_bytes(photo.jpeg, clf, config)
        ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    return {"median_ms": round(statistics.median(ms), 2), "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2)}


def configs(fitted: tuple[float, float, float]) -> dict[str, pipeline.PipelineConfig]:
    return {
        "before: haar (alt2 288x216), margin 0.15": pipeline.HAAR_CONFIG,
        "blazeface, margin 0.15 (framing 1.3, 0, 0)": dataclasses.replace(
            pipeline.DEFAULT_CONFIG, framing=(1.3, 0.0, 0.0), align=False
        ),
        "blazeface, fitted framing": dataclasses.replace(pipeline.DEFAULT_CONFIG, framing=fitted, align=False),
        "blazeface, fitted framing, eyes levelled": dataclasses.replace(
            pipeline.DEFAULT_CONFIG, framing=fitted, align=True, align_slack=0.0
        ),
        "blazeface, fitted framing, roll beyond 10 degrees levelled": dataclasses.replace(
            pipeline.DEFAULT_CONFIG, framing=fitted, align=True, align_slack=10.0
        ),
    }


def write_markdown(result: dict, path: Path) -> None:
    fit = result["fit"]
    lines = [
        "# Photos: framing fit and pipeline-induced loss (FER-2013 PublicTest faces composed into photos)",
        "",
        f"Generated by `bench/photo_pipeline.py`; model `{result['model']}` (TTA per its card); raw data in "
        "`photo_pipeline.json`.",
        f"Selfies: 640x480 JPEG (quality 90), one PublicTest face each (FER+ majority label), 160-260 px, "
        f"tilted up to +-12 degrees, on scikit-image backgrounds. Fit on {result['count']} photos (seed 25), "
        f"evaluated on {result['count']} others (seed 26). Right per photo = the face is found (IoU >= 0.3) "
        "and its top label is the FER+ majority label. Loss = raw-crop accuracy on the same faces - right per photo.",
        "",
        f"Fitted framing (BlazeFace box -> FER crop square, median of {fit['n']} faces): side = "
        f"{fit['framing'][0]} x box width, centre offset = ({fit['framing'][1]}, {fit['framing'][2]}) x box width "
        f"(interquartile ranges {fit['iqr']}). Boxes are BlazeFace's after its closer second look.",
        "",
        "| pipeline | found | FP/photo | right per photo | right on found | raw crop acc. | loss (points) | median ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in result["configs"].items():
        lines.append(
            f"| {name} | {row['found']:.1%} | {row['fp_per_photo']:.3f} | {row['right_per_photo']:.1%} | "
            f"{row['right_on_found']:.1%} | {row['raw_crop_accuracy']:.1%} | {row['pipeline_loss_points']:.1f} | "
            f"{row.get('median_ms', '-')} | {row.get('p95_ms', '-')} |"
        )
    lines += [
        "",
        "Same, on photos whose faces are tilted up to +-30 degrees (seed 27): what eye alignment is for.",
        "",
        "| pipeline | found | right per photo | right on found | raw crop acc. | loss (points) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in result.get("tilted", {}).items():
        lines.append(
            f"| {name} | {row['found']:.1%} | {row['right_per_photo']:.1%} | {row['right_on_found']:.1%} | "
            f"{row['raw_crop_accuracy']:.1%} | {row['pipeline_loss_points']:.1f} |"
        )
    lines += [
        "",
        f"Machine: {result['machine']}; timing single process, "
        f"{result['threads']} inference thread(s), load average before timing {result['load']}.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "ml" / "artifacts" / "ferplus"))
    parser.add_argument("--count", type=int, default=400)
    parser.add_argument("--data", default=os.environ.get("FEEDMOOD_FER_DATA"))
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "photo_pipeline"))
    args = parser.parse_args(argv)
    if not args.data:
        parser.error("set $FEEDMOOD_FER_DATA or --data")
    clf = EmotionClassifier.load(args.model)
    data = Path(args.data)
    fit_photos, _ = ps.selfies(data, args.count, seed=25)
    fit = fit_framing(fit_photos, matched_detections(fit_photos, pipeline.DEFAULT_CONFIG))
    photos, _names = ps.selfies(data, args.count, seed=26)
    images, _labels, _ = ps.publictest(data)
    raw = np.stack([images[p.faces[0]["row"]] for p in photos])
    truth = np.array([p.faces[0]["label"] for p in photos])
    raw_right = clf.predict_proba(raw).argmax(axis=1) == truth
    result = {
        "model": Path(args.model).name,
        "count": args.count,
        "fit": fit,
        "configs": {},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "threads": clf.threads,
    }
    chosen = configs(tuple(fit["framing"]))
    for name, config in chosen.items():
        result["configs"][name] = evaluate(photos, config, clf, raw_right) | {"config": dataclasses.asdict(config)}
        print(name, json.dumps({k: v for k, v in result["configs"][name].items() if k != "config"}), flush=True)
    tilted, _ = ps.selfies(data, args.count, seed=27, max_tilt=30.0)
    raw_t = np.stack([images[p.faces[0]["row"]] for p in tilted])
    right_t = clf.predict_proba(raw_t).argmax(axis=1) == np.array([p.faces[0]["label"] for p in tilted])
    result["tilted"] = {}
    for name, config in chosen.items():
        if config.detector == "blazeface":
            result["tilted"][name] = evaluate(tilted, config, clf, right_t)
            print("tilted", name, json.dumps(result["tilted"][name]), flush=True)
    result["load"] = round(os.getloadavg()[0], 2)
    if not args.no_timing:
        for name, config in chosen.items():
            result["configs"][name] |= timing(photos[:200], config, clf)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    write_markdown(result, out.with_suffix(".md"))
    print(out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
