"""FeedMood side by side with the ``fer`` package on the same composed photos (issue #25).

    .venv/bin/python bench/peer_fer.py --fer-python /path/to/fer-venv/bin/python [--count 200]

``fer`` pulls PyTorch with its dependencies, so it lives in its own virtualenv outside the repo:

    python3 -m venv VENV && VENV/bin/pip install --no-deps fer==25.10.3 \\
        && VENV/bin/pip install tensorflow-cpu opencv-python-headless requests pillow "setuptools<81" tqdm

Photos: ``--count`` 640x480 selfies (seed 28) composed from FER-2013 PublicTest faces (160-260 px,
tilted up to +-12 degrees; ``bench/photo_scenes.py``) whose FER+ majority label is one of the seven
classes ``fer`` knows (contempt rows skipped), written as JPEG files.  ``fer`` (its default: OpenCV
Haar detector, its quantised TFLite classifier) reads each file in a subprocess run by the ``fer``
interpreter; FeedMood runs ``emotion.pipeline.analyze_bytes`` with the default config and model.
Both are timed per photo from JPEG bytes to labels, single process, after a warm-up.
Writes ``bench/results/peer_fer.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FER_NAMES = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "sad": "sadness",
    "surprise": "surprise",
    "neutral": "neutral",
}
ROOT = Path(__file__).resolve().parent.parent


def fer_worker(directory: Path) -> None:
    """Runs under the ``fer`` virtualenv: every ``*.jpg`` in ``directory`` -> JSON lines on stdout."""
    import cv2
    import numpy as np
    from fer.fer import FER

    detector = FER(mtcnn=False)
    files = sorted(directory.glob("*.jpg"))
    for path in files[:5]:  # warm-up
        detector.detect_emotions(cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR))
    for path in files:
        data = path.read_bytes()
        t0 = time.perf_counter()
        faces = detector.detect_emotions(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
        ms = (time.perf_counter() - t0) * 1000
        out = [{"box": [int(v) for v in f["box"]], "top": max(f["emotions"], key=f["emotions"].get)} for f in faces]
        print(json.dumps({"name": path.stem, "ms": ms, "faces": out}), flush=True)


def summary(rows: list[dict], names: dict[str, str] | None = None) -> dict:
    """Faces found, right per photo, right on found, median and p95 ms."""
    found = sum(r["found"] for r in rows)
    right = sum(r["right"] for r in rows)
    ms = sorted(r["ms"] for r in rows)
    return {
        "photos": len(rows),
        "found": found / len(rows),
        "right_per_photo": right / len(rows),
        "right_on_found": right / max(1, found),
        "fp_per_photo": sum(r["fp"] for r in rows) / len(rows),
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fer-python", help="python of the virtualenv where fer is installed")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--data", default=os.environ.get("FEEDMOOD_FER_DATA"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "peer_fer"))
    args = parser.parse_args(argv)
    if args.worker:
        fer_worker(Path(args.worker))
        return 0
    if not args.fer_python or not args.data:
        parser.error("--fer-python and $FEEDMOOD_FER_DATA (or --data) are needed")

    sys.path.insert(0, str(ROOT / "bench"))
    import photo_pipeline  # noqa: F401  (sets up Django)
    import photo_scenes as ps

    from emotion import pipeline
    from ml.runtime import EmotionClassifier

    photos, labels = ps.selfies(Path(args.data), args.count + args.count // 4, seed=28)
    photos = [p for p in photos if labels[p.faces[0]["label"]] in FER_NAMES.values()][: args.count]
    clf = EmotionClassifier.load(ROOT / "ml" / "artifacts" / "ferplus")
    with tempfile.TemporaryDirectory() as tmp:
        for photo in photos:
            (Path(tmp) / f"{photo.name}.jpg").write_bytes(photo.jpeg)
        proc = subprocess.run(
            [args.fer_python, __file__, "--worker", tmp],
            capture_output=True,
            text=True,
            check=True,
            env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
        )
    fer_out = {row["name"]: row for row in map(json.loads, proc.stdout.splitlines()) if row.get("name")}

    def score(photo, boxes, tops, ms) -> dict:
        owner, fp = ps.match([photo.faces[0]["box"]], boxes)
        truth = labels[photo.faces[0]["label"]]
        return {"found": owner[0] >= 0, "right": owner[0] >= 0 and tops[owner[0]] == truth, "fp": fp, "ms": ms}

    fer_rows = []
    for photo in photos:
        row = fer_out[photo.name]
        fer_rows.append(
            score(photo, [f["box"] for f in row["faces"]], [FER_NAMES[f["top"]] for f in row["faces"]], row["ms"])
        )
    for photo in photos[:5]:
        pipeline.analyze_bytes(photo.jpeg, clf)
    ours = []
    for photo in photos:
        t0 = time.perf_counter()
        result = pipeline.analyze_bytes(photo.jpeg, clf)
        ms = (time.perf_counter() - t0) * 1000
        ours.append(
            score(
                photo,
                [(f.box.x, f.box.y, f.box.w, f.box.h) for f in result.faces],
                [f.dominant for f in result.faces],
                ms,
            )
        )
    result = {
        "photos": len(photos),
        "feedmood": summary(ours),
        "fer": summary(fer_rows),
        "feedmood_config": pipeline.card_fields(pipeline.DEFAULT_CONFIG),
        "model": clf.name,
        "fer_version": "25.10.3 (Haar detector, quantised TFLite classifier: its defaults)",
        "load": round(os.getloadavg()[0], 2),
    }
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    lines = [
        "# FeedMood vs `fer` on the same composed photos",
        "",
        f"Generated by `bench/peer_fer.py`; raw data in `peer_fer.json`. {len(photos)} photos: 640x480 JPEG, one "
        "FER-2013 PublicTest face each (160-260 px, tilted up to +-12 degrees, seed 28), truth = its FER+ majority "
        "label (rows whose label `fer` cannot give, contempt, skipped). Right per photo = the face is found "
        "(IoU >= 0.3) and its top label is the truth. ms = JPEG bytes to labels, one process, after warm-up; "
        f"both run one after the other on the same 2 cores (load average {result['load']}).",
        "",
        "| | faces found | FP/photo | right per photo | right on found | median ms | p95 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, key in ((f"FeedMood (BlazeFace, `{clf.name}`)", "feedmood"), (f"`fer` {result['fer_version']}", "fer")):
        s = result[key]
        lines.append(
            f"| {name} | {s['found']:.1%} | {s['fp_per_photo']:.3f} | {s['right_per_photo']:.1%} | "
            f"{s['right_on_found']:.1%} | {s['median_ms']} | {s['p95_ms']} |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
