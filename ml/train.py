"""Train a FER model: `python -m ml.train --model cnn --epochs 30`.

Trains on the Training split and validates on PublicTest (PrivateTest is never touched), or on a
stratified `--val-split` share of Training for a dataset with a train split only.
Several `--labels` (comma separated) train one backbone with one softmax head per label set.
Outputs in `--out`: `best.keras` (best validation accuracy), `last.keras`, `log.csv`,
TensorBoard logs in `tb/`, `backup/` for resuming after a kill (`--resume` continues the exact
data stream), `train_meta.json`, and `val_metrics.json`: the end-of-training report of the best
checkpoint on the validation data (accuracy, loss, precision, recall, F1, weighted F1, per class,
confusion matrix), also printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml import cli
from ml import data as D
from ml import metrics as M
from ml.cli import DEFAULT_DATA, positive_float, positive_int
from ml.distill import (
    DistillError,
    OnlineTeacher,
    agreement,
    blend_targets,
    check_alpha,
    parse_teacher,
    teacher_probabilities,
)
from ml.hostinfo import bf16_warning, cpu_model, read_cpuinfo
from ml.provenance import artifact_info, teacher_info
from ml.warmstart import WarmStartError, feednet_from_artifact, feednet_shape, reshape_feednet

MODELS = ("cnn", "resnet50", "resnet50v2", "vgg16", "feednet")
#: Other names the seeds' instructions use for an architecture.
MODEL_ALIASES = {"resnet": "resnet50"}
LABEL_CHOICES = ("fer2013", "ferplus-majority", "ferplus-distribution")


def parse_labels(value: str) -> tuple[str, ...]:
    modes = tuple(part.strip() for part in value.split(",") if part.strip())
    bad = [mode for mode in modes if mode not in LABEL_CHOICES]
    if not modes or bad:
        raise argparse.ArgumentTypeError(
            f"invalid label set {value!r}; choose from {', '.join(LABEL_CHOICES)} (comma-separate for multi-task)"
        )
    return modes


def positive_ints(value: str) -> tuple[int, ...]:
    """A comma-separated list of positive integers, one per FeedNet stage: "32,64,128,192"."""
    try:
        numbers = tuple(int(part) for part in value.split(","))
    except ValueError:
        numbers = ()
    if not numbers or min(numbers) <= 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers (one per stage), got {value!r}")
    return numbers


def non_negative_float(value: str) -> float:
    number = float(value)
    if not 0.0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {value}")
    return number


def fraction(value: str) -> float:
    number = float(value)
    if not 0.0 < number < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {value}")
    return number


def unit_interval(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return number


def ema_momentum(value: str) -> float:
    m = float(value)
    if not 0.0 <= m < 1.0:
        raise argparse.ArgumentTypeError(f"EMA momentum must be in [0, 1), got {value}")
    return m


def parse_teacher_arg(value: str) -> tuple[str, str]:
    try:
        return parse_teacher(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ml.train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model",
        required=True,
        choices=MODELS + tuple(MODEL_ALIASES),
        help="architecture to train (resnet = resnet50)",
    )
    p.add_argument(
        "--labels",
        type=parse_labels,
        default=("fer2013",),
        help="fer2013 | ferplus-majority | ferplus-distribution, comma separated for multi-task heads",
    )
    p.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help="directory with fer2013.csv(.gz) [+ fer2013new.csv] or train/<emotion>/ folders",
    )
    p.add_argument("--out", default="runs/latest", help="output directory")
    p.add_argument("--epochs", type=positive_int, default=30)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=1e-3, help="peak learning rate")
    p.add_argument("--optimizer", choices=("adamw", "adam", "sgd"), default="adamw")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--class-weights", choices=("balanced", "sqrt", "none"), default="balanced")
    p.add_argument("--no-augment", action="store_true", help="disable training augmentation")
    p.add_argument(
        "--random-erasing",
        type=unit_interval,
        default=0.0,
        metavar="P",
        help="after the affine warp, fill one random rectangle of each image with noise, with probability P",
    )
    p.add_argument(
        "--photo-degrade",
        type=unit_interval,
        default=0.0,
        metavar="P",
        help="after the affine warp, spoil images as photos do (low resolution, blur, JPEG, lighting, noise; "
        "ml.augment.photo_degrade), each step with probability P",
    )
    p.add_argument(
        "--mixup",
        type=non_negative_float,
        default=0.0,
        metavar="ALPHA",
        help="mixup: blend images and targets with a batch partner, lam ~ Beta(ALPHA, ALPHA) (0 = off)",
    )
    p.add_argument(
        "--cutmix",
        type=non_negative_float,
        default=0.0,
        metavar="ALPHA",
        help="CutMix: paste a box of a batch partner, area share 1 - lam, lam ~ Beta(ALPHA, ALPHA) (0 = off); "
        "with --mixup too, each image takes one of the two",
    )
    p.add_argument(
        "--mix-prob",
        type=unit_interval,
        default=1.0,
        metavar="P",
        help="share of training images that --mixup / --cutmix mix (default 1)",
    )
    p.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (0 = off)")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--deterministic", action="store_true", help="enable TF op determinism (slower)")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32")
    p.add_argument("--strategy", choices=("default", "mirrored", "multiworker"), default="default")
    p.add_argument("--resume", action="store_true", help="continue from the backup in --out after an interruption")
    p.add_argument(
        "--stop-after",
        type=positive_int,
        default=None,
        help="end this invocation after epoch N of the --epochs schedule (time-boxed sessions; continue with --resume)",
    )
    p.add_argument(
        "--init-from",
        default=None,
        help="start from the weights of this .keras checkpoint (same architecture and heads), or fine-tune "
        "a shipped single-network FeedNet artifact directory (one --labels mode for its head; see ml.warmstart)",
    )
    p.add_argument(
        "--limit",
        type=positive_int,
        default=None,
        help="use only N training and N validation images, drawn with each class's share (smoke runs)",
    )
    p.add_argument(
        "--val-split",
        type=fraction,
        default=None,
        metavar="F",
        help="validate on a stratified share F of the training images instead of PublicTest (for "
        "datasets with a train split only, e.g. 0.1)",
    )
    p.add_argument("--width", type=positive_int, default=None, help="feednet width (default 32)")
    p.add_argument(
        "--stage-widths",
        type=positive_ints,
        default=None,
        metavar="W0,W1,...",
        help="feednet channels per stage (default width*1,2,4,8); with an --init-from artifact, its "
        "stages are narrowed to these (largest-L1 channels kept, see ml.warmstart.reshape_feednet)",
    )
    p.add_argument(
        "--stage-convs",
        type=positive_ints,
        default=None,
        metavar="C0,C1,...",
        help="feednet convs per stage (default 2 each); with an --init-from artifact, each stage keeps its first "
        "convs, and convs beyond the artifact's start as identities (the same function, deeper)",
    )
    p.add_argument("--weights", default=None, help="local ImageNet weights file for transfer models (never downloaded)")
    p.add_argument("--base-size", type=positive_int, default=96, help="input side of transfer backbones")
    p.add_argument(
        "--freeze-epochs", type=int, default=5, help="transfer models: epochs with the base frozen before fine-tuning"
    )
    p.add_argument(
        "--finetune-lr", type=positive_float, default=1e-4, help="transfer models: learning rate of the fine-tune phase"
    )
    p.add_argument(
        "--teacher",
        type=parse_teacher_arg,
        action="append",
        default=[],
        metavar="HEAD=ARTIFACT",
        help="distil from an exported artifact into HEAD (fer2013 or ferplus); repeatable",
    )
    p.add_argument(
        "--distill-alpha",
        type=float,
        default=0.5,
        help="weight of the teacher's probabilities in the training targets, in [0, 1]",
    )
    p.add_argument(
        "--teacher-mode",
        choices=("offline", "online"),
        default="offline",
        help="offline: the teacher scores the un-augmented images once (cached); "
        "online: it scores every augmented batch (see ml.distill)",
    )
    p.add_argument(
        "--ema",
        type=ema_momentum,
        default=0.0,
        metavar="MOMENTUM",
        help="keep an exponential moving average of the weights (e.g. 0.998) and validate, checkpoint "
        "and save that average instead of the raw weights (0 = off)",
    )
    p.add_argument(
        "--int8-weights",
        action="store_true",
        help="quantization-aware training: conv layers compute with their kernels rounded to the int8 "
        "grid the export uses (straight-through gradient; see ml.quant). For fine-tuning an "
        "int8-bound network; feednet and cnn only",
    )
    p.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    return p


def check_teacher_heads(args: argparse.Namespace, train) -> None:
    """--distill-alpha in range, and every --teacher aimed at a head this run trains."""
    check_alpha(args.distill_alpha)  # before the teachers score anything
    for head, artifact in args.teacher:
        if head not in train.targets:
            raise DistillError(
                f"--teacher {head}={artifact}: this run has no {head!r} head (heads: {', '.join(train.targets)})"
            )


def online_teachers(args: argparse.Namespace, train) -> list:
    """One ml.distill.OnlineTeacher per --teacher, for the training pipeline."""
    check_teacher_heads(args, train)
    return [OnlineTeacher(head, artifact, train.labels[head], args.distill_alpha) for head, artifact in args.teacher]


def distil(args: argparse.Namespace, train) -> None:
    """Blend each --teacher's probabilities into its head's training targets (see ml.distill)."""
    check_teacher_heads(args, train)
    for head, artifact in args.teacher:
        started = time.time()
        probs = teacher_probabilities(train.images, artifact, train.labels[head], Path(args.out) / "teachers")
        valid = train.weights[head] > 0
        print(
            f"teacher {artifact} -> head {head}: agrees with the labels on {agreement(train.targets[head], valid, probs):.1%} "
            f"of {int(valid.sum())} training images ({time.time() - started:.0f} s)",
            flush=True,
        )
        train.targets[head] = blend_targets(train.targets[head], valid, probs, args.distill_alpha)


def artifacts_built_on(args: argparse.Namespace) -> dict:
    """The cards (name, sha256, accuracy, reproduce chain) of the --init-from artifact and the --teacher artifacts."""
    built_on: dict = {"distilled_from": [teacher_info(head, path) for head, path in args.teacher]}
    if args.init_from and Path(args.init_from).is_dir():
        built_on["initialized_from"] = artifact_info(args.init_from)
    return built_on


def check_stage_args(args: argparse.Namespace) -> None:
    """--stage-widths / --stage-convs: FeedNet only, one entry per stage, and not mixed with --width."""
    given = [
        flag for flag, value in (("--stage-widths", args.stage_widths), ("--stage-convs", args.stage_convs)) if value
    ]
    if given and args.model != "feednet":
        raise ValueError(f"{' and '.join(given)} apply to --model feednet only, not {args.model}")
    if args.stage_widths and args.width:
        raise ValueError("pass --width or --stage-widths, not both")
    if args.stage_widths and args.stage_convs and len(args.stage_widths) != len(args.stage_convs):
        raise ValueError(
            f"--stage-widths has {len(args.stage_widths)} stages and --stage-convs {len(args.stage_convs)}"
        )
    if given and args.init_from and Path(args.init_from).is_file():
        raise ValueError(
            f"{' and '.join(given)} with an --init-from checkpoint: a .keras checkpoint fixes the shape; "
            "narrow a shipped artifact directory instead"
        )


def artifact_model(args: argparse.Namespace, heads: list[str]):
    """The folded FeedNet of the --init-from artifact, checked against this run's architecture and head, and
    narrowed or deepened to --stage-widths / --stage-convs when given (the artifact's own value for the one not given)."""
    if args.model != "feednet":
        raise WarmStartError(f"--init-from {args.init_from}: artifacts seed --model feednet only, not {args.model}")
    model, card = feednet_from_artifact(args.init_from)
    if heads != [card.head]:
        raise WarmStartError(
            f"--init-from {args.init_from}: the artifact has one {card.head!r} head; this run "
            f"trains {', '.join(heads)} (pass one --labels mode for that head)"
        )
    if args.stage_widths or args.stage_convs:
        from ml.models.feednet import stage_plan  # imports Keras

        widths, counts = feednet_shape(model)
        try:
            target = stage_plan(
                widths[0],
                counts[0],
                len(widths),
                stage_widths=args.stage_widths or widths,
                stage_convs=args.stage_convs or counts,
            )
        except ValueError as error:
            raise WarmStartError(f"--init-from {args.init_from}: {error}") from error
        model = reshape_feednet(model, *target)
    return model


def trained_label_modes(requested: tuple[str, ...], train) -> tuple[str, ...]:
    """The label mode of each head the data really loaded: class folders with a contempt folder train the
    8-class FER+ head (hard labels, i.e. ferplus-majority) even when --labels asked for fer2013."""
    by_head = {D.head_for(mode): mode for mode in requested}
    return tuple(by_head.get(head, "ferplus-majority" if head == "ferplus" else "fer2013") for head in train.targets)


def load_data(args: argparse.Namespace):
    """(train, val, label modes trained, validation label modes, where validation comes from)."""
    train = D.load_split(args.data, args.labels, "Training")
    modes = trained_label_modes(args.labels, train)
    if modes != tuple(args.labels):
        print(
            f"note: the class folders hold {', '.join(train.labels[h][-1] for h in train.labels)}-style labels: "
            f"training {', '.join(modes)} ({', '.join(f'{h} {len(v)} classes' for h, v in train.labels.items())})",
            file=sys.stderr,
            flush=True,
        )
    # Validation follows the evaluation protocol: FER+ heads are scored on majority labels.
    val_modes = tuple("ferplus-majority" if m.startswith("ferplus") else m for m in modes)
    if args.val_split:
        train, val = D.stratified_holdout(train, args.val_split, args.seed)
        source = f"Training: a stratified {args.val_split:g} share held out (seed {args.seed})"
    else:
        try:
            val = D.load_split(args.data, val_modes, "PublicTest")
        except D.DataError as exc:
            raise D.DataError(
                f"{exc}; to validate on part of the training images instead, pass --val-split 0.1"
            ) from exc
        source = "PublicTest"
    if args.limit:
        train, val = D.stratified_subset(train, args.limit, args.seed), D.stratified_subset(val, args.limit, args.seed)
    return train, val, modes, val_modes, source


def resumed_epoch(backup: Path) -> int:
    """The epoch a Keras BackupAndRestore directory resumes at (0 without a backup)."""
    path = backup / "training_metadata.json"
    return int(json.loads(path.read_text())["epoch"]) if path.is_file() else 0


def finetune_note(args: argparse.Namespace) -> str | None:
    """The message for a transfer run whose --epochs leave no fine-tuning phase."""
    if args.freeze_epochs > 0 and args.epochs <= args.freeze_epochs:
        return (
            f"note: --epochs {args.epochs} <= --freeze-epochs {args.freeze_epochs}: the {args.model} base stays "
            f"frozen and no fine-tuning phase runs (only the head trains); pass --epochs > --freeze-epochs to "
            f"fine-tune the whole network, or --freeze-epochs 0 to train it all from the start"
        )
    return None


#: The summary figures of the end-of-training report kept in train_meta.json (val_metrics.json has them all).
REPORT_KEYS = ("n", "accuracy", "loss", "macro_precision", "macro_recall", "macro_f1", "weighted_f1")


def end_of_training_report(out: Path, model, val, source: str, modes: dict[str, str], batch_size: int) -> dict:
    """Score the best checkpoint (else the final model) on the validation data, print the seeds' metrics for
    each head and write them to val_metrics.json."""
    from ml.checkpoints import load_checkpoint, report_heads  # imports Keras

    best = out / "best.keras"
    report = report_heads(load_checkpoint(best) if best.is_file() else model, val, batch_size)
    name = best.name if best.is_file() else "final weights"
    for head, result in report.items():
        print(
            "\n" + M.format_report(result, f"end of training: {name}, head {head}, on {source} ({modes[head]})"),
            flush=True,
        )
    (out / "val_metrics.json").write_text(
        json.dumps({"checkpoint": name, "validation": source, "label_modes": modes, "metrics": report}, indent=2)
    )
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with a model alias replaced by the architecture it names."""
    args = build_parser().parse_args(argv)
    args.model = MODEL_ALIASES.get(args.model, args.model)
    return args


def class_counts(split) -> dict[str, dict[str, int]]:
    """{head: {class: rows labelled with it}} of a loaded split."""
    counts = {}
    for head, targets in split.targets.items():
        labelled = targets[split.weights[head] > 0].argmax(axis=1)
        counts[head] = {name: int((labelled == k).sum()) for k, name in enumerate(split.labels[head])}
    return counts


TRANSFER = ("resnet50", "resnet50v2", "vgg16")


@dataclass(frozen=True)
class Plan:
    """One run as the command line asks for it, checked before any data or TensorFlow loads."""

    args: argparse.Namespace
    out: Path
    #: The keyword arguments of `ml.models.build_model` for this architecture.
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_transfer(self) -> bool:
        return self.args.model in TRANSFER


def make_plan(args: argparse.Namespace) -> Plan:
    """Check the flags that only some architectures take, and collect the architecture's keyword arguments."""
    if args.weights and args.model not in TRANSFER:
        raise ValueError("--weights applies to transfer models (resnet50, resnet50v2, vgg16) only")
    if args.int8_weights and args.model not in ("feednet", "cnn"):
        raise ValueError(f"--int8-weights applies to feednet and cnn only, not {args.model} (nested base network)")
    check_stage_args(args)
    kwargs: dict[str, Any] = {}
    if args.model in TRANSFER:
        kwargs = {"weights": args.weights, "base_size": args.base_size}
    elif args.model == "feednet":
        given = (("width", args.width), ("stage_widths", args.stage_widths), ("stage_convs", args.stage_convs))
        kwargs = {k: v for k, v in given if v}
    return Plan(args, Path(args.out), kwargs)


@dataclass
class Data:
    """The loaded splits: what trains, what validates, and under which label modes."""

    train: D.Split
    val: D.Split
    label_modes: tuple[str, ...]
    val_modes: tuple[str, ...]
    val_source: str

    @property
    def heads(self) -> list[str]:
        return list(self.train.targets)

    @property
    def single(self) -> bool:
        return len(self.heads) == 1

    @property
    def monitor(self) -> str:
        """The validation figure that picks best.keras and stops early."""
        return "val_accuracy" if self.single else "val_mean_accuracy"


def prepare_output(plan: Plan) -> None:
    """The output directory (a fresh run drops a stale backup), seeds, determinism and precision."""
    import keras
    import tensorflow as tf

    args, out = plan.args, plan.out
    if out.exists() and not args.resume and (out / "backup").exists():
        shutil.rmtree(out / "backup")
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    if args.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy(args.precision)
    warning = None if tf.config.list_physical_devices("GPU") else bf16_warning(args.precision, read_cpuinfo())
    if warning:
        print(warning, file=sys.stderr, flush=True)


@dataclass
class Streams:
    """The training batches (a function of the epoch range, for exact resumption) and the validation set."""

    plan: Plan
    data: Data
    teachers: list
    weights: dict
    val: Any
    steps_per_epoch: int

    def train(self, first: int, last: int):
        """Epochs first..last-1 of the training batches (see make_dataset: resumable exactly)."""
        from ml.pipeline import make_dataset

        args, train = self.plan.args, self.data.train
        return make_dataset(
            train.images,
            train.targets,
            self.weights,
            args.batch_size,
            shuffle=True,
            augment=not args.no_augment,
            erase=args.random_erasing,
            mixup=args.mixup,
            cutmix=args.cutmix,
            mix_prob=args.mix_prob,
            photo=args.photo_degrade,
            seed=args.seed,
            single_output=self.data.single,
            teachers=self.teachers,
            epochs=(first, last),
        )


def make_streams(plan: Plan, data: Data) -> Streams:
    """Distil offline teachers into the targets (or wrap online ones), weight the samples, build the datasets."""
    from ml.pipeline import make_dataset, sample_weights

    args, train, val = plan.args, data.train, data.val
    teachers = online_teachers(args, train) if args.teacher and args.teacher_mode == "online" else []
    if args.teacher and args.teacher_mode == "offline":
        distil(args, train)
    weights = {h: sample_weights(train.targets[h], train.weights[h], args.class_weights) for h in data.heads}
    print(
        f"train {len(train)} images, validate {len(val)} on {data.val_source}; heads: "
        + ", ".join(f"{h} ({len(train.labels[h])} classes)" for h in data.heads),
        flush=True,
    )
    val_ds = make_dataset(
        val.images,
        val.targets,
        val.weights,
        args.batch_size * 2,
        shuffle=False,
        augment=False,
        seed=args.seed,
        single_output=data.single,
    )
    return Streams(plan, data, teachers, weights, val_ds, int(np.ceil(len(train) / args.batch_size)))


def distribution_strategy(name: str):
    """The tf.distribute strategy of --strategy."""
    import tensorflow as tf

    return {
        "default": tf.distribute.get_strategy,
        "mirrored": tf.distribute.MirroredStrategy,
        "multiworker": tf.distribute.MultiWorkerMirroredStrategy,
    }[name]()


def build_network(plan: Plan, data: Data):
    """The network to train: a shipped artifact to fine-tune, or a new one (with extra heads, --init-from
    weights and --int8-weights as asked). Call inside the strategy's scope."""
    from ml import models

    args, heads, labels = plan.args, data.heads, data.train.labels
    if args.init_from and Path(args.init_from).is_dir():  # a shipped artifact, fine-tuned
        model = artifact_model(args, heads)
    else:
        model = models.build_model(args.model, (48, 48, 1), len(labels[heads[0]]), **plan.model_kwargs)
        if not data.single:
            model = models.add_heads(model, {h: len(labels[h]) for h in heads})
        if args.init_from:
            if not Path(args.init_from).is_file():
                raise FileNotFoundError(f"--init-from checkpoint {args.init_from} not found")
            model.load_weights(args.init_from)
    if args.int8_weights:
        from ml.quant import with_int8_weights

        model = with_int8_weights(model)
    return model


def compile_model(model, plan: Plan, data: Data, steps_per_epoch: int, peak_lr: float, epochs: int, warmup: float):
    """Compile with a warmup + cosine schedule over `epochs`, the --optimizer and (with --ema) weight averaging."""
    import keras

    args = plan.args
    total = max(1, steps_per_epoch * epochs)
    warmup_steps = int(min(total // 2, steps_per_epoch * warmup))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak_lr * (0.1 if warmup_steps else 1.0),
        decay_steps=max(1, total - warmup_steps),
        alpha=0.01,
        warmup_target=peak_lr if warmup_steps else None,
        warmup_steps=warmup_steps,
    )
    ema = {"use_ema": True, "ema_momentum": args.ema} if args.ema else {}
    optimizer = {
        "adamw": lambda: keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay, **ema),
        "adam": lambda: keras.optimizers.Adam(schedule, **ema),
        "sgd": lambda: keras.optimizers.SGD(
            schedule, momentum=0.9, nesterov=True, weight_decay=args.weight_decay, **ema
        ),
    }[args.optimizer]()
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing)
    heads = data.heads
    metrics = ["accuracy"] if data.single else {h: ["accuracy"] for h in heads}
    model.compile(
        optimizer=optimizer, loss=loss if data.single else dict.fromkeys(heads, loss), weighted_metrics=metrics
    )


