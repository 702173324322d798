"""Training throughput (images/s of one optimizer step) per architecture and precision.

    python bench/train_throughput.py                      # full run (~15-20 min on 2 idle cores)
    python bench/train_throughput.py --archs feednet --steps 2 --warmup 1 --out /tmp/bench   # smoke

Synthetic 48x48x1 batches (shape is all that matters for speed), batch 64 by default; each
configuration gets `--warmup` untimed steps (graph tracing) and `--steps` timed ones; the median
step time is reported. Transfer backbones (resnet50, resnet50v2, vgg16) are measured at
`--base-size` (96) in both training phases: `frozen` (head only) and `finetune` (whole network).
Seconds per epoch are `--epoch-images` (default: the 28,709 FER-2013 Training faces) over the
measured images/s, augmentation and validation not included. Writes `<out>/<--name>.json` and `.md`
(default `train_throughput`), with the load average: numbers taken while another job runs (e.g. a
training run) are flagged as such.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.hostinfo import SPEED_FLAGS, cpu_flags, cpu_model, cpu_snapshot, others_cpu_share, read_cpuinfo  # noqa: E402

ARCHS = ("cnn", "resnet50", "resnet50v2", "vgg16", "feednet")
PRECISIONS = ("float32", "mixed_bfloat16")


def busy_note(others_cpus: float | None, load_before: tuple[float, float, float]) -> str | None:
    """Why the figures may be low: other processes took CPU time while the benchmark ran."""
    if others_cpus is None:  # no /proc/stat: fall back on the load average before the run
        if load_before[0] > 0.5:
            return f"machine was busy: 1-minute load average {load_before[0]:.2f} before the benchmark started"
        return None
    if others_cpus > 0.1:
        return (
            f"machine was busy: other processes used {others_cpus:.2f} of {os.cpu_count()} CPUs on average while "
            "the benchmark ran; numbers are lower than on an idle machine"
        )
    return None


def measure(arch: str, precision: str, phase: str, args) -> dict:
    import keras
    import numpy as np

    from ml import models as M
    from ml.models.transfer import unfreeze_base

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    try:
        kwargs: dict = {}
        if arch in M.TRANSFER_MODELS:
            kwargs = {"weights": None, "base_size": args.base_size}
        elif arch == "feednet":
            kwargs = {"width": args.width}
        model = M.build_model(arch, (48, 48, 1), 8, **kwargs)
        if phase == "finetune":
            unfreeze_base(model)
        model.compile(optimizer=keras.optimizers.AdamW(1e-4), loss="categorical_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.integers(0, 256, size=(args.batch_size, 48, 48, 1)).astype(np.float32)
        y = np.eye(8, dtype=np.float32)[rng.integers(0, 8, size=args.batch_size)]
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            model.train_on_batch(x, y)
        warmup_s = time.perf_counter() - t0
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            model.train_on_batch(x, y)  # returns numpy losses, so the step has finished
            times.append(time.perf_counter() - start)
        step = statistics.median(times)
        return {
            "arch": arch,
            "precision": precision,
            "phase": phase,
            "batch_size": args.batch_size,
            "base_size": args.base_size if arch in M.TRANSFER_MODELS else None,
            "width": args.width if arch == "feednet" else None,
            "params": int(model.count_params()),
            "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
            "images_per_s": round(args.batch_size / step, 1),
            "step_ms_median": round(1000 * step, 1),
            "seconds_per_epoch": round(args.epoch_images * step / args.batch_size),
            "step_ms_min": round(1000 * min(times), 1),
            "steps": args.steps,
            "warmup_steps": args.warmup,
            "warmup_s": round(warmup_s, 1),
            "status": "ok",
        }
    except Exception as exc:
        return {
            "arch": arch,
            "precision": precision,
            "phase": phase,
            "status": f"failed: {type(exc).__name__}: {exc}"[:400],
        }
    finally:
        keras.mixed_precision.set_global_policy("float32")


def write_markdown(path: Path, report: dict) -> None:
    lines = [
        "# Training throughput",
        "",
        f"Host: {report['host']['cpu_count']} CPUs, {report['host']['cpu_model']} "
        f"(flags: {', '.join(report['host']['cpu_flags']) or 'none of note'}); other processes used "
        f"{report['host']['others_cpus']} CPUs while it ran; load average before/after "
        f"{report['host']['loadavg_before']} / {report['host']['loadavg_after']}; TensorFlow "
        f"{report['host']['tensorflow']}, Keras {report['host']['keras']}. Batch {report['config']['batch_size']}, "
        f"{report['config']['warmup']} warm-up + {report['config']['steps']} timed steps (median), synthetic 48x48x1 input.",
        "",
    ]
    if report["note"]:
        lines += [f"**Note:** {report['note']}", ""]
    lines += [
        "| arch | phase | precision | params | trainable | images/s | ms/step | s/epoch |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["results"]:
        if r["status"] != "ok":
            lines.append(f"| {r['arch']} | {r['phase']} | {r['precision']} | | | {r['status']} | |")
            continue
        arch = (
            r["arch"]
            + (f" (base {r['base_size']})" if r["base_size"] else "")
            + (f" (w{r['width']})" if r["width"] else "")
        )
        lines.append(
            f"| {arch} | {r['phase']} | {r['precision']} | {r['params'] / 1e6:.2f} M | "
            f"{r['trainable_params'] / 1e6:.2f} M | {r['images_per_s']:.1f} | {r['step_ms_median']:.0f} | "
            f"{r.get('seconds_per_epoch', '')} |"
        )
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", default=",".join(ARCHS), help=f"comma separated subset of {', '.join(ARCHS)}")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="comma separated: float32, mixed_bfloat16")
    p.add_argument("--phases", default="frozen,finetune", help="transfer-model phases to time: frozen, finetune")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--base-size", type=int, default=96, help="input side of transfer backbones")
    p.add_argument("--width", type=int, default=32, help="feednet width")
    p.add_argument("--epoch-images", type=int, default=28709, help="images per epoch for the s/epoch column")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    p.add_argument("--name", default="train_throughput", help="output file name (without .json / .md)")
    args = p.parse_args(argv)
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    precisions = [x.strip() for x in args.precisions.split(",") if x.strip()]
    phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    bad = (
        [a for a in archs if a not in ARCHS]
        + [x for x in precisions if x not in PRECISIONS]
        + [x for x in phases if x not in ("frozen", "finetune")]
    )
    if bad or not archs or not precisions or args.steps < 1 or args.warmup < 0 or args.batch_size < 1:
        p.error(f"bad choice(s): {bad or 'empty list or non-positive count'}")

    load_before = os.getloadavg()
    cpu_before = cpu_snapshot()
    import keras
    import tensorflow as tf

    from ml.models import TRANSFER_MODELS

    tf.get_logger().setLevel("ERROR")  # one retrace per configuration is expected here

    results = []
    for arch in archs:
        for precision in precisions:
            for phase in phases if arch in TRANSFER_MODELS else ["full"]:
                row = measure(arch, precision, phase, args)
                results.append(row)
                shown = (
                    f"{row['images_per_s']:8.1f} img/s  {row['step_ms_median']:7.1f} ms/step"
                    if row["status"] == "ok"
                    else row["status"]
                )
                print(f"{arch:<11} {phase:<8} {precision:<15} {shown}", flush=True)
    load_after = os.getloadavg()
    others_cpus = others_cpu_share(cpu_before, cpu_snapshot())
    cpuinfo = read_cpuinfo()
    report = {
        "benchmark": "train_throughput",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": {
            "batch_size": args.batch_size,
            "warmup": args.warmup,
            "steps": args.steps,
            "base_size": args.base_size,
            "width": args.width,
            "epoch_images": args.epoch_images,
            "input": [48, 48, 1],
            "optimizer": "AdamW",
        },
        "host": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in load_after],
            "others_cpus": None if others_cpus is None else round(others_cpus, 2),
            "cpu_model": cpu_model(cpuinfo),
            "cpu_flags": sorted(cpu_flags(cpuinfo) & set(SPEED_FLAGS)),
        },
        "note": busy_note(others_cpus, load_before),
        "results": results,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    write_markdown(out / f"{args.name}.md", report)
    print(f"wrote {out / args.name}.json and .md" + (f"\nNOTE: {report['note']}" if report["note"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
