"""Where an artifact comes from: its training run, the artifacts that run built on, the commands that
reproduce it from the shared data, and the library versions that made it."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import platform
import shlex
from pathlib import Path

import numpy as np

from ml.card import CardError, card_path_of, load_card


def training_info(checkpoint: Path) -> dict:
    """What the run directory of `checkpoint` says about training (train_meta.json, wall_seconds.json, log.csv)."""
    run = checkpoint.parent
    info: dict = {
        "checkpoint": str(checkpoint),
        "checkpoint_mtime": dt.datetime.fromtimestamp(checkpoint.stat().st_mtime, dt.UTC).isoformat(timespec="seconds"),
    }
    meta_path = run / "train_meta.json"
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError:
            meta = {}
        args = meta.get("args", {})
        info.update(
            {
                "command": meta.get("command"),
                "model": meta.get("model"),
                "label_modes": meta.get("label_modes"),
                "epochs_run": meta.get("epochs_run"),
                "epochs_planned": args.get("epochs"),
                "train_wall_seconds_total": meta.get("train_wall_seconds_total"),
                "data": meta.get("data"),
                "model_args": {
                    k: args.get(k)
                    for k in (
                        "model",
                        "width",
                        "stage_widths",
                        "stage_convs",
                        "weights",
                        "base_size",
                        "batch_size",
                        "lr",
                        "optimizer",
                        "weight_decay",
                        "label_smoothing",
                        "class_weights",
                        "precision",
                        "seed",
                        "freeze_epochs",
                        "finetune_lr",
                        "ema",
                        "random_erasing",
                        "mixup",
                        "cutmix",
                        "mix_prob",
                        "int8_weights",
                    )
                    if k in args
                },
                "tf_version": meta.get("tf_version"),
                "keras_version": meta.get("keras_version"),
                "train_host": {k: meta[k] for k in ("cpu_model", "cpu_count") if k in meta},
            }
        )
        # What the run recorded when it started; runs from before that record: the artifacts as they are now.
        built_on = meta.get("built_on") or {}
        initialized_from = built_on.get("initialized_from") or (
            artifact_info(args["init_from"]) if args.get("init_from") and Path(args["init_from"]).is_dir() else None
        )
        if initialized_from:  # recorded even when that directory has since been moved or deleted
            info["initialized_from"] = initialized_from
        if args.get("teacher"):
            info["distilled_from"] = built_on.get("distilled_from") or [
                teacher_info(head, path) for head, path in args["teacher"]
            ]
            info["distill_alpha"] = args.get("distill_alpha")
            info["teacher_mode"] = args.get("teacher_mode") or "offline"
    else:
        info["note"] = "no train_meta.json next to the checkpoint (training still running or run copied without it)"
    wall_path = run / "wall_seconds.json"
    if wall_path.is_file():
        with contextlib.suppress(json.JSONDecodeError, KeyError):
            info["wall_seconds"] = json.loads(wall_path.read_text())["seconds"]
    log_path = run / "log.csv"
    if log_path.is_file():
        rows = [line for line in log_path.read_text().splitlines()[1:] if line.strip()]
        info["epochs_logged"] = len(rows)
    return info


def artifact_info(path: str) -> dict:
    """An artifact a run built on (``ml.train --teacher`` or ``--init-from``), with its own reproduce chain."""
    info: dict = {"artifact": path}
    card_path = card_path_of(path)
    if card_path.is_file():
        with contextlib.suppress(CardError):
            card = load_card(card_path)
            info.update(
                {
                    "name": card.name,
                    "file_sha256": card.file_sha256,
                    "accuracy": card.accuracy,
                    "reproduce": list(card.reproduce) or None,
                    "train_wall_seconds_all_phases": card.train_wall_seconds,
                }
            )
    else:
        info["note"] = f"{card_path} not found when exporting: its reproduce chain is missing"
    return info


def teacher_info(head: str, path: str) -> dict:
    """The teacher artifact a run distilled from, with its own reproduce chain."""
    return {"head": head, **artifact_info(path)}


def versions() -> dict:
    """The versions of Python and the libraries that convert and run the model."""
    import keras
    import tensorflow as tf

    found = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    for module in ("ai_edge_litert", "onnxruntime", "tf2onnx"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            found[module] = version(module.replace("_", "-"))
    return found


def sha256(path: Path) -> str:
    """The file's SHA-256 (hex)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reproduce_commands(training: dict, argv_used: list[str], members: list[dict]) -> list[str]:
    """Every command from the shared data to this artifact: the members' own, this training run, this export."""
    commands: list[str] = []
    # Everything this run built on exists before it: the artifact it fine-tuned, its teachers, the other members.
    sources = [*filter(None, [training.get("initialized_from")]), *(training.get("distilled_from") or []), *members[1:]]
    for source in sources:
        commands += [c for c in source.get("reproduce") or [] if c not in commands]
    if training.get("command"):
        commands.append(training["command"])
    commands.append("python -m ml.export " + shlex.join(argv_used))
    return commands
