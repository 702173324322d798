"""Export a trained checkpoint as a service artifact: `python -m ml.export --checkpoint runs/x/best.keras --out ml/artifacts/NAME --head ferplus`.

Steps: slice the chosen head out of a (multi-head) checkpoint; convert it to each candidate runtime
format (TFLite float32, TFLite int8 with ~500 Training faces as representative data, ONNX when
tf2onnx/onnxruntime are installed, Keras as the fallback); score every candidate on PublicTest and
time it (faces/s at batch 64, ms for one face) through `ml.runtime`, the code the service runs;
with `--format auto` keep the fastest candidate whose PublicTest accuracy is within 0.3 points of
the Keras float model. Temperature scaling is then fitted on PublicTest: 2-fold cross-calibration
(fit T on one half, ECE on the other) gives the honest before/after ECE reported in the card, and the
T fitted on all PublicTest rows is what ships. The artifact directory gets the one model file,
`model_card.json`, `metrics.json` and `confusion_matrix.png`.

`--ensemble-with DIR` adds the model file(s) of already exported artifacts (same head, labels and
format) as ensemble members: the runtime averages the members' softmax outputs, and calibration,
metrics and speed are those of the whole ensemble.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ml import cli
from ml import data as D
from ml import metrics as M
from ml.evaluate import (
    PROTOCOLS,
    as_float32,
    choose_head,
    head_sizes,
    load_checkpoint,
    load_eval_split,
    resolve_label_mode,
    single_head_model,
)
from ml.models.macs import count_macs
from ml.runtime import BATCH, CARD_NAME, EmotionClassifier, default_threads
from ml.train import DEFAULT_DATA, SPEED_FLAGS, cpu_flags, cpu_model, positive_int, read_cpuinfo

FORMAT_FILES = {
    "tflite": "model.tflite",
    "tflite-int8": "model_int8.tflite",
    "onnx": "model.onnx",
    "keras": "model.keras",
}
CANDIDATES = ("keras", "tflite", "tflite-int8", "onnx")
REFERENCE = "keras"
ACCURACY_TOLERANCE = 0.003  # 0.3 percentage points
INPUT_SPEC = {"shape": [48, 48], "dtype": "uint8", "color": "grayscale", "range": [0, 255]}
PREPROCESSING = (
    "face crop (detector box) -> grayscale -> resize to 48x48 with cv2.INTER_AREA -> uint8 array "
    "(N, 48, 48), pixel values 0..255 unnormalised (the model rescales internally)"
)


# --------------------------------------------------------------------------- conversion


@contextlib.contextmanager
def _quiet():
    """Silence the converters' chatter on stdout (stderr is left alone for real errors)."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _saved_model(model, directory: Path) -> Path:
    path = directory / "saved_model"
    with _quiet():
        model.export(str(path), format="tf_saved_model", verbose=False)
    return path


def to_tflite(model, path: Path, representative: np.ndarray | None = None) -> Path:
    """Convert a single-output Keras model to TFLite (float32, or full-int8 with uint8 input when
    `representative` uint8 faces are given). Goes through a SavedModel, which works with Keras 3."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(_saved_model(model, Path(tmp))))
        if representative is not None:
            faces = representative[..., None].astype(np.float32).copy()
            faces[0, 0, 0, 0], faces[0, 0, 1, 0] = 0.0, 255.0  # pin the input range so uint8 input maps 1:1

            def dataset():
                for face in faces:
                    yield [face[None]]

            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = dataset
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.float32
        with _quiet():
            blob = converter.convert()
    path.write_bytes(blob)
    return path


def to_onnx(model, path: Path) -> Path:
    """Convert with tf2onnx (raises ImportError when tf2onnx is not installed)."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, 48, 48, 1), tf.float32, name="face"),)
    with _quiet():
        tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(path))
    return path


