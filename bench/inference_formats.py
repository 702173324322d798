"""Inference speed per runtime format, measured through `ml.runtime` (the service's code path).

    # exported artifacts (each a directory with model_card.json)
    python bench/inference_formats.py ml/artifacts/feednet-ferplus
    # or a checkpoint: builds temporary keras / tflite / tflite-int8 / onnx artifacts of one head
    python bench/inference_formats.py --checkpoint runs/feednet-mt/best.keras --head ferplus
    # smoke run
    python bench/inference_formats.py --checkpoint /tmp/x/best.keras --batch-runs 2 --latency-runs 5 --threads 1 --out /tmp/b

Reports faces/s at batch 64 (median of `--batch-runs` calls) and the latency of one face (median of
`--latency-runs` calls) for each format and each `--threads` value (FEEDMOOD_INFER_THREADS), plus
PublicTest accuracy when `--eval-limit` > 0 and the data is available. Faces come from PublicTest when
`--data` has it, else synthetic ones (speed does not depend on content, except with a selective flip,
which pays for the share of unsure faces; call i times the i-th batch of 64 faces). Writes
`<out>/inference_formats.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from ml import data as D  # noqa: E402
from ml.cli import DEFAULT_DATA  # noqa: E402
from ml.formats import CANDIDATES  # noqa: E402
from ml.hostinfo import timing_host  # noqa: E402
from ml.runtime import EmotionClassifier  # noqa: E402
from ml.speed import measure_speed  # noqa: E402


def sweeps(values: list[float], digits: int) -> str:
    """' [a, b, c]' when a figure is the median of several sweeps, else ''."""
    return f" [{', '.join(f'{v:,.{digits}f}' for v in values)}]" if len(values) > 1 else ""


def busy_note(load: tuple[float, float, float]) -> str | None:
    if load[0] > 0.5:
        return (
            f"machine was busy: 1-minute load average {load[0]:.2f} on {os.cpu_count()} CPUs before the benchmark "
            "started; numbers are lower than on an idle machine"
        )
    return None


def tta_modes(clf: EmotionClassifier, which: str) -> list[tuple[bool, float]]:
    """(tta, flip_below) to time: the card's mode; with "both" also the other one, and every-face flip when the
    card flips selectively."""
    modes = [(clf.tta, clf.flip_below)]
    if which == "both":
        modes.append((not clf.tta, math.inf))
        if clf.tta and math.isfinite(clf.flip_below):
            modes.append((True, math.inf))
    return modes


def tta_label(row: dict) -> str:
    if not row["tta"]:
        return "off"
    return f"on, top < {row['flip_below']:g}" if row.get("flip_below") else "on"


def public_faces(data_dir: str, label_mode: str, limit: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(faces, targets or None, source) for timing and optional accuracy."""
    try:
        split = D.load_split(data_dir, label_mode, "PublicTest")
        head = D.head_for(label_mode)
        return split.images, split.targets.get(head), f"PublicTest of {data_dir}"
    except D.DataError as exc:
        from ml.synthetic import faces

        print(f"note: using synthetic faces ({exc})", file=sys.stderr)
        return faces(max(limit, 256), seed=0)[0], None, "synthetic"


