"""ml.runtime.EmotionClassifier: input validation, batching, calibration, formats, fork safety (no Django)."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from ml import labels as L
from ml.runtime import BATCH, BUCKETS, EmotionClassifier, bucket, chunk_sizes, default_threads
from ml.synthetic import faces
from tests.test_ml_cli import read_card

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    """One tiny random FeedNet exported in every runtime format (float, int8, onnx, keras)."""
    keras = pytest.importorskip("keras")
    from ml.formats import make_artifact
    from ml.models import build_feednet

    keras.utils.set_random_seed(7)
    model = build_feednet((48, 48, 1), 8, width=4)
    # a few quick epochs on synthetic faces so outputs differ between faces and are far from uniform
    train_x, train_y = faces(256, 8, seed=3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.5  # let the moving statistics catch up within a few steps
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="categorical_crossentropy")
    model.fit(
        train_x[..., None].astype(np.float32), np.eye(8, dtype=np.float32)[train_y], epochs=4, batch_size=32, verbose=0
    )
    root = tmp_path_factory.mktemp("artifacts")
    rep, _ = faces(64, seed=11)
    out = {}
    for fmt in ("tflite", "tflite-int8", "onnx", "keras"):
        if fmt == "onnx":
            pytest.importorskip("tf2onnx")
            pytest.importorskip("onnxruntime")
        out[fmt] = make_artifact(
            model,
            fmt,
            root / fmt,
            name=f"tiny-{fmt}",
            head="ferplus",
            labels=L.FERPLUS_LABELS,
            representative=rep if fmt == "tflite-int8" else None,
        )
    x, _ = faces(200, seed=5)
    out["reference"] = model.predict(x[..., None].astype(np.float32), verbose=0)
    out["faces"] = x
    return out


@pytest.fixture
def clf(artifacts):
    return EmotionClassifier.load(artifacts["tflite"])


def test_load_reads_card_lazily(artifacts):
    clf = EmotionClassifier.load(artifacts["tflite"] / "model_card.json")
    assert clf.labels == L.FERPLUS_LABELS and clf.name == "tiny-tflite" and clf.format == "tflite"
    assert clf.card.head == "ferplus" and clf.temperature == 1.0 and clf.tta is False
    assert clf._backend.created == 0  # nothing built until the first prediction
    clf.predict_proba(artifacts["faces"][:1])
    assert clf._backend.created == 1


def test_predictions_match_keras(artifacts, clf):
    probs = clf.predict_proba(artifacts["faces"])
    assert probs.dtype == np.float32 and probs.shape == (200, 8)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(probs, artifacts["reference"], atol=1e-4)
    assert probs.max(axis=1).mean() > 0.2 and len(set(probs.argmax(axis=1))) > 2, "test model is degenerate"


@pytest.mark.parametrize("fmt", ["keras", "onnx"])
def test_other_float_formats_match(artifacts, fmt):
    if fmt not in artifacts:
        pytest.skip(f"{fmt} not available")
    probs = EmotionClassifier.load(artifacts[fmt]).predict_proba(artifacts["faces"][:70])
    assert np.allclose(probs, artifacts["reference"][:70], atol=1e-4)


def test_int8_is_close(artifacts):
    probs = EmotionClassifier.load(artifacts["tflite-int8"]).predict_proba(artifacts["faces"])
    assert probs.shape == (200, 8) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    assert np.abs(probs - artifacts["reference"]).max() < 0.1
    agree = np.mean(probs.argmax(axis=1) == artifacts["reference"].argmax(axis=1))
    assert agree > 0.8


def test_input_shapes_and_validation(artifacts, clf):
    x = artifacts["faces"][:3]
    batch = clf.predict_proba(x)
    assert np.allclose(clf.predict_proba(x[..., None]), batch, atol=1e-6)
    single = clf.predict_proba(x[0])
    assert single.shape == (1, 8) and np.allclose(single[0], batch[0], atol=1e-5)
    assert clf.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 8)
    assert clf.predict_proba(list(x)).shape == (3, 8)  # array-likes of uint8 are fine
    with pytest.raises(ValueError, match="must be uint8"):
        clf.predict_proba(x.astype(np.float32))
    for bad in (
        np.zeros((2, 48, 47), np.uint8),
        np.zeros((2, 48, 48, 3), np.uint8),
        np.zeros((48,), np.uint8),
        np.zeros((2, 2, 48, 48), np.uint8),
    ):
        with pytest.raises(ValueError, match=r"faces must have shape \(N, 48, 48\)"):
            clf.predict_proba(bad)


def test_batching_across_chunks_equals_per_face(artifacts, clf):
    x = artifacts["faces"][:150]  # 64 + 64 + 22
    batched = clf.predict_proba(x)
    per_face = np.concatenate([clf.predict_proba(face) for face in x[:150:7]])
    assert np.allclose(batched[::7], per_face, atol=1e-5)
    assert np.allclose(clf.predict_proba(x[128:150]), batched[128:150], atol=1e-5)  # the 22-face remainder
    for n in (3, 5, 7, 17, 33, 40):  # padded (7) or split into buckets (17 = 16 + 1, 40 = 32 + 8)
        assert np.allclose(clf.predict_proba(x[:n]), batched[:n], atol=1e-5)
    assert set(clf._backend._interpreters) <= {1, 2, 4, 8, 16, 32, 64}  # padded to buckets: bounded count


def test_temperature_and_tta(artifacts):
    x = artifacts["faces"][:20]
    raw = EmotionClassifier.load(artifacts["tflite"]).predict_proba(x).astype(np.float64)
    hot = EmotionClassifier.load(artifacts["tflite"], temperature=2.5).predict_proba(x)
    logits = np.log(np.clip(raw, 1e-12, 1)) / 2.5
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(hot, expected, atol=1e-5)
    assert np.array_equal(hot.argmax(axis=1), raw.argmax(axis=1))
    flipped = EmotionClassifier.load(artifacts["tflite"]).predict_proba(np.ascontiguousarray(x[:, :, ::-1]))
    tta = EmotionClassifier.load(artifacts["tflite"], tta=True).predict_proba(x)
    assert np.allclose(tta, (raw + flipped) / 2, atol=1e-5)
    with pytest.raises(ValueError, match="temperature must be positive"):
        EmotionClassifier.load(artifacts["tflite"], temperature=0.0)


def test_card_temperature_is_applied(artifacts, tmp_path):
    import shutil

    copy = Path(shutil.copytree(artifacts["tflite"], tmp_path / "a"))
    card = read_card(copy)
    card.update(temperature=0.5, tta=True)
    (copy / "model_card.json").write_text(json.dumps(card))
    clf = EmotionClassifier.load(copy)
    assert clf.temperature == 0.5 and clf.tta
    x = artifacts["faces"][:5]
    raw = EmotionClassifier.load(copy, temperature=1.0, tta=False)
    avg = (raw.predict_proba(x) + raw.predict_proba(np.ascontiguousarray(x[:, :, ::-1]))) / 2
    z = np.log(np.clip(avg.astype(np.float64), 1e-12, 1)) / 0.5
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    assert np.allclose(clf.predict_proba(x), expected / expected.sum(axis=1, keepdims=True), atol=1e-5)


def test_flipping_tta_uses_the_cards_other_calibration(artifacts, tmp_path):
    import shutil

    copy = Path(shutil.copytree(artifacts["tflite"], tmp_path / "a"))
    card = read_card(copy)
    card.update(temperature=0.5, tta=True)
    (copy / "model_card.json").write_text(json.dumps(card))
    assert EmotionClassifier.load(copy, tta=False).temperature == 0.5  # no other_tta: the card's own
    card["other_tta"] = {"tta": False, "temperature": 0.8}
    (copy / "model_card.json").write_text(json.dumps(card))
    plain = EmotionClassifier.load(copy, tta=False)
    assert (plain.tta, plain.temperature) == (False, 0.8)
    x = artifacts["faces"][:5]
    expected = EmotionClassifier.load(copy, tta=False, temperature=0.8).predict_proba(x)
    assert np.allclose(plain.predict_proba(x), expected, atol=1e-6)
    assert EmotionClassifier.load(copy).temperature == 0.5  # the card's mode keeps its own
    assert EmotionClassifier.load(copy, tta=False, temperature=2.0).temperature == 2.0  # explicit wins
    card["other_tta"] = {"tta": True, "temperature": 0.8}  # describes the card's own mode: ignored
    (copy / "model_card.json").write_text(json.dumps(card))
    assert EmotionClassifier.load(copy, tta=False).temperature == 0.5


def test_card_class_bias_is_applied_and_explicit_temperature_drops_it(artifacts, tmp_path):
    import shutil

    copy = Path(shutil.copytree(artifacts["tflite"], tmp_path / "a"))
    card = read_card(copy)
    bias = [0.5, -0.5, 0.0, 0.25, -0.25, 0.0, 1.0, -1.0]
    card.update(temperature=0.5, class_bias=bias)
    (copy / "model_card.json").write_text(json.dumps(card))
    x = artifacts["faces"][:6]
    raw = EmotionClassifier.load(copy, temperature=1.0)  # an explicit temperature: the raw probabilities
    assert raw.class_bias is None
    z = np.log(np.clip(raw.predict_proba(x).astype(np.float64), 1e-12, 1)) / 0.5 + np.array(bias)
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    clf = EmotionClassifier.load(copy)
    assert np.allclose(clf.predict_proba(x), expected / expected.sum(axis=1, keepdims=True), atol=1e-5)
    assert "class bias" in repr(clf)
    again = pickle.loads(pickle.dumps(clf))
    assert np.allclose(again.predict_proba(x), clf.predict_proba(x), atol=1e-6)
    both = EmotionClassifier.load(copy, temperature=0.5, class_bias=bias)
    assert np.allclose(both.predict_proba(x), clf.predict_proba(x), atol=1e-6)
    card["other_tta"] = {"tta": True, "temperature": 0.8}  # the other mode was calibrated without a bias
    (copy / "model_card.json").write_text(json.dumps(card))
    assert EmotionClassifier.load(copy, tta=True).class_bias is None
    for bad in ([0.0] * 7, [0.0] * 7 + [float("nan")], "0 0 0 0 0 0 0 0"):
        card["class_bias"] = bad
        (copy / "model_card.json").write_text(json.dumps(card))
        with pytest.raises(ValueError, match="class_bias must be 8 finite numbers"):
            EmotionClassifier.load(copy)


def test_chunk_sizes_cover_every_face_with_little_padding():
    for n in range(1, BATCH + 1):
        sizes = chunk_sizes(n)
        assert sum(sizes) == n and all(1 <= size <= BATCH for size in sizes)
        assert all(size in BUCKETS for size in sizes[:-1])  # only the last chunk may be padded
        assert bucket(sizes[-1]) - sizes[-1] <= sizes[-1] // 4


def test_selective_flip_mirrors_only_the_unsure_faces(artifacts, tmp_path):
    import shutil

    x = artifacts["faces"][:64]
    plain = EmotionClassifier.load(artifacts["tflite"], tta=False).predict_proba(x)
    everyone = EmotionClassifier.load(artifacts["tflite"], tta=True).predict_proba(x)
    threshold = float(np.median(plain.max(axis=1)))
    unsure = plain.max(axis=1) < threshold
    assert 0 < unsure.sum() < len(x)

    copy = Path(shutil.copytree(artifacts["tflite"], tmp_path / "a"))
    card = read_card(copy)
    card.update(tta=True, tta_flip_below=threshold)
    (copy / "model_card.json").write_text(json.dumps(card))
    clf = EmotionClassifier.load(copy)
    assert clf.flip_below == threshold and f"flip_below={threshold:g}" in repr(clf)
    got = clf.predict_proba(x)
    assert np.allclose(got[unsure], everyone[unsure], atol=1e-6)
    assert np.allclose(got[~unsure], plain[~unsure], atol=1e-6)
    assert not np.allclose(got, everyone, atol=1e-4)
    assert np.allclose(pickle.loads(pickle.dumps(clf)).predict_proba(x), got, atol=1e-6)
    assert np.allclose(EmotionClassifier.load(copy, flip_below=math.inf).predict_proba(x), everyone, atol=1e-6)
    assert math.isinf(EmotionClassifier.load(copy, tta=False).flip_below)  # the other mode has no threshold
    with pytest.raises(ValueError, match="flip_below must be positive"):
        EmotionClassifier.load(copy, flip_below=0.0)
    for bad in (0, -0.5, "0.7", True):
        (copy / "model_card.json").write_text(json.dumps({**card, "tta_flip_below": bad}))
        with pytest.raises(ValueError, match="tta_flip_below must be a positive number"):
            EmotionClassifier.load(copy)


def test_bad_artifacts(tmp_path, artifacts):
    with pytest.raises(FileNotFoundError, match="not an exported model artifact"):
        EmotionClassifier.load(tmp_path)
    (tmp_path / "model_card.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        EmotionClassifier.load(tmp_path)
    card = json.loads((artifacts["tflite"] / "model_card.json").read_text())
    (tmp_path / "model_card.json").write_text(json.dumps({**card, "format": "pytorch"}))
    with pytest.raises(ValueError, match="unknown format 'pytorch'"):
        EmotionClassifier.load(tmp_path)
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(FileNotFoundError, match="model.tflite"):
        EmotionClassifier.load(tmp_path)


def test_threads_from_environment(monkeypatch, artifacts):
    monkeypatch.setenv("FEEDMOOD_INFER_THREADS", "1")
    assert default_threads() == 1 and EmotionClassifier.load(artifacts["tflite"]).threads == 1
    monkeypatch.setenv("FEEDMOOD_INFER_THREADS", "zero")
    with pytest.raises(ValueError, match="FEEDMOOD_INFER_THREADS"):
        default_threads()
    monkeypatch.delenv("FEEDMOOD_INFER_THREADS")
    assert 1 <= default_threads() <= 2


FORK_SCRIPT = """
import multiprocessing, os, sys
import numpy as np
from ml.runtime import EmotionClassifier

