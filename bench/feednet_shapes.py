"""Inference speed of FeedNet shapes before training any of them: int8 TFLite through `ml.runtime`.

    python bench/feednet_shapes.py                        # every shape below, both TTA modes (~3 min)
    python bench/feednet_shapes.py --shapes shipped,lean --batch-runs 3 --latency-runs 5 --out /tmp/b  # smoke

Each shape is the folded FeedNet (`build_feednet(..., batch_norm=False)`, what an export runs) with
random weights, quantised to full int8 with uint8 input exactly as `ml.export` does. Speed does not
depend on the weights, so this tells which shape is worth training for a speed target. Reports the
MACs per face, faces/s at batch 64 and ms for one face, with and without test-time flip (which
costs a second pass), the best of `--repeat` sweeps. Writes `<out>/feednet_shapes.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> (channels per stage, convs per stage)
SHAPES: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "shipped": ((32, 64, 128, 256), (2, 2, 2, 2)),
    "s0-one-conv": ((32, 64, 128, 256), (1, 2, 2, 2)),
    "lean": ((32, 64, 128, 192), (1, 2, 2, 2)),
    "s0-24": ((24, 64, 128, 256), (1, 2, 2, 2)),
    "s3-one-conv": ((32, 64, 128, 256), (1, 2, 2, 1)),
    "w24": ((24, 48, 96, 192), (2, 2, 2, 2)),
    "slim": ((32, 48, 96, 192), (1, 2, 2, 2)),
}


def macs_per_face(widths: tuple[int, ...], convs: tuple[int, ...], side: int = 48) -> int:
    """Multiply-accumulates of the 3x3 convolutions (the rest is under 1%)."""
    total, channels = 0, 1
    for width, count in zip(widths, convs, strict=True):
        for _ in range(count):
            total += side * side * channels * width * 9
            channels = width
        side //= 2
    return total


def parse_shapes(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    bad = [name for name in names if name not in SHAPES]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown shape(s) {bad or value!r}; choose from {', '.join(SHAPES)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shapes", type=parse_shapes, default=list(SHAPES), help="comma-separated names (default: all)")
    p.add_argument("--batch-runs", type=int, default=20)
    p.add_argument("--latency-runs", type=int, default=100)
    p.add_argument("--repeat", type=int, default=2, help="sweeps over all shapes; the best of them is reported")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if min(args.batch_runs, args.latency_runs, args.repeat) < 1:
        build_parser().error("--batch-runs, --latency-runs and --repeat must be positive")
    import numpy as np

    from ml.formats import make_artifact
    from ml.hostinfo import timing_host
    from ml.models.feednet import build_feednet
    from ml.runtime import EmotionClassifier
    from ml.speed import measure_speed

    faces = np.random.default_rng(0).integers(0, 256, (256, 48, 48), dtype=np.uint8)
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        classifiers = {}
        for name in args.shapes:
            widths, convs = SHAPES[name]
            model = build_feednet((48, 48, 1), 8, stage_widths=widths, stage_convs=convs, batch_norm=False)
            directory = make_artifact(
                model,
                "tflite-int8",
                Path(tmp) / name,
                name=name,
                head="ferplus",
                labels=[str(i) for i in range(8)],
                representative=faces[:64],
            )
            classifiers[name] = {tta: EmotionClassifier.load(directory, tta=tta) for tta in (True, False)}
            rows[name] = {
                "stage_widths": list(widths),
                "stage_convs": list(convs),
                "mmacs_per_face": round(macs_per_face(widths, convs) / 1e6, 1),
                "params": model.count_params(),
                "sweeps": {"tta": [], "no_tta": []},
            }
        for sweep in range(args.repeat):
            for name in args.shapes:
                for tta in (True, False):
                    speed = measure_speed(classifiers[name][tta], faces, args.batch_runs, args.latency_runs)
                    rows[name]["sweeps"]["tta" if tta else "no_tta"].append(speed)
                    print(
                        f"[{sweep + 1}/{args.repeat}] {name:12s} tta {'on ' if tta else 'off'}: "
                        f"{speed['faces_per_s_b64']:8.1f} faces/s @b64 {speed['ms_per_face_b1']:7.3f} ms @b1",
                        flush=True,
                    )
    for row in rows.values():
        for mode, sweeps in row["sweeps"].items():
            row[mode] = {
                "faces_per_s_b64": max(s["faces_per_s_b64"] for s in sweeps),
                "ms_per_face_b1": min(s["ms_per_face_b1"] for s in sweeps),
            }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "host": timing_host(),
        "repeat": args.repeat,
        "batch_runs": args.batch_runs,
        "latency_runs": args.latency_runs,
        "shapes": rows,
    }
    (out / "feednet_shapes.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "feednet_shapes.md").write_text(markdown(result))
    print(f"wrote {out / 'feednet_shapes.json'} and .md")
    return 0


def markdown(result: dict) -> str:
    host = result["host"]
    lines = [
        "# FeedNet shapes: int8 inference speed before training",
        "",
        f"Random-weight folded FeedNets, full int8 with uint8 input (as `ml.export`), through `ml.runtime`; best of "
        f"{result['repeat']} sweeps of {result['batch_runs']} batch-64 calls and {result['latency_runs']} one-face calls. "
        f"Host: {host.get('cpu_model')}, {host.get('cpu_count')} CPUs, {host.get('threads')} inference threads, load {host.get('loadavg_1m_5m_15m')}, "
        f"flags {', '.join(host.get('cpu_flags', [])) or 'unknown'}.",
        "",
        "| shape | widths | convs | MMACs/face | params | TTA on faces/s @b64 | TTA on ms @b1 | TTA off faces/s @b64 | TTA off ms @b1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in result["shapes"].items():
        lines.append(
            f"| {name} | {'/'.join(map(str, row['stage_widths']))} | {'/'.join(map(str, row['stage_convs']))} | "
            f"{row['mmacs_per_face']} | {row['params']:,} | {row['tta']['faces_per_s_b64']:,.0f} | "
            f"{row['tta']['ms_per_face_b1']:.3f} | {row['no_tta']['faces_per_s_b64']:,.0f} | "
            f"{row['no_tta']['ms_per_face_b1']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