def save_format(model, fmt: str, directory: Path, representative: np.ndarray | None = None) -> Path:
    """Write `model` in runtime format `fmt` into `directory`; returns the model file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FORMAT_FILES[fmt]
    if fmt == "keras":
        model.save(path)
    elif fmt == "tflite":
        to_tflite(model, path)
    elif fmt == "tflite-int8":
        if representative is None:
            raise ValueError("tflite-int8 needs representative faces")
        to_tflite(model, path, representative)
    elif fmt == "onnx":
        to_onnx(model, path)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMAT_FILES)}")
    return path


def write_card(directory: Path, card: dict) -> Path:
    path = directory / CARD_NAME
    path.write_text(json.dumps(card, indent=2, default=str) + "\n")
    return path


def minimal_card(name: str, head: str, labels, fmt: str, tta: bool, temperature: float = 1.0, **extra) -> dict:
    return {
        "name": name,
        "head": head,
        "labels": list(labels),
        "input": INPUT_SPEC,
        "preprocessing": PREPROCESSING,
        "format": fmt,
        "file": FORMAT_FILES[fmt],
        "temperature": temperature,
        "tta": tta,
        **extra,
    }


def make_artifact(
    model,
    fmt: str,
    directory: Path,
    *,
    name: str,
    head: str,
    labels,
    tta: bool = False,
    temperature: float = 1.0,
    representative: np.ndarray | None = None,
    **extra,
) -> Path:
    """Write a loadable artifact (model file + minimal card) for a single-output model."""
    save_format(model, fmt, directory, representative)
    write_card(directory, minimal_card(name, head, labels, fmt, tta, temperature, **extra))
    return directory


# --------------------------------------------------------------------------- measurement


def measure_speed(clf: EmotionClassifier, faces: np.ndarray, batch_runs: int = 10, latency_runs: int = 50) -> dict:
    """faces/s at batch 64 (median over `batch_runs` calls) and ms for one face (median over `latency_runs`).

    Call i takes the i-th batch (face) of `faces`, round robin, so a selective flip pays for the share
    of unsure faces the data has, not that of one batch.
    """
    if len(faces) < BATCH:
        faces = np.resize(faces, (BATCH, *faces.shape[1:]))
    batches = [faces[start : start + BATCH] for start in range(0, len(faces) - BATCH + 1, BATCH)]
    clf.predict_proba(batches[0])  # warm-up: builds the interpreter / traces the function
    clf.predict_proba(faces[:1])
    times = []
    for i in range(batch_runs):
        batch = batches[i % len(batches)]
        start = time.perf_counter()
        clf.predict_proba(batch)
        times.append(time.perf_counter() - start)
    single = []
    for i in range(latency_runs):
        face = faces[i % len(faces) : i % len(faces) + 1]
        start = time.perf_counter()
        clf.predict_proba(face)
        single.append(time.perf_counter() - start)
    return {
        "faces_per_s_b64": round(BATCH / statistics.median(times), 1),
        "ms_per_face_b1": round(1000 * statistics.median(single), 3),
        "batch_runs": batch_runs,
        "latency_runs": latency_runs,
    }


def timing_host() -> dict:
    """What the speed figures depend on: cores, inference threads, load, and the CPU's matrix/vector flags."""
    cpuinfo = read_cpuinfo()
    flags = cpu_flags(cpuinfo)
    return {
        "cpu_model": cpu_model(cpuinfo),
        "cpu_count": os.cpu_count(),
        "threads": default_threads(),
        "loadavg_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        "cpu_flags": [f for f in SPEED_FLAGS if f in flags],
    }


def choose_format(rows: dict[str, dict], prefer: str = "throughput", tolerance: float = ACCURACY_TOLERANCE) -> str:
    """Fastest working format whose accuracy is within `tolerance` of the Keras reference."""
    ok = {f: r for f, r in rows.items() if r.get("status") == "ok"}
    if REFERENCE not in ok:
        raise ValueError("the Keras reference model could not be evaluated")
    floor = ok[REFERENCE]["accuracy"] - tolerance - 1e-12
    eligible = [f for f, r in ok.items() if r["accuracy"] >= floor]
    if prefer == "latency":
        return min(eligible, key=lambda f: ok[f]["ms_per_face_b1"])
    return max(eligible, key=lambda f: ok[f]["faces_per_s_b64"])


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
    card_path = Path(path) / "model_card.json"
    if card_path.is_file():
        with contextlib.suppress(json.JSONDecodeError):
            card = json.loads(card_path.read_text())
            info.update(
                {
                    "name": card.get("name"),
                    "file_sha256": card.get("file_sha256"),
                    "accuracy": (card.get("metrics") or {}).get("accuracy"),
                    "reproduce": card.get("reproduce"),
                    "train_wall_seconds_all_phases": (card.get("training") or {}).get("train_wall_seconds_all_phases"),
                }
            )
    else:
        info["note"] = f"{card_path} not found when exporting: its reproduce chain is missing"
    return info