def child_predict(clf, x, queue):
    try:
        before = clf._backend.created
        probs = clf.predict_proba(x)
        queue.put((os.getpid(), clf._pid, before, clf._backend.created, probs))
    except BaseException as exc:
        queue.put(exc)

clf = EmotionClassifier.load(sys.argv[1])
x = np.load(sys.argv[2])
parent = clf.predict_proba(x)  # the parent builds (and uses) its interpreters before forking
ctx = multiprocessing.get_context("fork")
queue = ctx.Queue()
child = ctx.Process(target=child_predict, args=(clf, x, queue))
child.start()
result = queue.get(timeout=60)
child.join(timeout=30)
assert child.exitcode == 0, child.exitcode
assert not isinstance(result, BaseException), result
pid, seen_pid, before, after, probs = result
assert pid != os.getpid() and seen_pid == pid  # the child noticed the fork ...
assert after > before  # ... and built its own interpreter instead of reusing the parent's
assert np.allclose(probs, parent, atol=1e-6)
assert np.allclose(clf.predict_proba(x), parent, atol=1e-6)  # the parent still works afterwards
print("FORK-OK")
"""


@pytest.mark.timeout(120)
def test_fork_safety(artifacts, tmp_path):
    # A fresh interpreter, like a Celery prefork parent: the test process itself has TensorFlow
    # loaded by other tests, and forking a process with TensorFlow in it is not what we ship.
    faces = tmp_path / "faces.npy"
    np.save(faces, artifacts["faces"][:70])
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(artifacts["tflite"]), str(faces)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0 and "FORK-OK" in done.stdout, done.stderr[-3000:]


def test_pickle_reloads(artifacts, clf):
    x = artifacts["faces"][:4]
    again = pickle.loads(pickle.dumps(clf))
    assert again.labels == clf.labels and np.allclose(again.predict_proba(x), clf.predict_proba(x), atol=1e-6)


def test_tflite_runtime_imports_neither_tensorflow_nor_django(artifacts):
    code = (
        "import sys, numpy as np\n"
        "from ml.runtime import EmotionClassifier\n"
        f"clf = EmotionClassifier.load({str(artifacts['tflite'])!r})\n"
        "p = clf.predict_proba(np.zeros((3, 48, 48), np.uint8))\n"
        "assert p.shape == (3, 8), p.shape\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'django', 'torch'))\n"
        "print('HEAVY', heavy)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout, done.stdout


def test_mixed_precision_model_exports_as_float32(tmp_path):
    keras = pytest.importorskip("keras")
    from ml.checkpoints import as_float32
    from ml.formats import make_artifact
    from ml.models import build_feednet

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        mixed = build_feednet((48, 48, 1), 8, width=4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    plain = as_float32(mixed)
    assert plain is not mixed and all(layer.dtype_policy.name == "float32" for layer in plain.layers)
    assert as_float32(plain) is plain
    x, _ = faces(8, seed=1)
    make_artifact(plain, "tflite", tmp_path / "a", name="mixed", head="ferplus", labels=L.FERPLUS_LABELS)
    probs = EmotionClassifier.load(tmp_path / "a").predict_proba(x)
    assert np.allclose(probs, mixed.predict(x[..., None].astype(np.float32), verbose=0), atol=2e-2)