def fit_phase(model, plan: Plan, streams: Streams, phase: str, first: int, last: int) -> None:
    """Train the global epochs first..last-1; --resume continues at the phase's backup, on the same batches."""
    from ml.callbacks import training_callbacks

    args, out = plan.args, plan.out
    backup = out / "backup" / phase
    start = max(first, resumed_epoch(backup)) if args.resume else first
    if start >= last:  # finished by an earlier invocation: its weights (the next phase may have no backup yet)
        if (backup / "latest.weights.h5").is_file():
            model.optimizer.build(model.trainable_variables)
            model.load_weights(backup / "latest.weights.h5")
        return
    callbacks = training_callbacks(
        out,
        phase,
        seed=args.seed,
        heads=streams.data.heads,
        monitor=streams.data.monitor,
        patience=args.patience,
        stop_after=args.stop_after,
        ema=args.ema,
    )
    model.fit(
        streams.train(start, last),
        validation_data=streams.val,
        initial_epoch=first,
        epochs=last,
        steps_per_epoch=streams.steps_per_epoch,
        shuffle=False,
        callbacks=callbacks,
        verbose=args.verbose,
    )


def fit(model, plan: Plan, streams: Streams, strategy) -> None:
    """The fit phases: a transfer model trains its head on the frozen base, then fine-tunes the whole network
    (--freeze-epochs); every other run has one phase."""
    from ml.models.transfer import unfreeze_base

    args, data, steps = plan.args, streams.data, streams.steps_per_epoch
    if plan.is_transfer and args.freeze_epochs > 0:
        phase1 = min(args.freeze_epochs, args.epochs)
        with strategy.scope():
            compile_model(model, plan, data, steps, args.lr, phase1, args.warmup_epochs)
        fit_phase(model, plan, streams, "frozen", 0, phase1)
        stopped = args.stop_after is not None and args.stop_after <= phase1
        if args.epochs > phase1 and not stopped:
            with strategy.scope():
                unfreeze_base(model)
                compile_model(model, plan, data, steps, args.finetune_lr, args.epochs - phase1, 0.0)
            fit_phase(model, plan, streams, "finetune", phase1, args.epochs)
    else:
        with strategy.scope():
            if plan.is_transfer:
                unfreeze_base(model)  # --freeze-epochs 0: the whole network trains from the first epoch
            compile_model(model, plan, data, steps, args.lr, args.epochs, args.warmup_epochs)
        fit_phase(model, plan, streams, "main", 0, args.epochs)


