"""Calibrate and measure an artifact in its other test-time-augmentation mode, and record it in the card.

    python -m ml.tta_mode ml/artifacts/ferplus      # adds/refreshes the card's "other_tta" entry

Flip TTA doubles the work per face. An operator on a slow CPU may turn it off
(`EmotionClassifier.load(path, tta=False)`, or FEEDMOOD_MODEL_TTA=off in the service), and the
probabilities stay calibrated only with a temperature fitted for that mode. `ml.export` writes
`other_tta` itself; this command adds it to an artifact exported before it did, checking first that
the data reproduces the card's recorded PublicTest accuracy. Nothing else in the card changes
besides an `amendments` entry naming this command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path

from ml import cli
from ml.card import write_card
from ml.cli import DEFAULT_DATA, positive_int
from ml.figures import checked_artifact, measure_other_tta


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ml.tta_mode", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("artifact", help="exported artifact directory (model_card.json inside)")
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with fer2013.csv(.gz) [+ fer2013new.csv]")
    p.add_argument("--bench-runs", type=positive_int, default=10, help="timed batch-64 calls per mode")
    p.add_argument("--latency-runs", type=positive_int, default=50, help="timed single-face calls per mode")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    card_path, card, public, accuracy = checked_artifact(Path(args.artifact), args.data)
    directory = card_path.parent
    targets, names = public.targets[card.head], list(public.labels[card.head])
    other = measure_other_tta(
        directory, card, public.images, targets, names, bench_runs=args.bench_runs, latency_runs=args.latency_runs
    )
    # Earlier entries of this command described the block replaced now: keep the other amendments and this one.
    amendments = [
        a for a in card.extra.get("amendments", []) if not str(a.get("command", "")).startswith("python -m ml.tta_mode")
    ]
    amendments.append(
        {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": "python -m ml.tta_mode " + shlex.join(argv_used),
            "what": f"wrote other_tta (test-time flip {'on' if other['tta'] else 'off'}: its temperature and metrics)",
        }
    )
    card = card.updated(other_tta=other, amendments=amendments)
    write_card(directory, card)
    s = other["speed"]
    print(
        f"{card.name}: tta {'on' if card.tta else 'off'} {100 * accuracy:.2f}% "
        f"{s['card_mode_faces_per_s_b64']:.0f} faces/s; tta {'on' if other['tta'] else 'off'} "
        f"{100 * other['accuracy']:.2f}% {s['faces_per_s_b64']:.0f} faces/s, T={other['temperature']:.3f}, "
        f"ECE {other['ece_before_calibration']:.4f} -> {other['ece_after_calibration']:.4f}; wrote {card_path}"
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