def teacher_info(head: str, path: str) -> dict:
    """The teacher artifact a run distilled from, with its own reproduce chain."""
    return {"head": head, **artifact_info(path)}


def _versions() -> dict:
    import keras
    import tensorflow as tf

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }
    for module in ("ai_edge_litert", "onnxruntime", "tf2onnx"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[module] = version(module.replace("_", "-"))
    return versions


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


REGRESSION_ROWS = 600


def publictest_metrics(
    raw: np.ndarray,
    calibrated: np.ndarray,
    targets: np.ndarray,
    names,
    mode: str,
    cross: dict,
    temperature: float,
    *,
    tta: bool,
    limit: int | None = None,
    class_bias: list[float] | None = None,
) -> tuple[dict, dict]:
    """The card's `metrics` block for what ships (raw and calibrated PublicTest probabilities), and the
    calibrated `M.evaluate_probs` result it was built from."""
    result = M.evaluate_probs(calibrated, targets, names)
    uncalibrated = M.evaluate_probs(raw, targets, names)
    metrics = {
        "split": "PublicTest",
        "label_mode": mode,
        "protocol": PROTOCOLS[mode],
        "limit": limit,
        "tta": tta,
        "temperature": temperature,
        **({"class_bias": class_bias} if class_bias is not None else {}),
        **{k: v for k, v in result.items() if k != "ece"},
        "loss_uncalibrated": uncalibrated["loss"],
        "ece_uncalibrated": uncalibrated["ece"],
        "ece_calibrated_in_sample": result["ece"],
        "cross_calibration": cross,
        "ece_before_calibration": cross["ece_before"],
        "ece_after_calibration": cross["ece_after"],
        "note": (
            "ece_before/after_calibration are 2-fold cross-calibrated on PublicTest (T fitted on one half, "
            "ECE measured on the other, averaged): the honest estimate. The shipped temperature is fitted on "
            "all PublicTest rows, so 'ece' / ece_calibrated_in_sample is optimistic. PublicTest also chose "
            "the checkpoint during training; PrivateTest is the untouched test set."
            + (
                " With class_bias (fitted with T on all rows) the top class can move, so accuracy is in-sample "
                "too; cross_calibration.accuracy_after is its held-out estimate."
                if class_bias is not None
                else ""
            )
        ),
    }
    return metrics, result


def regression_slice(clf: EmotionClassifier, public, mode: str, rows: int) -> dict:
    """Accuracy of the shipped classifier on the first `rows` PublicTest rows (tests/test_shipped_models.py)."""
    head = D.head_for(mode)
    n = min(rows, len(public))
    probs = clf.predict_proba(public.images[:n])
    accuracy = float((probs.argmax(1) == public.targets[head][:n].argmax(1)).mean())
    return {
        "split": "PublicTest",
        "label_mode": mode,
        "rows": n,
        "selection": "first rows of the protocol's PublicTest set, in file order",
        "accuracy": round(accuracy, 4),
    }


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


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ml.export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--checkpoint", required=True, help=".keras checkpoint written by ml.train")
    p.add_argument("--out", required=True, help="artifact directory to (re)create, e.g. ml/artifacts/feednet-ferplus")
    p.add_argument(
        "--head",
        choices=("fer2013", "ferplus"),
        default=None,
        help="head to export (default: the one --labels scores, else ferplus when present)",
    )
    p.add_argument(
        "--labels",
        choices=D.LABEL_MODES,
        default=None,
        help="evaluation protocol (default: fer2013 for the fer2013 head, ferplus-majority for ferplus)",
    )
    p.add_argument(
        "--format",
        choices=("auto", *CANDIDATES),
        default="auto",
        help="runtime format; auto = fastest within 0.3 accuracy points of the Keras float model",
    )
    p.add_argument(
        "--prefer",
        choices=("throughput", "latency"),
        default="throughput",
        help="what 'fastest' means for --format auto: faces/s at batch 64, or ms for one face",
    )
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with fer2013.csv(.gz) [+ fer2013new.csv]")
    p.add_argument("--tta", action="store_true", help="ship with horizontal-flip test-time augmentation")
    p.add_argument("--name", default=None, help="model name in the card (default: the --out directory name)")
    p.add_argument("--limit", type=positive_int, default=None, help="use only the first N PublicTest rows (smoke runs)")
    p.add_argument("--calibration-faces", type=positive_int, default=500, help="Training faces for int8 quantisation")
    p.add_argument("--bench-runs", type=positive_int, default=10, help="timed batch-64 calls per format")
    p.add_argument("--latency-runs", type=positive_int, default=50, help="timed single-face calls per format")
    p.add_argument("--seed", type=int, default=0, help="seed for the calibration split and int8 sample")
    p.add_argument(
        "--ensemble-with",
        action="append",
        default=[],
        metavar="DIR",
        help="exported artifact whose model file(s) join this one as ensemble members (repeatable; "
        "same head, labels and format; may be --out itself)",
    )
    return p


def ensemble_members(directories: list[str], *, head: str, labels: list[str], fmt: str) -> list[tuple[Path, dict]]:
    """(model file, its card) of every member of the given artifacts, checked against this export."""
    members = []
    for directory in map(Path, directories):
        card_path = directory / CARD_NAME
        if not card_path.is_file():
            raise FileNotFoundError(f"--ensemble-with {directory}: no {CARD_NAME} there")
        card = json.loads(card_path.read_text())
        problems = [
            f"{key} {card.get(key)!r} != {want!r}"
            for key, want in (("head", head), ("labels", list(labels)), ("format", fmt))
            if card.get(key) != want
        ]
        if problems:
            raise ValueError(f"--ensemble-with {directory}: {'; '.join(problems)}")
        for name in [card["file"], *card.get("ensemble", [])]:
            members.append((directory / name, card))
    return members


def member_alone(model_file: Path, directory: Path, card: dict) -> EmotionClassifier:
    """One member file as an artifact of its own (uncalibrated), to measure it alone."""
    directory.mkdir()
    shutil.copy2(model_file, directory / card["file"])
    write_card(directory, {**card, "temperature": 1.0})
    return EmotionClassifier.load(directory)


def member_provenance(card: dict, file: str) -> dict:
    """Name, training and reproduce chain of one model file of an artifact: its own entry when the
    artifact is an ensemble that borrowed it, else the artifact's training with its members' time taken out."""
    members = card.get("ensemble_members") or []
    entry = next((m for m in members[1:] if m.get("file") == file), None)
    if entry is not None:
        return {
            "card_name": entry.get("card_name"),
            "training": entry.get("training"),
            "reproduce": entry.get("reproduce"),
        }
    training = dict(card.get("training") or {})
    if members[1:] and "train_wall_seconds_all_phases" in training:
        training["train_wall_seconds_all_phases"] = round(
            training["train_wall_seconds_all_phases"]
            - sum((m.get("training") or {}).get("train_wall_seconds_all_phases", 0.0) for m in members[1:]),
            1,
        )
    return {"card_name": card.get("name"), "training": training, "reproduce": card.get("reproduce")}


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / CARD_NAME).is_file())):
        raise ValueError(f"{out} exists and is not a model artifact directory; refusing to overwrite it")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    argv_used = sys.argv[1:] if argv is None else list(argv)
    checkpoint, out = Path(args.checkpoint), Path(args.out)
    if checkpoint.is_dir():
        raise ValueError(f"--checkpoint {checkpoint} is a directory; pass the .keras file (e.g. runs/NAME/best.keras)")
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found")
    _check_out(out)
    name = args.name or out.resolve().name
    started = time.time()
    from ml.tta_mode import measure_other_tta  # ml.tta_mode imports this module, so not at the top

    model = load_checkpoint(checkpoint)
    sizes = head_sizes(model)
    head = choose_head(sizes, args.head, args.labels)
    mode = resolve_label_mode(head, args.labels)
    sub = as_float32(single_head_model(model, head))
    public = load_eval_split(args.data, mode, "PublicTest", head, args.limit)
    names = public.labels[head]
    targets = public.targets[head]
    y = targets.argmax(axis=1)
    rng = np.random.default_rng(args.seed)

    formats = CANDIDATES if args.format == "auto" else tuple(dict.fromkeys((REFERENCE, args.format)))
    representative = None
    if "tflite-int8" in formats:
        train_images = D.load_split(args.data, mode, "Training").images
        pick = rng.choice(len(train_images), size=min(args.calibration_faces, len(train_images)), replace=False)
        representative = train_images[np.sort(pick)]

    print(
        f"exporting head {head} of {checkpoint} ({len(names)} classes); PublicTest {len(public)} rows, protocol {mode}",
        flush=True,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    raw: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.", dir=out.parent) as tmp:
        work = Path(tmp)
        for fmt in formats:
            directory = work / fmt
            t0 = time.time()
            try:
                make_artifact(
                    sub,
                    fmt,
                    directory,
                    name=name,
                    head=head,
                    labels=names,
                    tta=args.tta,
                    representative=representative,
                    label_mode=mode,
                )
                clf = EmotionClassifier.load(directory, temperature=1.0)
                raw[fmt] = clf.predict_proba(public.images)
                speed = measure_speed(clf, public.images, args.bench_runs, args.latency_runs)
                del clf
            except Exception as exc:
                if fmt == REFERENCE or fmt == args.format:
                    raise
                rows[fmt] = {"format": fmt, "status": f"failed: {type(exc).__name__}: {str(exc)[:300]}"}
                print(f"  {fmt:<12} FAILED ({type(exc).__name__}: {str(exc)[:120]})", flush=True)
                continue
            file = directory / FORMAT_FILES[fmt]
            rows[fmt] = {
                "format": fmt,
                "status": "ok",
                "file": file.name,
                "size_bytes": file.stat().st_size,
                "accuracy": M.accuracy(raw[fmt], y),
                **speed,
                "convert_and_measure_s": round(time.time() - t0, 1),
            }
            r = rows[fmt]
            print(
                f"  {fmt:<12} acc {100 * r['accuracy']:6.2f}%  {r['faces_per_s_b64']:8.1f} faces/s @b64  "
                f"{r['ms_per_face_b1']:7.2f} ms/face @b1  {r['size_bytes'] / 1e6:6.2f} MB",
                flush=True,
            )
        for r in rows.values():
            if r.get("status") == "ok":
                r["accuracy_delta_vs_keras_points"] = round(100 * (r["accuracy"] - rows[REFERENCE]["accuracy"]), 3)
        chosen = choose_format(rows, args.prefer) if args.format == "auto" else args.format
        print(f"chosen format: {chosen}", flush=True)

        stage = work / "artifact"
        stage.mkdir()
        model_file = shutil.copy2(work / chosen / FORMAT_FILES[chosen], stage / FORMAT_FILES[chosen])
        ensemble: dict = {}
        probs = raw[chosen]
        if args.ensemble_with:
            members = ensemble_members(args.ensemble_with, head=head, labels=names, fmt=chosen)
            files = []
            for i, (source, _) in enumerate(members, start=1):
                files.append(f"member{i}_{FORMAT_FILES[chosen]}")
                shutil.copy2(source, stage / files[-1])
            write_card(stage, minimal_card(name, head, names, chosen, args.tta, 1.0, ensemble=files))
            probs = EmotionClassifier.load(stage, temperature=1.0).predict_proba(public.images)
            ensemble = {
                "ensemble": files,
                "ensemble_members": [
                    {
                        "file": FORMAT_FILES[chosen],
                        "source": str(checkpoint),
                        "accuracy_alone": rows[chosen]["accuracy"],
                    },
                    *(
                        {
                            "file": f,
                            "source": str(source),
                            "accuracy_alone": M.accuracy(
                                member_alone(
                                    source, work / f"alone-{f}", minimal_card(name, head, names, chosen, args.tta)
                                ).predict_proba(public.images),
                                y,
                            ),
                            **member_provenance(card, source.name),
                        }
                        for f, (source, card) in zip(files, members, strict=True)
                    ),
                ],
            }
            print(
                f"ensemble of {1 + len(files)}: acc {100 * M.accuracy(probs, y):.2f}% "
                f"(new member alone {100 * rows[chosen]['accuracy']:.2f}%)",
                flush=True,
            )

        # Calibration on the raw probabilities of what ships.
        cross = M.cross_calibrate(probs, y, folds=2, seed=args.seed)
        temperature = M.fit_temperature(probs, y)
        card = minimal_card(
            name,
            head,
            names,
            chosen,
            args.tta,
            temperature,
            label_mode=mode,
            **({"ensemble": ensemble["ensemble"]} if ensemble else {}),
        )
        write_card(stage, card)
        final = EmotionClassifier.load(stage)
        calibrated = final.predict_proba(public.images)
        metrics, result = publictest_metrics(
            probs, calibrated, targets, names, mode, cross, temperature, tta=args.tta, limit=args.limit
        )
        training = training_info(checkpoint)
        training["train_wall_seconds_all_phases"] = round(
            (training.get("wall_seconds") or training.get("train_wall_seconds_total") or 0.0)
            + ((training.get("initialized_from") or {}).get("train_wall_seconds_all_phases") or 0.0)
            + sum(
                (m.get("training") or {}).get("train_wall_seconds_all_phases", 0.0)
                for m in ensemble.get("ensemble_members", [])[1:]
            ),
            1,
        )
        card.update(
            {
                "schema_version": 1,
                "file_bytes": Path(model_file).stat().st_size,
                "file_sha256": _sha256(Path(model_file)),
                "cost": {"params": int(sub.count_params()), "macs_per_face": count_macs(sub)},
                "output": "calibrated probabilities: softmax(log(p) / temperature) of the model's softmax p "
                "(p averaged with the horizontally flipped face first when tta is true)",
                "metrics": metrics,
                "formats": [rows[f] for f in formats],
                "format_selection": {
                    "mode": args.format,
                    "prefer": args.prefer,
                    "reference": REFERENCE,
                    "tolerance_points": 100 * ACCURACY_TOLERANCE,
                    "rule": "fastest format whose PublicTest accuracy is within 0.3 points of the Keras float model"
                    if args.format == "auto"
                    else "format chosen explicitly with --format",
                    "timing_host": timing_host(),
                },
                "training": training,
                "reproduce": reproduce_commands(training, argv_used, list(ensemble.get("ensemble_members", []))),
                "regression_slice": regression_slice(final, public, mode, REGRESSION_ROWS),
                "other_tta": measure_other_tta(
                    stage,
                    card,
                    public.images,
                    targets,
                    list(names),
                    seed=args.seed,
                    bench_runs=args.bench_runs,
                    latency_runs=args.latency_runs,
                ),
                **(
                    {
                        "ensemble_members": ensemble["ensemble_members"],
                        "speed": measure_speed(final, public.images, args.bench_runs, args.latency_runs),
                    }
                    if ensemble
                    else {}
                ),
                "export_command": "python -m ml.export " + shlex.join(argv_used),
                "export_argv": ["python", "-m", "ml.export", *argv_used],
                "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "versions": _versions(),
            }
        )
        write_card(stage, card)
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        M.save_confusion_png(
            result["confusion_matrix"],
            names,
            stage / "confusion_matrix.png",
            f"{name} ({chosen}) {head} on PublicTest ({mode}): acc {100 * result['accuracy']:.1f}%",
        )
        if out.exists():
            shutil.rmtree(out)
        stage.rename(out)

    print(
        M.format_report(
            result,
            f"{name}: {chosen}, head {head}, PublicTest ({mode}), T={temperature:.3f}, "
            f"tta={'on' if args.tta else 'off'}",
        )
    )
    print(
        f"ECE (2-fold cross-calibrated on PublicTest): before {cross['ece_before']:.4f} -> after {cross['ece_after']:.4f}"
    )
    other = card["other_tta"]
    print(
        f"with test-time flip {'on' if other['tta'] else 'off'}: acc {100 * other['accuracy']:.2f}%, "
        f"T={other['temperature']:.3f}, ECE {other['ece_before_calibration']:.4f} -> "
        f"{other['ece_after_calibration']:.4f}, {other['speed']['faces_per_s_b64']:.0f} faces/s at batch 64"
    )
    print(f"wrote {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))}) in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    cli.run(main)