def write_meta(plan: Plan, data: Data, argv: list[str] | None, report: dict, wall: float, built_on: dict) -> None:
    """train_meta.json: the command, the data, the arguments, the validation summary, time and host."""
    import keras
    import tensorflow as tf

    args, out, train, val = plan.args, plan.out, data.train, data.val
    log_rows = (out / "log.csv").read_text().splitlines() if (out / "log.csv").exists() else []
    meta = {
        "command": "python -m ml.train " + shlex.join(sys.argv[1:] if argv is None else argv),
        "model": args.model,
        "label_modes": list(data.label_modes),
        "heads": {h: list(train.labels[h]) for h in data.heads},
        "data": {
            "path": str(Path(args.data).resolve()),
            "train_split": "Training",
            "val_split": data.val_source,
            "train_images": len(train),
            "val_images": len(val),
            "val_label_modes": list(data.val_modes),
            "class_counts": {"train": class_counts(train), "val": class_counts(val)},
        },
        "args": dict(vars(args).items()),
        "epochs_run": max(0, len(log_rows) - 1),
        "val_metrics": {h: {k: r[k] for k in REPORT_KEYS} for h, r in report.items()},
        "train_wall_seconds_this_run": round(wall, 1),
        "precision": args.precision,
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(read_cpuinfo()),
        "built_on": built_on,
    }
    wall_file = out / "wall_seconds.json"
    meta["train_wall_seconds_total"] = json.loads(wall_file.read_text())["seconds"] if wall_file.is_file() else 0.0
    (out / "train_meta.json").write_text(json.dumps(meta, indent=2, default=str))


def main(argv: list[str] | None = None) -> int:
    plan = make_plan(parse_args(argv))
    args = plan.args
    # Data first (numpy only): a bad --data fails in a second, before TensorFlow loads.
    data = Data(*load_data(args))
    note = finetune_note(args) if plan.is_transfer else None
    if note:
        print(note, file=sys.stderr, flush=True)
    prepare_output(plan)
    built_on = artifacts_built_on(args)  # read now: an export may replace these directories before this run ends
    streams = make_streams(plan, data)
    strategy = distribution_strategy(args.strategy)

    started = time.time()
    with strategy.scope():
        model = build_network(plan, data)
    if not args.resume:
        for stale in ("log.csv", "wall_seconds.json"):
            (plan.out / stale).unlink(missing_ok=True)
    fit(model, plan, streams, strategy)
    model.save(plan.out / "last.keras")
    wall = time.time() - started

    modes = dict(zip(data.heads, data.val_modes))
    report = end_of_training_report(plan.out, model, data.val, data.val_source, modes, args.batch_size * 2)
    write_meta(plan, data, argv, report, wall, built_on)
    print(f"done in {wall / 60:.1f} min; best checkpoint {plan.out / 'best.keras'}")
    return 0


if __name__ == "__main__":
    cli.run(main)
