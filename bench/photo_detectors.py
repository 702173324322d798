"""Face detector study on composed 640x480 photos: recall by face size, false positives, ms (issue #25).

    .venv/bin/python bench/photo_detectors.py [--groups 120] [--selfies 200]

Photos (``bench/photo_scenes.py``, deterministic): group photos with 4-10 faces of 24-110 px (FER-2013
PublicTest-era crops, LFW, the astronaut) plus photos without faces, and one-face selfies of
160-260 px (PublicTest faces).  A face is found when a detection has IoU >= 0.3 with it; other
detections are false positives.  ms = ``emotion.pipeline.detect_faces`` per photo (decoded grey),
median and p95, single process, OpenCV and LiteRT at their defaults in this process.
Candidates: the Haar configs (old default, thorough) and BlazeFace short-range (default: whole image,
tiles only when nothing is found; ``blazeface-tiles``: tiles down to 24 px; ``blazeface-group``: scale
pyramid down to 24 px, candidates confirmed by the face-mesh model).  The group search's thresholds
(``emotion.face_detector.PYRAMID_*``, ``VERIFY_*``) were fitted on the group photos of seed 2525 (the *fit*
set); the table that counts is the *evaluation* set, other photos (seed 2626).  Writes
``bench/results/photo_detectors.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import photo_pipeline  # noqa: E402,F401  (sets up Django)
import photo_scenes as ps  # noqa: E402

from emotion import pipeline  # noqa: E402

CANDIDATES = {
    "haar (old default: alt2 288x216)": "haar",
    "haar-thorough (alt 448x336, sf 1.1)": "haar-thorough",
    "blazeface (default)": "blazeface",
    "blazeface-tiles (tiles to 24 px)": "blazeface-tiles",
    "blazeface-group (pyramid to 24 px, verified)": "blazeface-group",
}
FIT_SEED, EVAL_SEED = 2525, 2626
BUCKETS = ("<32", "<48", "<64", "<96", "<160", ">=160")


def run(photos: list[ps.Photo], config: pipeline.PipelineConfig) -> dict:
    """Found/total per size bucket, false positives, ms per photo."""
    by_size = {b: [0, 0] for b in BUCKETS}
    fp = fp_empty = empty = 0
    ms = []
    for photo in photos:
        grey = pipeline.decode(photo.jpeg)
        t0 = time.perf_counter()
        boxes = pipeline.detect_faces(grey, config)
        ms.append((time.perf_counter() - t0) * 1000)
        owner, extra = ps.match([f["box"] for f in photo.faces], [(b.x, b.y, b.w, b.h) for b in boxes])
        fp += extra
        if not photo.faces:
            empty += 1
            fp_empty += extra
        for face, o in zip(photo.faces, owner):
            cell = by_size[ps.face_side_bucket(face["box"][2])]
            cell[0] += o >= 0
            cell[1] += 1
    ms.sort()
    found = sum(v[0] for v in by_size.values())
    total = sum(v[1] for v in by_size.values())
    return {
        "recall": found / max(1, total),
        "by_size": by_size,
        "fp_per_photo": fp / len(photos),
        "fp_per_empty_photo": fp_empty / max(1, empty),
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=120)
    parser.add_argument("--selfies", type=int, default=200)
    parser.add_argument("--data", default=os.environ.get("FEEDMOOD_FER_DATA"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "photo_detectors"))
    parser.add_argument("--note", default="", help="what else ran on the host (written into the results)")
    args = parser.parse_args(argv)
    data = Path(args.data) if args.data else None
    groups = ps.group_scenes(data, args.groups, empty=args.groups // 2, seed=EVAL_SEED)
    fit = ps.group_scenes(data, args.groups, empty=args.groups // 2, seed=FIT_SEED)
    selfies = ps.selfies(data, args.selfies, seed=29)[0] if data else []
    result = {
        "groups": args.groups,
        "selfies": len(selfies),
        "seeds": {"fit": FIT_SEED, "evaluation": EVAL_SEED},
        "load": [round(v, 2) for v in os.getloadavg()],
        "note": args.note,
        "candidates": {},
    }
    for label, name in CANDIDATES.items():
        config = pipeline.CONFIGS[name]
        row = {"group": run(groups, config)}
        if selfies:
            row["selfie"] = run(selfies, config)
        if name == "blazeface-group":
            row["group_fit"] = run(fit, config)
        result["candidates"][label] = row
        print(label, json.dumps(row), flush=True)
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    faces = sum(v[1] for v in next(iter(result["candidates"].values()))["group"]["by_size"].values())
    lines = [
        "# Face detectors on composed 640x480 photos",
        "",
        f"Generated by `bench/photo_detectors.py`; raw data in `photo_detectors.json`. Group set (evaluation, "
        f"seed {EVAL_SEED}): {args.groups} photos with {faces} faces of 24-110 px + {args.groups // 2} photos without "
        "faces (backgrounds with a face of their own left out); selfie set: "
        f"{len(selfies)} photos, one PublicTest face of 160-260 px (tilt up to +-12 degrees). Found = IoU >= 0.3. "
        f"ms = `detect_faces` per decoded photo, one process on 2 cores (load average 1/5/15 min at start "
        f"{result['load']}, at the end {result['load_after']}" + (f"; {args.note}" if args.note else "") + ").",
        "",
        "| detector config | group recall | FP/photo (groups + empty) | FP/empty photo | group median ms | "
        "group p95 ms | selfie found | selfie FP/photo | selfie median ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, row in result["candidates"].items():
        g, s = row["group"], row.get("selfie", {})
        lines.append(
            f"| {label} | {g['recall']:.1%} | {g['fp_per_photo']:.3f} | {g['fp_per_empty_photo']:.3f} | "
            f"{g['median_ms']} | {g['p95_ms']} | {s.get('recall', 0):.1%} | {s.get('fp_per_photo', 0):.3f} | "
            f"{s.get('median_ms', '-')} |"
        )
    lines += [
        "",
        "Group recall by face side (px at 640x480), found/total:",
        "",
        "| detector config | " + " | ".join(BUCKETS) + " |",
        "|---|" + "---:|" * len(BUCKETS),
    ]
    for label, row in result["candidates"].items():
        cells = [f"{row['group']['by_size'][b][0]}/{row['group']['by_size'][b][1]}" for b in BUCKETS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for label, row in result["candidates"].items():
        if "group_fit" in row:
            g = row["group_fit"]
            lines += [
                "",
                f"On the fit set (seed {FIT_SEED}, where `{label.split()[0]}`'s thresholds were chosen): recall "
                f"{g['recall']:.1%}, {g['fp_per_photo']:.3f} false positives per photo, median {g['median_ms']} ms.",
            ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
