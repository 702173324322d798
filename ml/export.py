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
import datetime as dt
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ml import cli
from ml import data as D
from ml import metrics as M
from ml.card import CARD_NAME, DEFAULT_PIPELINE, PIPELINES, ModelCard, load_card, write_card
from ml.checkpoints import as_float32, choose_head, head_sizes, load_checkpoint, single_head_model
from ml.cli import DEFAULT_DATA, positive_int
from ml.figures import REGRESSION_ROWS, measure_other_tta, publictest_metrics, regression_slice
from ml.formats import CANDIDATES, FORMAT_FILES, make_artifact, minimal_card
from ml.hostinfo import timing_host
from ml.models.cost import count_macs
from ml.protocols import load_eval_split, resolve_label_mode
from ml.provenance import reproduce_commands, sha256, training_info, versions
from ml.runtime import EmotionClassifier
from ml.speed import measure_speed

REFERENCE = "keras"
ACCURACY_TOLERANCE = 0.003  # 0.3 percentage points


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
    p.add_argument(
        "--pipeline",
        choices=tuple(PIPELINES),
        default=DEFAULT_PIPELINE,
        help="photo pipeline (face detector, framing, alignment) the card records for the service to run in front "
        f"of the model (default: {DEFAULT_PIPELINE}, the service's default)",
    )
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


def ensemble_members(directories: list[str], *, head: str, labels: list[str], fmt: str) -> list[tuple[Path, ModelCard]]:
    """(model file, its card) of every member of the given artifacts, checked against this export."""
    members = []
    for directory in map(Path, directories):
        if not (directory / CARD_NAME).is_file():
            raise FileNotFoundError(f"--ensemble-with {directory}: no {CARD_NAME} there")
        card = load_card(directory)
        problems = [
            f"{key} {got!r} != {want!r}"
            for key, got, want in (
                ("head", card.head, head),
                ("labels", list(card.labels), list(labels)),
                ("format", card.format, fmt),
            )
            if got != want
        ]
        if problems:
            raise ValueError(f"--ensemble-with {directory}: {'; '.join(problems)}")
        members += [(directory / name, card) for name in card.files]
    return members


def member_alone(model_file: Path, directory: Path, card: ModelCard) -> EmotionClassifier:
    """One member file as an artifact of its own (uncalibrated), to measure it alone."""
    directory.mkdir()
    shutil.copy2(model_file, directory / card.file)
    write_card(directory, card.updated(temperature=1.0))
    return EmotionClassifier.load(directory)


def member_provenance(card: ModelCard, file: str) -> dict:
    """Name, training and reproduce chain of one model file of an artifact: its own entry when the
    artifact is an ensemble that borrowed it, else the artifact's training with its members' time taken out."""
    members = card.extra.get("ensemble_members") or []
    entry = next((m for m in members[1:] if m.get("file") == file), None)
    if entry is not None:
        return {
            "card_name": entry.get("card_name"),
            "training": entry.get("training"),
            "reproduce": entry.get("reproduce"),
        }
    training = dict(card.training or {})
    if members[1:] and card.train_wall_seconds is not None:
        training["train_wall_seconds_all_phases"] = round(
            card.train_wall_seconds
            - sum((m.get("training") or {}).get("train_wall_seconds_all_phases", 0.0) for m in members[1:]),
            1,
        )
    return {"card_name": card.name, "training": training, "reproduce": list(card.reproduce)}


def _check_out(out: Path) -> None:
    """Refuse to replace anything but an artifact directory."""
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
            pipeline=PIPELINES[args.pipeline].to_json(),
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
        card = card.updated(
            **{
                "file_bytes": Path(model_file).stat().st_size,
                "file_sha256": sha256(Path(model_file)),
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
                "versions": versions(),
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
    other = card.other_tta
    assert other is not None  # written above
    print(
        f"with test-time flip {'on' if other.tta else 'off'}: acc {100 * (other.accuracy or 0.0):.2f}%, "
        f"T={other.temperature:.3f}, ECE {other.extra['ece_before_calibration']:.4f} -> "
        f"{other.extra['ece_after_calibration']:.4f}, {other.extra['speed']['faces_per_s_b64']:.0f} faces/s at batch 64"
    )
    print(f"wrote {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))}) in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    cli.run(main)
