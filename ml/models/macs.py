"""Multiply-accumulates per face of a Keras model, counted from its conv and dense layers.

    python -m ml.models.macs --base-size 64 96 --json bench/results/seed_macs.json

Counts Conv2D, DepthwiseConv2D and Dense layers (nested models included) from their output shapes;
BatchNorm, pooling, activations and the resize are not counted (a few % at most).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ml.models.cost import count_macs

ARCHS = ("cnn", "resnet50", "resnet50v2", "vgg16", "feednet")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ml.models.macs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--archs", nargs="+", choices=ARCHS, default=list(ARCHS))
    p.add_argument("--base-size", nargs="+", type=int, default=[96], help="input sides of the transfer backbones")
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    from ml import models as M

    rows = []
    for arch in args.archs:
        for size in args.base_size if arch in M.TRANSFER_MODELS else [48]:
            kwargs = {"base_size": size} if arch in M.TRANSFER_MODELS else {}
            model = M.build_model(arch, (48, 48, 1), args.classes, **kwargs)
            rows.append(
                {"arch": arch, "input_side": size, "params": int(model.count_params()), "macs": count_macs(model)}
            )
            print(
                f"{arch:<11} {size:>4} px  {rows[-1]['params'] / 1e6:7.2f} M params  {rows[-1]['macs'] / 1e6:9.1f} M MACs",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps({"classes": args.classes, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