def build_artifacts(args, work: Path) -> list[Path]:
    """Temporary artifacts of one checkpoint head in each requested format."""
    from ml.checkpoints import as_float32, choose_head, head_sizes, load_checkpoint, single_head_model
    from ml.formats import make_artifact
    from ml.protocols import HEAD_LABELS

    model = load_checkpoint(args.checkpoint)
    head = choose_head(head_sizes(model), args.head, None)
    sub = as_float32(
        single_head_model(model, head)
    )  # a mixed_bfloat16 checkpoint exports as float32, as ml.export does
    rep = None
    if "tflite-int8" in args.formats:
        try:
            train = D.load_split(args.data, "fer2013" if head == "fer2013" else "ferplus-majority", "Training").images
            rep = train[np.random.default_rng(0).choice(len(train), size=min(500, len(train)), replace=False)]
        except D.DataError:
            from ml.synthetic import faces

            rep = faces(200, seed=1)[0]
            print(
                "note: int8 calibrated on synthetic faces (no Training data); its accuracy is meaningless",
                file=sys.stderr,
            )
    dirs = []
    for fmt in args.formats:
        try:
            dirs.append(
                make_artifact(
                    sub,
                    fmt,
                    work / fmt,
                    name=f"{Path(args.checkpoint).parent.name}-{head}-{fmt}",
                    head=head,
                    labels=HEAD_LABELS[head],
                    representative=rep,
                )
            )
        except Exception as exc:
            print(f"{fmt}: conversion failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    return dirs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("artifacts", nargs="*", help="artifact directories (model_card.json inside)")
    p.add_argument("--checkpoint", default=None, help=".keras checkpoint to convert to every format")
    p.add_argument("--head", default=None, help="head of a multi-head checkpoint (default ferplus)")
    p.add_argument("--formats", default=",".join(CANDIDATES), help="formats to build from --checkpoint")
    p.add_argument("--data", default=DEFAULT_DATA)
    p.add_argument("--threads", default="1,2", help="comma separated inference thread counts to try")
    p.add_argument("--batch-runs", type=int, default=30)
    p.add_argument("--latency-runs", type=int, default=200)
    p.add_argument("--eval-limit", type=int, default=0, help="also score accuracy on the first N PublicTest rows")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="sweep all configurations this many times and report each one's median (noisy machines)",
    )
    p.add_argument(
        "--tta-modes",
        choices=("card", "both"),
        default="card",
        help="card: each artifact as its card sets test-time flip; both: also with it flipped (and, for "
        "a selective flip, with every face flipped)",
    )
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    args.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    if not args.artifacts and not args.checkpoint:
        p.error("give artifact directories and/or --checkpoint")
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if any(f not in CANDIDATES for f in args.formats) or not threads or min(threads) < 1:
        p.error(f"--formats must be a subset of {', '.join(CANDIDATES)}; --threads positive integers")
    load_before = os.getloadavg()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(a) for a in args.artifacts]
        if args.checkpoint:
            dirs += build_artifacts(args, Path(tmp))
        cache: dict[str, tuple] = {}
        for directory in dirs:  # what to time, and each configuration's accuracy
            card_clf = EmotionClassifier.load(directory)
            card = card_clf.card
            mode = card.label_mode or ("fer2013" if card.head == "fer2013" else "ferplus-majority")
            if mode not in cache:
                cache[mode] = public_faces(args.data, mode, args.eval_limit)
            faces, targets, source = cache[mode]
            for tta, flip_below in tta_modes(card_clf, args.tta_modes):
                accuracy = None
                if args.eval_limit > 0 and targets is not None:
                    n = min(args.eval_limit, len(faces))
                    probs = EmotionClassifier.load(directory, tta=tta, flip_below=flip_below).predict_proba(faces[:n])
                    accuracy = float(np.mean(probs.argmax(axis=1) == targets[:n].argmax(axis=1)))
                as_card = (tta, flip_below) == (card_clf.tta, card_clf.flip_below)
                other = card.other_tta_for(tta)
                recorded = (
                    card.metrics
                    if as_card
                    else (other.to_json() if other is not None else None)
                    if tta != card_clf.tta
                    else (card.extra.get("selective_flip") or {}).get("full_flip")
                )
                for t in threads:
                    rows.append(
                        {
                            "artifact": str(directory) if str(directory).find(tmp) < 0 else f"<{args.checkpoint}>",
                            "directory": directory,
                            "mode": mode,
                            "name": card_clf.name,
                            "format": card_clf.format,
                            "file_bytes": (directory / card.file).stat().st_size,
                            "threads": t,
                            "tta": tta,
                            "sweeps": [],
                            "tta_as_card": as_card,
                            "flip_below": flip_below if math.isfinite(flip_below) else None,
                            "accuracy": accuracy,
                            "accuracy_rows": min(args.eval_limit, len(faces)) if accuracy is not None else 0,
                            "card_accuracy": (recorded or {}).get("accuracy"),
                            "faces": source,
                        }
                    )
        # Sweep every configuration in turn, --repeat times: a slow phase of a shared machine then touches every
        # row alike instead of one row's repeats, and each row reports the median of its sweeps.
        for sweep in range(args.repeat):
            for row in rows:
                clf = EmotionClassifier.load(
                    row["directory"], threads=row["threads"], tta=row["tta"], flip_below=row["flip_below"] or math.inf
                )
                speed = measure_speed(clf, cache[row["mode"]][0], args.batch_runs, args.latency_runs)
                row["sweeps"].append(speed)
                del clf
                acc = f"  acc {100 * row['accuracy']:.2f}%" if row["accuracy"] is not None else ""
                print(
                    f"[{sweep + 1}/{args.repeat}] {row['name']:<22} tta {tta_label(row):<16} "
                    f"{row['format']:<12} threads {row['threads']}: {speed['faces_per_s_b64']:9.1f} faces/s @b64  "
                    f"{speed['ms_per_face_b1']:8.3f} ms/face @b1{acc}",
                    flush=True,
                )
        for row in rows:
            timed = row["sweeps"]
            row.update(
                {key: statistics.median(s[key] for s in timed) for key in ("faces_per_s_b64", "ms_per_face_b1")},
                batch_runs=args.batch_runs,
                latency_runs=args.latency_runs,
                faces_per_s_b64_sweeps=[s["faces_per_s_b64"] for s in timed],
                ms_per_face_b1_sweeps=[s["ms_per_face_b1"] for s in timed],
            )
            for key in ("directory", "mode", "sweeps"):
                del row[key]

    versions = {}
    for module in ("tensorflow", "keras", "ai-edge-litert", "onnxruntime"):
        try:
            from importlib.metadata import version

            versions[module] = version(module)
        except Exception:
            pass
    host = timing_host()
    report = {
        "benchmark": "inference_formats",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "batch": 64,
            "batch_runs": args.batch_runs,
            "latency_runs": args.latency_runs,
            "threads": threads,
            "repeat": args.repeat,
            "tta_modes": args.tta_modes,
        },
        "host": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            **versions,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            **{k: host[k] for k in ("cpu_model", "cpu_flags")},
        },
        "note": busy_note(load_before),
        "results": rows,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "inference_formats.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Inference speed per runtime format (through ml.runtime)",
        "",
        f"Host: {report['host']['cpu_model']}, {os.cpu_count()} CPUs, load average before/after {report['host']['loadavg_before']} / "
        f"{report['host']['loadavg_after']}; CPU flags {', '.join(report['host']['cpu_flags']) or 'none of note'}. "
        f"Batch-64 throughput = median of {args.batch_runs} calls; latency = median of {args.latency_runs} "
        f"single-face calls; each figure is the median of {args.repeat} sweep(s) over all rows"
        + (" (every sweep's figure in brackets)" if args.repeat > 1 else "")
        + '. TTA: test-time flip ("card" when as the artifact ships; "top < t": only faces whose first pass is less sure than t are flipped).',
        "",
    ]
    if report["note"]:
        lines += [f"**Note:** {report['note']}", ""]
    lines += [
        "| model | TTA | format | threads | size | faces/s (b64) | ms/face (b1) | accuracy |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        acc = r["accuracy"] if r["accuracy"] is not None else r["card_accuracy"]
        lines.append(
            f"| {r['name']} | {tta_label(r)}{' (card)' if r['tta_as_card'] else ''} | {r['format']} | {r['threads']} | {r['file_bytes'] / 1e6:.2f} MB | "
            f"{r['faces_per_s_b64']:.1f}{sweeps(r['faces_per_s_b64_sweeps'], 0)} | "
            f"{r['ms_per_face_b1']:.3f}{sweeps(r['ms_per_face_b1_sweeps'], 2)} | "
            f"{'' if acc is None else f'{100 * acc:.2f}%'} |"
        )
    (out / "inference_formats.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'inference_formats.json'} and .md" + (f"\nNOTE: {report['note']}" if report["note"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
