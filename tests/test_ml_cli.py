"""End to end: `python -m ml.train` -> `ml.evaluate` -> `ml.export` -> `ml.runtime`, plus clean CLI errors."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml import labels as L
from ml.card import DEFAULT_PIPELINE, PIPELINES, SCHEMA_VERSION, load_card
from ml.synthetic import faces, write_fer_csv

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    base = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    return {
        **base,
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "FEEDMOOD_CACHE_DIR": str(cache),
        "PYTHONPATH": str(ROOT),
        "FEEDMOOD_INFER_THREADS": "1",
    }


def run(env, module: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_card(directory: Path) -> dict:
    """The card a command wrote, checked against the schema (ml.card), as JSON data."""
    return load_card(directory).to_json()


def assert_clean_error(done: subprocess.CompletedProcess, status: int, message: str) -> None:
    assert done.returncode == status, (done.returncode, done.stderr[-2000:])
    assert message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_fer_csv(tmp_path_factory.mktemp("fer"), n_train=160, n_public=64)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_dir, env):
    """A 1-epoch multi-task FeedNet (width 4) trained by the real CLI."""
    out = tmp_path_factory.mktemp("run")
    done = run(
        env,
        "ml.train",
        "--model",
        "feednet",
        "--width",
        4,
        "--labels",
        "fer2013,ferplus-distribution",
        "--epochs",
        1,
        "--limit",
        128,
        "--batch-size",
        32,
        "--random-erasing",
        0.5,
        "--mixup",
        0.2,
        "--cutmix",
        1.0,
        "--mix-prob",
        0.5,
        "--data",
        data_dir,
        "--out",
        out,
        "--verbose",
        0,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("best.keras", "last.keras", "log.csv", "train_meta.json", "wall_seconds.json"):
        assert (out / name).is_file(), name
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory, trained, data_dir, env):
    out = tmp_path_factory.mktemp("artifacts") / "tiny-ferplus"
    done = run(
        env,
        "ml.export",
        "--checkpoint",
        trained / "best.keras",
        "--out",
        out,
        "--head",
        "ferplus",
        "--format",
        "tflite",
        "--data",
        data_dir,
        "--bench-runs",
        2,
        "--latency-runs",
        3,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out, done


def test_train_writes_meta(trained):
    meta = json.loads((trained / "train_meta.json").read_text())
    assert meta["model"] == "feednet" and meta["label_modes"] == ["fer2013", "ferplus-distribution"]
    assert meta["data"]["train_images"] == 128 and meta["epochs_run"] == 1
    assert set(meta["heads"]) == {"fer2013", "ferplus"}
    assert meta["args"]["random_erasing"] == 0.5
    assert (meta["args"]["mixup"], meta["args"]["cutmix"], meta["args"]["mix_prob"]) == (0.2, 1.0, 0.5)


@pytest.mark.parametrize(
    ("extra", "head", "mode", "k"),
    [
        ((), "ferplus", "ferplus-majority", 8),
        (("--head", "fer2013", "--tta", "--temperature", "1.5"), "fer2013", "fer2013", 7),
        (("--labels", "ferplus-distribution"), "ferplus", "ferplus-distribution", 8),
    ],
)
def test_evaluate_checkpoint(trained, data_dir, env, tmp_path, extra, head, mode, k):
    report_path, png = tmp_path / "eval.json", tmp_path / "cm.png"
    done = run(
        env,
        "ml.evaluate",
        "--checkpoint",
        trained / "best.keras",
        "--data",
        data_dir,
        "--json",
        report_path,
        "--confusion-png",
        png,
        *extra,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "accuracy=" in done.stdout and "confusion matrix" in done.stdout and "macro-F1" in done.stdout
    report = json.loads(report_path.read_text())
    assert report["head"] == head and report["label_mode"] == mode and report["split"] == "PublicTest"
    m = report["metrics"]
    assert len(m["labels"]) == k and np.array(m["confusion_matrix"]).shape == (k, k)
    assert np.array(m["confusion_matrix"]).sum() == m["n"] > 0
    assert 0 <= m["accuracy"] <= 1 and 0 <= m["ece"] <= 1 and np.isfinite(m["loss"])
    assert set(m["per_class"]) == set(m["labels"])
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if "--tta" in extra:
        assert report["tta"] is True and report["temperature"] == 1.5


def test_export_artifact_contents(exported, trained):
    out, done = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "confusion_matrix.png",
        "metrics.json",
        "model.tflite",
        "model_card.json",
    ]
    card = read_card(out)
    assert card["head"] == "ferplus" and card["labels"] == list(L.FERPLUS_LABELS) and card["format"] == "tflite"
    assert card["input"] == {"shape": [48, 48], "dtype": "uint8", "color": "grayscale", "range": [0, 255]}
    assert {k: card["training"]["model_args"][k] for k in ("random_erasing", "mixup", "cutmix", "mix_prob")} == {
        "random_erasing": 0.5,
        "mixup": 0.2,
        "cutmix": 1.0,
        "mix_prob": 0.5,
    }
    assert "INTER_AREA" in card["preprocessing"] and card["file"] == "model.tflite" and card["tta"] is False
    assert card["temperature"] > 0
    # the photo pipeline the service runs with it: the default one, recorded whole (detector, framing, alignment)
    assert card["schema_version"] == SCHEMA_VERSION and card["pipeline"] == PIPELINES[DEFAULT_PIPELINE].to_json()
    metrics = card["metrics"]
    for key in (
        "accuracy",
        "loss",
        "macro_f1",
        "weighted_f1",
        "per_class",
        "confusion_matrix",
        "ece_before_calibration",
        "ece_after_calibration",
        "ece_uncalibrated",
    ):
        assert key in metrics, key
    assert metrics["split"] == "PublicTest" and metrics["label_mode"] == "ferplus-majority"
    assert metrics["cross_calibration"]["folds"] == 2
    formats = {row["format"]: row for row in card["formats"]}
    assert set(formats) == {"keras", "tflite"}
    assert all(
        row["status"] == "ok" and row["faces_per_s_b64"] > 0 and row["ms_per_face_b1"] > 0 for row in formats.values()
    )
    assert abs(formats["tflite"]["accuracy"] - formats["keras"]["accuracy"]) < 1e-9
    assert card["training"]["epochs_run"] == 1 and card["training"]["command"].startswith("python -m ml.train")
    assert card["export_command"].startswith("python -m ml.export --checkpoint")
    assert card["versions"]["tensorflow"] and card["created"]
    assert json.loads((out / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    assert "chosen format: tflite" in done.stdout
    other = card["other_tta"]  # the same file with test-time flip on, calibrated for it
    assert other["tta"] is True and other["temperature"] > 0 and other["n"] == metrics["n"]
    assert 0 <= other["accuracy"] <= 1 and other["ece_after_calibration"] >= 0
    assert other["speed"]["faces_per_s_b64"] > 0 and other["speed"]["card_mode_faces_per_s_b64"] > 0
    assert "with test-time flip on: acc" in done.stdout


def test_evaluate_and_tta_mode_agree_on_the_other_mode(exported, data_dir, env, tmp_path):
    """ml.evaluate --tta on a no-TTA artifact uses other_tta's temperature; ml.tta_mode re-measures the same block
    for an artifact that lacks it, and refuses data that does not reproduce the card."""
    import shutil

    out = Path(shutil.copytree(exported[0], tmp_path / "a"))
    card = read_card(out)
    done = run(env, "ml.evaluate", "--checkpoint", out, "--data", data_dir, "--tta", "--json", tmp_path / "e.json")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["tta"] is True and report["temperature"] == pytest.approx(card["other_tta"]["temperature"])
    assert report["metrics"]["accuracy"] == pytest.approx(card["other_tta"]["accuracy"])

    del card["other_tta"]
    (out / "model_card.json").write_text(json.dumps(card))
    done = run(env, "ml.tta_mode", out, "--data", data_dir, "--bench-runs", 2, "--latency-runs", 3)
    assert done.returncode == 0, done.stderr[-3000:]
    amended = read_card(out)
    assert amended["other_tta"]["temperature"] == pytest.approx(report["temperature"])
    assert amended["other_tta"]["accuracy"] == pytest.approx(report["metrics"]["accuracy"])
    assert amended["amendments"][-1]["command"].startswith("python -m ml.tta_mode ")
    assert {k: v for k, v in amended.items() if k not in ("other_tta", "amendments")} == card
    assert amended["other_tta"]["per_class"] and amended["other_tta"]["confusion_matrix"]
    done = run(env, "ml.tta_mode", out, "--data", data_dir, "--bench-runs", 2, "--latency-runs", 3)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(read_card(out)["amendments"]) == 1  # refreshed, not appended

    card["metrics"]["accuracy"] += 0.01
    (out / "model_card.json").write_text(json.dumps(card))
    assert_clean_error(run(env, "ml.tta_mode", out, "--data", data_dir), 1, "not the data (or the model files)")
    assert_clean_error(run(env, "ml.tta_mode", tmp_path), 1, "is not an exported model artifact")
    assert_clean_error(run(env, "ml.tta_mode", out, "--bench-runs", 0), 2, "must be a positive integer, got 0")


def test_selective_flip_ships_a_threshold_and_keeps_the_full_flip_figures(exported, data_dir, env, tmp_path):
    """ml.selective_flip --sweep writes nothing; --flip-below rewrites the card's shipped figures for the threshold,
    which the runtime then reproduces, and keeps the every-face figures beside them."""
    import shutil

    from ml.protocols import load_eval_split
    from ml.runtime import EmotionClassifier

    out = Path(shutil.copytree(exported[0], tmp_path / "a"))
    card = read_card(out)
    assert_clean_error(
        run(env, "ml.selective_flip", out, "--flip-below", 0.5, "--data", data_dir), 1, "ships without test-time flip"
    )
    # make the card ship its measured flip mode, as `ml.export --tta` would
    other = card.pop("other_tta")
    card.update(tta=True, temperature=other["temperature"])
    card["metrics"]["accuracy"] = other["accuracy"]
    (out / "model_card.json").write_text(json.dumps(card))

    public = load_eval_split(str(data_dir), card["label_mode"], "PublicTest", card["head"], None)
    y = public.targets[card["head"]].argmax(1)
    first = EmotionClassifier.load(out, tta=False, temperature=1.0).predict_proba(public.images).max(axis=1)
    threshold = round(float(np.median(first)), 6)
    before = (out / "model_card.json").read_text()
    done = run(env, "ml.selective_flip", out, "--sweep", "--data", data_dir, "--bench-runs", 2, "--latency-runs", 3)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "flip below 0.50" in done.stdout and (out / "model_card.json").read_text() == before

    args = ("--flip-below", threshold, "--data", data_dir, "--bench-runs", 2, "--latency-runs", 3)
    done = run(env, "ml.selective_flip", out, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    amended = read_card(out)
    shipped = EmotionClassifier.load(out)
    assert shipped.tta and shipped.flip_below == threshold and shipped.temperature == amended["temperature"]
    probs = shipped.predict_proba(public.images)
    assert amended["metrics"]["accuracy"] == pytest.approx(float((probs.argmax(1) == y).mean()))
    assert amended["metrics"]["tta_flip_below"] == threshold and amended["metrics"]["confusion_matrix"]
    assert json.loads((out / "metrics.json").read_text()) == amended["metrics"]
    block = amended["selective_flip"]
    assert block["flipped_share"] == pytest.approx(float((first < threshold).mean()), abs=1e-4)
    assert 0 < block["flipped_share"] < 1
    assert block["full_flip"]["accuracy"] == pytest.approx(card["metrics"]["accuracy"])
    assert block["speed"]["faces_per_s_b64"] > 0 and block["full_flip"]["speed"]["faces_per_s_b64"] > 0
    assert amended["other_tta"]["tta"] is False and amended["regression_slice"]["rows"] == len(y)
    assert amended["reproduce"][-1].startswith("python -m ml.selective_flip ")
    done = run(env, "ml.selective_flip", out, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    again = read_card(out)
    assert len(again["amendments"]) == 1 and again["reproduce"] == amended["reproduce"]  # refreshed, not appended
    assert again["metrics"]["accuracy"] == amended["metrics"]["accuracy"]

    before = (out / "model_card.json").read_text()
    assert_clean_error(
        run(env, "ml.selective_flip", out, "--flip-below", "auto", "--max-ece", 1e-9, *args[2:]),
        1,
        "with a calibrated ECE <= 1e-09; the card is unchanged",
    )
    assert (out / "model_card.json").read_text() == before
    done = run(env, "ml.selective_flip", out, "--flip-below", "auto", "--max-ece", 0.9, *args[2:])
    assert done.returncode == 0, done.stderr[-3000:]
    auto = read_card(out)
    rows = auto["selective_flip"]["sweep"]
    assert [row["flip_below"] for row in rows] == [0.5, 0.6, 0.7, 0.8, 0.9]
    best = auto["selective_flip"]["full_flip"]["accuracy"]
    picked = next(
        row["flip_below"]
        for row in rows
        if 100 * (best - row["accuracy"]) <= 0.1 + 1e-9 and row["ece_after_calibration"] <= 0.9
    )
    assert auto["tta_flip_below"] == picked and EmotionClassifier.load(out).flip_below == picked
    assert auto["reproduce"][-1].endswith("--flip-below auto --max-ece 0.9 " + shlex.join(map(str, args[2:])))

    assert_clean_error(
        run(env, "ml.selective_flip", out, "--flip-below", 0), 2, "expected auto or a number in (0, 1], got 0.0"
    )
    assert_clean_error(
        run(env, "ml.selective_flip", out, "--flip-below", "x"), 2, "expected auto or a number in (0, 1]"
    )
    assert_clean_error(
        run(env, "ml.selective_flip", out, "--sweep", "--tolerance", -1),
        2,
        "--tolerance must be 0 or more accuracy points, got -1.0",
    )
    assert_clean_error(run(env, "ml.selective_flip", out), 2, "one of the arguments --flip-below --sweep is required")
    assert_clean_error(run(env, "ml.selective_flip", tmp_path, "--sweep"), 1, "is not an exported model artifact")


def test_calibrate_ships_a_class_bias_the_runtime_applies(exported, data_dir, env, tmp_path):
    """ml.calibrate --compare writes nothing; --class-bias rewrites the shipped figures from temperature plus class
    offsets, which the runtime reproduces; --temperature-only goes back; --auto follows the held-out NLL."""
    import shutil

    from ml.protocols import load_eval_split
    from ml.runtime import EmotionClassifier

    out = Path(shutil.copytree(exported[0], tmp_path / "a"))
    card = read_card(out)
    public = load_eval_split(str(data_dir), card["label_mode"], "PublicTest", card["head"], None)
    y = public.targets[card["head"]].argmax(1)
    before = (out / "model_card.json").read_text()
    done = run(env, "ml.calibrate", out, "--compare", "--data", data_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "temperature + class bias" in done.stdout and (out / "model_card.json").read_text() == before

    done = run(env, "ml.calibrate", out, "--class-bias", "--data", data_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    amended = read_card(out)
    assert (
        len(amended["class_bias"]) == len(card["labels"])
        and amended["calibration"]["kind"] == "temperature + class bias"
    )
    shipped = EmotionClassifier.load(out)
    assert shipped.class_bias is not None and shipped.temperature == amended["temperature"]
    probs = shipped.predict_proba(public.images)
    assert amended["metrics"]["accuracy"] == pytest.approx(float((probs.argmax(1) == y).mean()))
    assert amended["metrics"]["class_bias"] == amended["class_bias"] and "class_bias" in amended["output"]
    assert json.loads((out / "metrics.json").read_text()) == amended["metrics"]
    assert amended["metrics"]["cross_calibration"]["fits_class_bias"] is True
    assert len(amended["other_tta"]["class_bias"]) == len(card["labels"])  # the other mode: the same kind
    assert amended["reproduce"][-1] == f"python -m ml.calibrate {out} --class-bias --data {data_dir}"
    kept = {
        k: v
        for k, v in card.items()
        if k not in amended["amendments"][-1]["what"] and k not in ("amendments", "reproduce", "output", "other_tta")
    }
    assert {k: amended[k] for k in kept} == kept  # nothing else in the card changed

    done = run(env, "ml.calibrate", out, "--temperature-only", "--data", data_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    plain = read_card(out)
    assert "class_bias" not in plain and EmotionClassifier.load(out).class_bias is None
    assert plain["temperature"] == pytest.approx(card["temperature"]) and len(plain["amendments"]) == 1
    assert plain["metrics"]["accuracy"] == pytest.approx(card["metrics"]["accuracy"])

    done = run(env, "ml.calibrate", out, "--auto", "--data", data_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    auto = read_card(out)
    plain_nll, bias_nll = (row["nll_after_held_out"] for row in auto["calibration"]["compared"])
    assert ("class_bias" in auto) == (bias_nll < plain_nll) and auto["calibration"]["rule"].startswith("auto")

    assert_clean_error(run(env, "ml.calibrate", out), 2, "one of the arguments --compare --class-bias")
    assert_clean_error(run(env, "ml.calibrate", out, "--class-bias", "--temperature-only"), 2, "not allowed with")
    assert_clean_error(run(env, "ml.calibrate", tmp_path, "--compare"), 1, "is not an exported model artifact")


def test_exported_runtime_matches_keras(exported, trained):
    keras = pytest.importorskip("keras")
    from ml.runtime import EmotionClassifier

    out, _ = exported
    model = keras.saving.load_model(trained / "best.keras", compile=False)
    sub = keras.Model(model.input, model.output["ferplus"])
    x, _ = faces(100, seed=9)
    reference = sub.predict(x[..., None].astype(np.float32), verbose=0).astype(np.float64)

    raw = EmotionClassifier.load(out, temperature=1.0).predict_proba(x)
    assert np.allclose(raw, reference, atol=1e-4)

    clf = EmotionClassifier.load(out)
    t = clf.temperature
    z = np.log(np.clip(reference, 1e-12, 1.0)) / t
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(clf.predict_proba(x), expected, atol=1e-4)


def test_evaluate_artifact_through_runtime(exported, data_dir, env, tmp_path):
    out, _ = exported
    done = run(env, "ml.evaluate", "--checkpoint", out, "--data", data_dir, "--json", tmp_path / "e.json")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "e.json").read_text())
    card = read_card(out)
    assert report["source"] == "artifact (tflite)" and report["temperature"] == pytest.approx(card["temperature"])
    assert report["metrics"]["accuracy"] == pytest.approx(card["metrics"]["accuracy"])
    assert report["metrics"]["loss"] == pytest.approx(card["metrics"]["loss"], abs=1e-4)


def test_export_auto_and_reexport(trained, data_dir, env, tmp_path):
    out = tmp_path / "auto"
    out.mkdir()
    (out / "model_card.json").write_text("{}")  # an older artifact may be replaced
    done = run(
        env,
        "ml.export",
        "--checkpoint",
        trained / "best.keras",
        "--out",
        out,
        "--head",
        "fer2013",
        "--data",
        data_dir,
        "--limit",
        40,
        "--bench-runs",
        2,
        "--latency-runs",
        3,
        "--calibration-faces",
        32,
        "--pipeline",
        "haar",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    card = read_card(out)
    assert card["pipeline"] == PIPELINES["haar"].to_json() and card["pipeline"]["detector"] == "haar"
    rows = {row["format"]: row for row in card["formats"]}
    assert {"keras", "tflite", "tflite-int8"} <= set(rows)
    ok = {f: r for f, r in rows.items() if r["status"] == "ok"}
    assert card["format"] in ok and card["head"] == "fer2013" and card["labels"] == list(L.FER2013_LABELS)
    assert ok[card["format"]]["accuracy"] >= ok["keras"]["accuracy"] - 0.003
    assert card["format"] == max(
        (f for f in ok if ok[f]["accuracy"] >= ok["keras"]["accuracy"] - 0.003), key=lambda f: ok[f]["faces_per_s_b64"]
    )
    assert card["metrics"]["n"] == 40
    model_files = [p.name for p in out.iterdir() if p.name.startswith("model") and p.name != "model_card.json"]
    assert model_files == [card["file"]]


def test_export_ensemble_with_an_existing_artifact(trained, exported, data_dir, env, tmp_path):
    """A second model exported with --ensemble-with the first: the runtime averages the two."""
    from ml.runtime import EmotionClassifier

    second = tmp_path / "run2"
    done = run(
        env,
        "ml.train",
        "--model",
        "feednet",
        "--width",
        4,
        "--labels",
        "fer2013,ferplus-distribution",
        "--epochs",
        1,
        "--limit",
        128,
        "--batch-size",
        32,
        "--data",
        data_dir,
        "--out",
        second,
        "--verbose",
        0,
        "--seed",
        7,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    alone, out = tmp_path / "alone", tmp_path / "ensemble"
    common = ["--head", "ferplus", "--format", "tflite", "--data", data_dir, "--bench-runs", 2, "--latency-runs", 3]
    assert run(env, "ml.export", "--checkpoint", second / "best.keras", "--out", alone, *common).returncode == 0
    done = run(
        env, "ml.export", "--checkpoint", second / "best.keras", "--out", out, *common, "--ensemble-with", exported[0]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    card = read_card(out)
    assert card["ensemble"] == ["member1_model.tflite"] and (out / "member1_model.tflite").is_file()
    assert [m["file"] for m in card["ensemble_members"]] == ["model.tflite", "member1_model.tflite"]
    assert card["speed"]["faces_per_s_b64"] > 0 and "ensemble of 2" in done.stdout
    member = read_card(exported[0])
    assert card["reproduce"][: len(member["reproduce"])] == member["reproduce"]  # the member's own history first
    assert card["reproduce"][-2].startswith("python -m ml.train") and "--seed 7" in card["reproduce"][-2]
    assert card["reproduce"][-1].startswith("python -m ml.export") and "--ensemble-with" in card["reproduce"][-1]
    assert card["training"]["train_wall_seconds_all_phases"] > member["training"]["train_wall_seconds_all_phases"]
    assert 0 < card["regression_slice"]["rows"] <= 64 and 0.0 <= card["regression_slice"]["accuracy"] <= 1.0

    x, _ = faces(16, seed=3)
    mean = (
        EmotionClassifier.load(alone, temperature=1.0).predict_proba(x)
        + EmotionClassifier.load(exported[0], temperature=1.0).predict_proba(x)
    ) / 2
    np.testing.assert_allclose(EmotionClassifier.load(out, temperature=1.0).predict_proba(x), mean, atol=1e-5)
    assert "members=2" in repr(EmotionClassifier.load(out))

    # An ensemble of an ensemble: each borrowed member keeps its own accuracy, training and time.
    third = tmp_path / "ensemble3"
    assert (
        run(
            env, "ml.export", "--checkpoint", trained / "best.keras", "--out", third, *common, "--ensemble-with", out
        ).returncode
        == 0
    )
    card3 = read_card(third)
    members = card3["ensemble_members"]
    solo = read_card(alone)
    assert members[1]["accuracy_alone"] == pytest.approx(solo["metrics"]["accuracy"])
    assert members[2]["accuracy_alone"] == pytest.approx(member["metrics"]["accuracy"])
    assert members[1]["training"]["checkpoint"] == str(second / "best.keras")
    assert members[2]["training"]["checkpoint"] == str(trained / "best.keras")
    assert members[2]["card_name"] == member["name"]
    assert card3["training"]["train_wall_seconds_all_phases"] == pytest.approx(  # each run counted once
        member["training"]["train_wall_seconds_all_phases"] + card["training"]["train_wall_seconds_all_phases"], abs=0.2
    )

    other_head = tmp_path / "fer2013-head"
    assert (
        run(
            env,
            "ml.export",
            "--checkpoint",
            second / "best.keras",
            "--out",
            other_head,
            "--head",
            "fer2013",
            "--format",
            "tflite",
            "--data",
            data_dir,
            "--bench-runs",
            2,
            "--latency-runs",
            3,
        ).returncode
        == 0
    )
    assert_clean_error(
        run(
            env,
            "ml.export",
            "--checkpoint",
            second / "best.keras",
            "--out",
            tmp_path / "bad",
            *common,
            "--ensemble-with",
            other_head,
        ),
        1,
        "head 'fer2013' != 'ferplus'",
    )
    (out / "member1_model.tflite").unlink()
    with pytest.raises(FileNotFoundError, match="member1_model.tflite"):
        EmotionClassifier.load(out)


def test_train_distils_from_an_exported_teacher(exported, data_dir, env, tmp_path):
    """--teacher: the artifact scores the training images once (cached), its head trains on the blend."""
    out = tmp_path / "student"
    args = [
        "--model",
        "feednet",
        "--width",
        4,
        "--labels",
        "fer2013,ferplus-distribution",
        "--epochs",
        1,
        "--limit",
        96,
        "--batch-size",
        32,
        "--data",
        data_dir,
        "--out",
        out,
        "--verbose",
        0,
        "--teacher",
        f"ferplus={exported[0]}",
        "--distill-alpha",
        0.7,
    ]
    done = run(env, "ml.train", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"teacher {exported[0]} -> head ferplus: agrees with the labels on" in done.stdout
    cached = list((out / "teachers").glob("teacher-*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (96, 8)
    meta = json.loads((out / "train_meta.json").read_text())
    assert "--teacher ferplus=" in meta["command"] and meta["args"]["distill_alpha"] == 0.7

    student = tmp_path / "student-artifact"
    assert (
        run(
            env,
            "ml.export",
            "--checkpoint",
            out / "best.keras",
            "--out",
            student,
            "--head",
            "ferplus",
            "--format",
            "tflite",
            "--data",
            data_dir,
            "--bench-runs",
            2,
            "--latency-runs",
            3,
        ).returncode
        == 0
    )
    card = read_card(student)
    teacher = read_card(exported[0])
    assert card["training"]["distilled_from"][0]["file_sha256"] == teacher["file_sha256"]
    assert card["training"]["distill_alpha"] == 0.7 and card["training"]["teacher_mode"] == "offline"
    assert card["reproduce"][: len(teacher["reproduce"])] == teacher["reproduce"]  # the teacher's own chain first
    assert "--teacher ferplus=" in card["reproduce"][-2] and card["reproduce"][-1].startswith("python -m ml.export")

    common = args[:-4]
    assert_clean_error(
        run(env, "ml.train", *common, "--teacher", f"fer2013={exported[0]}"),
        1,
        "but the head expects ['anger', 'disgust'",
    )
    assert_clean_error(run(env, "ml.train", *common, "--teacher", f"valence={exported[0]}"), 1, "has no 'valence' head")
    assert_clean_error(run(env, "ml.train", *common, "--teacher", f"ferplus={tmp_path / 'nothing'}"), 1, "not found")
    assert_clean_error(run(env, "ml.train", *common, "--teacher", "ferplus"), 2, "expected HEAD=ARTIFACT_DIR")
    assert_clean_error(
        run(env, "ml.train", *common, "--teacher", f"ferplus={exported[0]}", "--distill-alpha", 1.5),
        1,
        "--distill-alpha must be within [0, 1]",
    )


def test_train_distils_online_on_each_augmented_batch(exported, data_dir, env, tmp_path):
    """--teacher-mode online: nothing is cached; the card says online; bad teachers fail before training."""
    out = tmp_path / "online"
    args = [
        "--model",
        "feednet",
        "--width",
        4,
        "--labels",
        "fer2013,ferplus-distribution",
        "--epochs",
        1,
        "--limit",
        96,
        "--batch-size",
        32,
        "--data",
        data_dir,
        "--out",
        out,
        "--verbose",
        0,
        "--teacher-mode",
        "online",
        "--teacher",
        f"ferplus={exported[0]}",
        "--distill-alpha",
        1.0,
    ]
    done = run(env, "ml.train", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (out / "teachers").exists()
    student = tmp_path / "online-artifact"
    assert (
        run(
            env,
            "ml.export",
            "--checkpoint",
            out / "best.keras",
            "--out",
            student,
            "--head",
            "ferplus",
            "--format",
            "tflite",
            "--data",
            data_dir,
            "--bench-runs",
            2,
            "--latency-runs",
            3,
        ).returncode
        == 0
    )
    card = read_card(student)
    assert card["training"]["teacher_mode"] == "online" and card["training"]["distill_alpha"] == 1.0
    assert "--teacher-mode online" in card["reproduce"][-2]

    common = args[:-4]
    assert_clean_error(
        run(env, "ml.train", *common, "--teacher", f"fer2013={exported[0]}"),
        1,
        "but the head expects ['anger', 'disgust'",
    )
    assert_clean_error(
        run(env, "ml.train", *common, "--teacher", f"ferplus={exported[0]}", "--distill-alpha", -1),
        1,
        "--distill-alpha must be within [0, 1]",
    )


# --------------------------------------------------------------------------- bad input


def _write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "fer2013.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def ema_run_args(exported, data_dir, batch_size: int) -> list:
    """A deterministic fine-tune of the tiny artifact on 96 faces, large steps (lr 1e-2) from the first one."""
    return [
        "--model",
        "feednet",
        "--labels",
        "ferplus-distribution",
        "--limit",
        96,
        "--batch-size",
        batch_size,
        "--data",
        data_dir,
        "--verbose",
        0,
        "--lr",
        1e-2,
        "--warmup-epochs",
        0,
        "--no-augment",
        "--deterministic",
        "--init-from",
        exported[0],
    ]


def saved_model(path: Path):
    import keras

    import ml.models  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path, compile=False)


def max_weight_change(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def test_train_ema_validates_and_checkpoints_the_weight_average(exported, data_dir, env, tmp_path):
    """--ema: validation, best.keras and last.keras use the moving average, not the raw weights. One step per
    epoch and momentum ~1: after two epochs the average is still the weights after step 1 (Keras starts it there)."""
    common = ema_run_args(exported, data_dir, batch_size=96)

    def train(name: str, *extra) -> tuple[list[float], dict[str, list[np.ndarray]]]:
        done = run(env, "ml.train", *common, "--out", tmp_path / name, *extra)
        assert done.returncode == 0, done.stderr[-3000:]
        with open(tmp_path / name / "log.csv") as f:
            val_loss = [float(row["val_loss"]) for row in csv.DictReader(f)]
        return val_loss, {f: saved_model(tmp_path / name / f).get_weights() for f in ("best.keras", "last.keras")}

    (loss_one, one), (loss_two, two) = train("one", "--epochs", 1), train("two", "--epochs", 2)
    loss_ema, ema = train("ema", "--epochs", 2, "--ema", 0.999999)
    moved = max_weight_change(two["last.keras"], one["last.keras"])
    assert moved > 1e-3 and abs(loss_two[1] - loss_one[0]) > 1e-3
    for f in ("best.keras", "last.keras"):
        assert max_weight_change(ema[f], one["last.keras"]) < moved / 100, f
    np.testing.assert_allclose(loss_ema, [loss_one[0]] * 2, rtol=1e-4)
    assert_clean_error(
        run(env, "ml.train", *common, "--out", tmp_path / "bad", "--ema", 1), 2, "EMA momentum must be in [0, 1), got 1"
    )


def test_train_ema_backup_keeps_the_raw_weights(exported, data_dir, env, tmp_path):
    """The averaged weights are swapped in only after the backup is written, so --resume continues training the raw
    weights: an --ema run's backup holds the same weights as the same run without --ema (the average never feeds
    back into training), while its last.keras holds the average."""
    common = [*ema_run_args(exported, data_dir, batch_size=48), "--epochs", 3, "--stop-after", 2]
    for out, extra in (("raw", []), ("ema", ["--ema", 0.5])):
        done = run(env, "ml.train", *common, "--out", tmp_path / out, *extra)
        assert done.returncode == 0, done.stderr[-3000:]
    raw = saved_model(tmp_path / "raw" / "last.keras").get_weights()
    model = saved_model(tmp_path / "ema" / "last.keras")
    averaged = model.get_weights()
    model.load_weights(tmp_path / "ema" / "backup" / "main" / "latest.weights.h5")
    assert max_weight_change(averaged, raw) > 1e-3
    for a, b in zip(model.get_weights(), raw):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_train_bad_inputs(env, tmp_path):
    common = ("--model", "feednet", "--width", 4, "--epochs", 1, "--out", tmp_path / "out")
    assert_clean_error(run(env, "ml.train", *common, "--data", tmp_path / "missing"), 1, "error: no fer2013.csv")

    x, _ = faces(2)
    pixels = " ".join(map(str, x[0].reshape(-1)))
    bad_columns = _write_csv(tmp_path / "cols", ["label", "image", "split"], [[0, pixels, "Training"]])
    assert_clean_error(
        run(env, "ml.train", *common, "--data", bad_columns), 1, "expected header 'emotion,pixels,Usage'"
    )

    short = " ".join(map(str, x[0].reshape(-1)[:2000]))
    bad_pixels = _write_csv(tmp_path / "pix", ["emotion", "pixels", "Usage"], [[0, short, "Training"]])
    assert_clean_error(run(env, "ml.train", *common, "--data", bad_pixels), 1, "expected 2304 pixels, found 2000")

    assert_clean_error(run(env, "ml.train", "--model", "mobilenet"), 2, "invalid choice: 'mobilenet'")
    assert_clean_error(run(env, "ml.train", "--model", "cnn", "--labels", "ferplus"), 2, "invalid label set")
    assert_clean_error(run(env, "ml.train", *common, "--random-erasing", 1.5), 2, "must be in [0, 1], got 1.5")
    assert_clean_error(run(env, "ml.train", *common, "--mixup", -0.5), 2, "must be a finite number >= 0, got -0.5")
    assert_clean_error(run(env, "ml.train", *common, "--cutmix", "inf"), 2, "must be a finite number >= 0, got inf")
    assert_clean_error(run(env, "ml.train", *common, "--mix-prob", 2), 2, "must be in [0, 1], got 2")


def test_evaluate_and_export_bad_inputs(env, trained, data_dir, tmp_path):
    ckpt = trained / "best.keras"
    assert_clean_error(run(env, "ml.evaluate", "--checkpoint", tmp_path / "nope.keras"), 1, "not found")
    (tmp_path / "weights.h5").write_bytes(b"junk")
    assert_clean_error(
        run(env, "ml.evaluate", "--checkpoint", tmp_path / "weights.h5"), 1, "cannot load Keras checkpoint"
    )
    (tmp_path / "notes.txt").write_text("junk")
    assert_clean_error(
        run(env, "ml.evaluate", "--checkpoint", tmp_path / "notes.txt"), 1, "expected a .keras or .h5 checkpoint"
    )
    assert_clean_error(
        run(env, "ml.evaluate", "--checkpoint", ckpt, "--head", "valence", "--data", data_dir),
        1,
        "unknown head 'valence'",
    )
    assert_clean_error(
        run(env, "ml.evaluate", "--checkpoint", ckpt, "--head", "ferplus", "--labels", "fer2013", "--data", data_dir),
        1,
        "scores the fer2013 head",
    )
    assert_clean_error(run(env, "ml.evaluate", "--checkpoint", ckpt, "--split", "PrivateTest"), 2, "invalid choice")
    assert_clean_error(
        run(env, "ml.export", "--checkpoint", tmp_path / "nope.keras", "--out", tmp_path / "a"), 1, "not found"
    )
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    assert_clean_error(
        run(env, "ml.export", "--checkpoint", ckpt, "--out", tmp_path / "precious", "--data", data_dir),
        1,
        "refusing to overwrite",
    )
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
    assert_clean_error(
        run(env, "ml.export", "--checkpoint", ckpt, "--out", tmp_path / "b", "--format", "pt"), 2, "invalid choice"
    )


def test_bf16_warning_names_cpus_where_it_is_not_faster():
    from ml.hostinfo import bf16_warning

    epyc = "processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma f16c\n"
    sapphire = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    graviton = "processor\t: 0\nFeatures\t: fp asimd bf16 i8mm\n"
    assert "Use --precision float32" in bf16_warning("mixed_bfloat16", epyc)
    assert bf16_warning("mixed_bfloat16", sapphire) is None
    assert bf16_warning("mixed_bfloat16", graviton) is None
    assert bf16_warning("float32", epyc) is None
    assert bf16_warning("mixed_bfloat16", None) is None  # cannot tell: no warning
    no_amx = "processor\t: 0\nflags\t\t: avx2 avx512f avx512_bf16 avx512_vnni avx512_fp16\n"  # a Xeon VM without AMX
    assert "but no AMX" in bf16_warning("mixed_bfloat16", no_amx) and "emulates" not in bf16_warning(
        "mixed_bfloat16", no_amx
    )
    assert "emulates" in bf16_warning("mixed_bfloat16", epyc)
    zen5 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: avx2 avx512f avx512_bf16 avx512_vnni\n"
    assert bf16_warning("mixed_bfloat16", zen5) is None  # measured faster than float32 there
    assert "emulates" in bf16_warning("mixed_bfloat16", "vendor_id\t: AuthenticAMD\n" + epyc)


def test_cpu_model_reads_the_first_cpu_block():
    from ml.hostinfo import cpu_model

    two_cpus = (
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: AMD EPYC 9B14\n\n"
        "processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\nmodel name\t: something else\n"
    )
    assert cpu_model(two_cpus) == "AMD EPYC 9B14 (family 25)"
    assert cpu_model("processor\t: 0\nCPU implementer\t: 0x41\nCPU architecture: 8\n") == "unknown CPU"
    assert cpu_model(None) == "unknown CPU"


def test_machine_busy_seconds_leaves_out_idle_and_iowait():
    from ml.hostinfo import machine_busy_seconds

    stat = "cpu  100 5 50 1000 20 3 2 0 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n"
    assert machine_busy_seconds(stat) == pytest.approx(160 / os.sysconf("SC_CLK_TCK"))
    assert machine_busy_seconds("intr 1 2 3\n") is None


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="needs /proc/stat")
def test_others_cpu_share_counts_other_processes_and_not_our_own_work():
    """A benchmark that keeps the cores busy itself is not reported as a busy machine; a spinning neighbour is."""
    import time

    from ml.hostinfo import cpu_snapshot, others_cpu_share

    def spin_here(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    before = cpu_snapshot()
    spin_here(1.0)
    own_work = others_cpu_share(before, cpu_snapshot())
    neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        before = cpu_snapshot()
        time.sleep(1.0)
        with_neighbour = others_cpu_share(before, cpu_snapshot())
    finally:
        neighbour.kill()
        neighbour.wait()
    assert own_work is not None and with_neighbour is not None
    assert with_neighbour > own_work + 0.3  # the neighbour's CPU shows, ours does not


def test_warmstart_rebuilds_the_exported_network(trained, exported, data_dir, env, tmp_path):
    """ml.warmstart reads a TFLite artifact (float or int8) back into a Keras FeedNet computing the same function."""
    from ml.runtime import EmotionClassifier
    from ml.warmstart import WarmStartError, feednet_from_artifact

    int8 = tmp_path / "int8"
    assert (
        run(
            env,
            "ml.export",
            "--checkpoint",
            trained / "best.keras",
            "--out",
            int8,
            "--head",
            "ferplus",
            "--format",
            "tflite-int8",
            "--data",
            data_dir,
            "--bench-runs",
            2,
            "--latency-runs",
            3,
        ).returncode
        == 0
    )
    x, _ = faces(64, seed=5)
    for artifact, atol in ((exported[0], 1e-4), (int8, 0.08)):
        model, card = feednet_from_artifact(artifact)
        assert card.head == "ferplus" and not any("bn" in layer.name for layer in model.layers)
        ours = model.predict(x[..., None].astype(np.float32), verbose=0)
        theirs = EmotionClassifier.load(artifact, temperature=1.0).predict_proba(x)
        np.testing.assert_allclose(ours, theirs, atol=atol)

    with pytest.raises(WarmStartError, match="no model_card.json"):
        feednet_from_artifact(tmp_path)
    ensemble = tmp_path / "ensemble"
    ensemble.mkdir()
    card = read_card(exported[0])
    (ensemble / "model_card.json").write_text(json.dumps({**card, "ensemble": ["member1_model.tflite"]}))
    with pytest.raises(WarmStartError, match="an ensemble of 2 networks"):
        feednet_from_artifact(ensemble)


def test_train_fine_tunes_a_shipped_artifact(exported, data_dir, env, tmp_path):
    """--init-from ARTIFACT_DIR starts from the artifact's weights; the card chains its reproduce commands first,
    as the artifact was when training started (an export may replace it in place)."""
    import shutil

    from ml.runtime import EmotionClassifier

    out, base = tmp_path / "ft", tmp_path / "base"
    shutil.copytree(exported[0], base)
    args = [
        "--model",
        "feednet",
        "--labels",
        "ferplus-distribution",
        "--epochs",
        1,
        "--limit",
        96,
        "--batch-size",
        32,
        "--data",
        data_dir,
        "--out",
        out,
        "--verbose",
        0,
        "--lr",
        1e-9,
        "--warmup-epochs",
        0,
        "--init-from",
        base,
    ]
    done = run(env, "ml.train", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    replaced = read_card(base)
    (base / "model_card.json").write_text(json.dumps({**replaced, "file_sha256": "replaced", "reproduce": ["other"]}))
    artifact = tmp_path / "ft-artifact"
    assert (
        run(
            env,
            "ml.export",
            "--checkpoint",
            out / "best.keras",
            "--out",
            artifact,
            "--head",
            "ferplus",
            "--format",
            "tflite",
            "--data",
            data_dir,
            "--bench-runs",
            2,
            "--latency-runs",
            3,
        ).returncode
        == 0
    )
    x, _ = faces(32, seed=9)
    np.testing.assert_allclose(
        EmotionClassifier.load(artifact, temperature=1.0).predict_proba(x),
        EmotionClassifier.load(exported[0], temperature=1.0).predict_proba(x),
        atol=1e-4,
    )
    card = read_card(artifact)
    start = read_card(exported[0])
    assert card["training"]["initialized_from"]["file_sha256"] == start["file_sha256"]
    assert card["reproduce"][: len(start["reproduce"])] == start["reproduce"]
    assert "--init-from" in card["reproduce"][-2]
    assert card["training"]["train_wall_seconds_all_phases"] > start["training"]["train_wall_seconds_all_phases"]
    shutil.rmtree(base)  # the starting artifact is gone by the time the run is exported again: the record stands
    again = tmp_path / "ft-artifact-again"
    assert (
        run(
            env,
            "ml.export",
            "--checkpoint",
            out / "best.keras",
            "--out",
            again,
            "--head",
            "ferplus",
            "--format",
            "tflite",
            "--data",
            data_dir,
            "--bench-runs",
            2,
            "--latency-runs",
            3,
        ).returncode
        == 0
    )
    card_again = read_card(again)
    assert card_again["training"]["initialized_from"]["file_sha256"] == start["file_sha256"]
    assert card_again["reproduce"][: len(start["reproduce"])] == start["reproduce"]

    common = args[:-2]
    assert_clean_error(
        run(env, "ml.train", *common[:1], "cnn", *common[2:], "--init-from", exported[0]),
        1,
        "artifacts seed --model feednet only",
    )
    fer = [a if a != "ferplus-distribution" else "fer2013" for a in common]
    assert_clean_error(run(env, "ml.train", *fer, "--init-from", exported[0]), 1, "the artifact has one 'ferplus' head")


def test_train_narrows_and_deepens_a_shipped_artifact(exported, data_dir, env, tmp_path):
    """--stage-widths/--stage-convs with an --init-from artifact: the run trains the narrowed FeedNet, its export
    loads, and ml.warmstart reads the narrowed shape back from the export; more convs deepen it, same function."""
    from ml.checkpoints import load_checkpoint
    from ml.runtime import EmotionClassifier
    from ml.warmstart import feednet_from_artifact

    out = tmp_path / "lean"
    args = [
        "--model",
        "feednet",
        "--labels",
        "ferplus-distribution",
        "--epochs",
        1,
        "--limit",
        96,
        "--batch-size",
        32,
        "--data",
        data_dir,
        "--out",
        out,
        "--verbose",
        0,
        "--warmup-epochs",
        0,
        "--init-from",
        exported[0],
    ]
    done = run(env, "ml.train", *args, "--stage-widths", "4,8,16,24", "--stage-convs", "1,2,2,2")
    assert done.returncode == 0, done.stderr[-3000:]
    artifact = tmp_path / "lean-artifact"
    assert (
        run(
            env,
            "ml.export",
            "--checkpoint",
            out / "best.keras",
            "--out",
            artifact,
            "--head",
            "ferplus",
            "--format",
            "tflite",
            "--data",
            data_dir,
            "--bench-runs",
            2,
            "--latency-runs",
            3,
        ).returncode
        == 0
    )
    card = read_card(artifact)
    assert card["training"]["model_args"]["stage_widths"] == [4, 8, 16, 24]
    assert card["training"]["model_args"]["stage_convs"] == [1, 2, 2, 2]
    model, _ = feednet_from_artifact(artifact)
    assert {layer.name: layer.filters for layer in model.layers if layer.name.endswith("_conv")} == {
        "s0_c0_conv": 4,
        "s1_c0_conv": 8,
        "s1_c1_conv": 8,
        "s2_c0_conv": 16,
        "s2_c1_conv": 16,
        "s3_c0_conv": 24,
        "s3_c1_conv": 24,
    }
    x, _ = faces(16, seed=4)
    probs = EmotionClassifier.load(artifact).predict_proba(x)
    assert probs.shape == (16, 8) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)

    deep = tmp_path / "deep"
    deeper = [deep if a == out else a for a in args]
    done = run(env, "ml.train", *deeper, "--stage-convs", "2,2,3,3", "--epochs", 1, "--lr", "1e-9")
    assert done.returncode == 0, done.stderr[-3000:]
    deepened = load_checkpoint(deep / "best.keras")
    assert [
        layer.name for layer in deepened.layers if layer.name.startswith("s3_c") and layer.name.endswith("_conv")
    ] == ["s3_c0_conv", "s3_c1_conv", "s3_c2_conv"]
    source, _ = feednet_from_artifact(exported[0])
    x, _ = faces(8, seed=6)
    # lr 1e-9: one epoch leaves the weights where the identity start put them, so the deeper net is the artifact's function
    np.testing.assert_allclose(
        deepened.predict(x[..., None].astype(np.float32), verbose=0),
        source.predict(x[..., None].astype(np.float32), verbose=0),
        atol=1e-3,
    )

    assert_clean_error(run(env, "ml.train", *args, "--stage-widths", "4,64,16,24"), 1, "cannot narrow s1_c0_conv")
    assert_clean_error(
        run(env, "ml.train", *args, "--stage-widths", "4,8", "--stage-convs", "1,2,2"),
        1,
        "--stage-widths has 2 stages and --stage-convs 3",
    )
    assert_clean_error(run(env, "ml.train", *args, "--stage-widths", "4,x"), 2, "comma-separated positive integers")
    assert_clean_error(run(env, "ml.train", *args, "--stage-convs", "1,0,2,2"), 2, "comma-separated positive integers")
    assert_clean_error(
        run(env, "ml.train", *args, "--width", 4, "--stage-widths", "4,8,16,24"),
        1,
        "--width or --stage-widths, not both",
    )
    cnn = [a if a != "feednet" else "cnn" for a in args[:-2]]
    assert_clean_error(run(env, "ml.train", *cnn, "--stage-convs", "1,2"), 1, "apply to --model feednet only")
    assert_clean_error(
        run(env, "ml.train", *args[:-1], out / "best.keras", "--stage-convs", "1,2,2,2"),
        1,
        "a .keras checkpoint fixes the shape",
    )


def test_train_int8_weights_fine_tunes_on_the_int8_grid(exported, data_dir, env, tmp_path):
    """--int8-weights: the run trains through int8 weight rounding; its checkpoint loads as plain convs whose
    kernels are on the grid, the card records the flag, and the int8 export loads. Refused where it cannot apply."""
    from ml.checkpoints import load_checkpoint
    from ml.quant import int8_grid
    from ml.runtime import EmotionClassifier

    out = tmp_path / "qat"
    args = [
        "--model",
        "feednet",
        "--labels",
        "ferplus-distribution",
        "--epochs",
        1,
        "--limit",
        96,
        "--batch-size",
        32,
        "--data",
        data_dir,
        "--out",
        out,
        "--verbose",
        0,
        "--warmup-epochs",
        0,
    ]
    done = run(env, "ml.train", *args, "--init-from", exported[0], "--int8-weights")
    assert done.returncode == 0, done.stderr[-3000:]
    model = load_checkpoint(out / "best.keras")
    convs = [layer for layer in model.layers if layer.name.endswith("_conv")]
    assert convs and all(np.array_equal(int8_grid(k := layer.get_weights()[0]), k) for layer in convs)
    artifact = tmp_path / "qat-artifact"
    assert (
        run(
            env,
            "ml.export",
            "--checkpoint",
            out / "best.keras",
            "--out",
            artifact,
            "--head",
            "ferplus",
            "--format",
            "tflite-int8",
            "--data",
            data_dir,
            "--bench-runs",
            2,
            "--latency-runs",
            3,
        ).returncode
        == 0
    )
    card = read_card(artifact)
    assert card["training"]["model_args"]["int8_weights"] is True and card["format"] == "tflite-int8"
    assert EmotionClassifier.load(artifact).predict_proba(faces(4, seed=5)[0]).shape == (4, 8)
    assert_clean_error(
        run(env, "ml.train", *[a if a != "feednet" else "resnet50" for a in args], "--int8-weights"),
        1,
        "--int8-weights applies to feednet and cnn only",
    )


def test_train_builds_a_per_stage_feednet_from_scratch(data_dir, env, tmp_path):
    import keras

    out = tmp_path / "scratch"
    done = run(
        env,
        "ml.train",
        "--model",
        "feednet",
        "--labels",
        "fer2013",
        "--epochs",
        1,
        "--limit",
        64,
        "--batch-size",
        32,
        "--data",
        data_dir,
        "--out",
        out,
        "--verbose",
        0,
        "--stage-widths",
        "4,8,12",
        "--stage-convs",
        "1,1,2",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    model = keras.models.load_model(out / "best.keras")
    assert [layer.filters for layer in model.layers if layer.name.endswith("_conv")] == [4, 8, 12, 12]


def test_feednet_shapes_bench_smoke(env, tmp_path):
    """bench/feednet_shapes.py quantises each shape as ml.export does and reports both TTA modes."""
    done = run(
        env,
        "bench.feednet_shapes",
        "--shapes",
        "shipped,lean",
        "--batch-runs",
        1,
        "--latency-runs",
        1,
        "--repeat",
        1,
        "--out",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "feednet_shapes.json").read_text())
    assert list(result["shapes"]) == ["shipped", "lean"]
    assert result["shapes"]["shipped"]["mmacs_per_face"] == 117.4 and result["shapes"]["lean"]["mmacs_per_face"] == 84.3
    assert result["shapes"]["shipped"]["params"] == 1_173_736  # the shipped ferplus network's parameter count
    for row in result["shapes"].values():
        assert row["tta"]["faces_per_s_b64"] > 0 and row["no_tta"]["ms_per_face_b1"] > 0
    assert "| lean | 32/64/128/192 | 1/2/2/2 | 84.3 |" in (tmp_path / "feednet_shapes.md").read_text()
    assert_clean_error(run(env, "bench.feednet_shapes", "--shapes", "huge"), 2, "unknown shape")
    assert_clean_error(run(env, "bench.feednet_shapes", "--repeat", 0, "--out", tmp_path), 2, "must be positive")
