"""ml.models / ml.augment / ml.pipeline: every architecture builds small and really trains one step."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from ml import models as M  # noqa: E402
from ml.augment import AugmentConfig, mix_batch, random_affine, random_erasing  # noqa: E402
from ml.models.transfer import BASE_LAYER_NAME, unfreeze_base  # noqa: E402
from ml.pipeline import make_dataset, sample_weights  # noqa: E402
from ml.synthetic import faces  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SMALL = {
    "cnn": {},
    "feednet": {"width": 4},
    "resnet50": {"weights": None, "base_size": 32},
    "resnet50v2": {"weights": None, "base_size": 32},
    "vgg16": {"weights": None, "base_size": 32},
}


def _data(n: int = 8, k: int = 7, seed: int = 0):
    x, y = faces(n, k, seed)
    return x[..., None].astype(np.float32), np.eye(k, dtype=np.float32)[y]


def _train_one_step(model, x, y, eager: bool = False):
    # eager=True skips tf.function tracing, which dominates the cost of one step for the deep backbones
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"], run_eagerly=eager
    )
    before = [w.numpy().copy() for w in model.trainable_weights]
    logs = model.train_on_batch(x, y, return_dict=True)
    after = [w.numpy() for w in model.trainable_weights]
    assert np.isfinite(logs["loss"])
    assert any(not np.array_equal(a, b) for a, b in zip(before, after)), "no trainable weight moved"
    return model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)


def test_builders_cover_every_architecture():
    assert set(M.BUILDERS) == set(SMALL)
    assert {"resnet50", "resnet50v2", "vgg16"} == M.TRANSFER_MODELS


@pytest.mark.parametrize("name", ["cnn", "feednet"])
def test_scratch_models_train_one_step(name):
    model = M.build_model(name, (48, 48, 1), 7, **SMALL[name])
    x, y = _data()
    probs = model.predict(x, verbose=0)
    assert probs.shape == (8, 7) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert model.layers[-1].name == "probs"
    result = _train_one_step(model, x, y)
    assert np.isfinite(result["loss"]) and 0.0 <= result["accuracy"] <= 1.0


@pytest.mark.parametrize("name", ["resnet50", "resnet50v2", "vgg16"])
def test_transfer_models_train_one_step(name, tmp_path):
    model = M.build_model(name, (48, 48, 1), 8, **SMALL[name])
    base = model.get_layer(BASE_LAYER_NAME)
    assert not base.trainable and base.input.shape[1:] == (32, 32, 3)
    frozen_trainable = len(model.trainable_weights)
    assert frozen_trainable == 4  # the two Dense layers of the head
    unfreeze_base(model)
    assert base.trainable and len(model.trainable_weights) > frozen_trainable
    x, y = _data(4, 8)
    result = _train_one_step(model, x, y, eager=True)  # one step through the whole network, then one evaluation
    assert np.isfinite(result["loss"])
    if name == "vgg16":  # the custom ImagenetPreprocess layer survives a save/load round trip (cheapest base)
        model.save(tmp_path / "m.keras")
        again = keras.saving.load_model(tmp_path / "m.keras", compile=False)
        assert np.allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-4)


def test_imagenet_preprocess_modes():
    from ml.models.transfer import CAFFE_BGR_MEAN, ImagenetPreprocess

    rgb = np.array([[[[10.0, 20.0, 30.0]]]], dtype=np.float32)
    caffe = ImagenetPreprocess("caffe")(rgb).numpy()[0, 0, 0]
    assert np.allclose(caffe, [30 - CAFFE_BGR_MEAN[0], 20 - CAFFE_BGR_MEAN[1], 10 - CAFFE_BGR_MEAN[2]])
    assert np.allclose(ImagenetPreprocess("tf")(np.full((1, 1, 1, 3), 255.0, np.float32)).numpy(), 1.0)
    clone = ImagenetPreprocess.from_config(ImagenetPreprocess("tf", name="p").get_config())
    assert clone.mode == "tf"


def test_transfer_weights_must_be_a_local_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloads"):
        M.build_model("vgg16", (48, 48, 1), 7, weights=str(tmp_path / "missing.h5"), base_size=32)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'mobilenet'"):
        M.build_model("mobilenet", (48, 48, 1), 7)


def test_add_heads_multitask_trains_with_dict_targets():
    model = M.add_heads(M.build_feednet((48, 48, 1), 7, width=4), {"fer2013": 7, "ferplus": 8})
    assert isinstance(model.output, dict) and set(model.output) == {"fer2013", "ferplus"}
    x, y7 = _data(8, 7)
    y8 = np.eye(8, dtype=np.float32)[np.arange(8)]
    model.compile(optimizer="adam", loss={"fer2013": "categorical_crossentropy", "ferplus": "categorical_crossentropy"})
    logs = model.train_on_batch(x, {"fer2013": y7, "ferplus": y8}, return_dict=True)
    assert np.isfinite(logs["loss"])
    out = model.predict(x, verbose=0)
    assert out["fer2013"].shape == (8, 7) and out["ferplus"].shape == (8, 8)
    # slicing one head gives a standalone single-output model
    sub = keras.Model(model.input, model.output["ferplus"])
    assert np.allclose(sub.predict(x, verbose=0), out["ferplus"], atol=1e-6)


def test_random_affine_keeps_shape_and_range_and_changes_images():
    x = tf.constant(_data(16)[0])
    out = random_affine(x).numpy()
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= float(tf.reduce_min(x)) - 1e-3 and out.max() <= float(tf.reduce_max(x)) + 1e-3
    changed = np.abs(out - x.numpy()).reshape(16, -1).mean(axis=1)
    assert np.all(changed > 0.5), "every image should be warped"
    # flip only: a pure horizontal mirror or the identity, nothing else
    flip_only = random_affine(x, AugmentConfig(rotation_deg=0.0, shift=0.0, zoom=(1.0, 1.0), hflip=True)).numpy()
    for a, b in zip(flip_only, x.numpy()):
        assert np.allclose(a, b, atol=1e-3) or np.allclose(a, b[:, ::-1], atol=1e-3)


def test_random_erasing_fills_one_rectangle_per_chosen_image():
    x = tf.fill([64, 48, 48, 1], -1.0)  # a value the noise (0..255) never takes
    out = random_erasing(x, 1.0, area=(0.1, 0.2)).numpy()[..., 0]
    assert out.shape == (64, 48, 48)
    for image in out:
        rows, cols = np.nonzero(image != -1.0)
        assert rows.size, "every image is erased at probability 1"
        box = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert np.all(box != -1.0), "the erased pixels form one solid rectangle"
        assert 0.05 <= box.size / image.size <= 0.25  # area 10-20 %, give or take the clipping and rounding
        assert box.min() >= 0.0 and box.max() <= 255.0 and box.std() > 10  # noise, not a constant
    assert np.array_equal(random_erasing(x, 0.0).numpy(), x.numpy())
    some = random_erasing(x, 0.5).numpy()
    erased = np.any(some != -1.0, axis=(1, 2, 3)).mean()
    assert 0.2 < erased < 0.8
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        random_erasing(x, 1.5)


def _constant_batch(n: int = 32):
    """Image i filled with the value 8 * i, a one-hot target for class i and weight i + 1 (row 5 unlabelled)."""
    values = 8.0 * np.arange(n, dtype=np.float32)
    x = tf.constant(np.broadcast_to(values[:, None, None, None], (n, 48, 48, 1)).copy())
    y = np.eye(n, dtype=np.float32)
    w = np.arange(1, n + 1, dtype=np.float32)
    w[5] = 0.0
    return values, x, tf.constant(y), tf.constant(w)


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mix_batch_blends_images_targets_and_weights_alike(kind):
    values, x, y, w = _constant_batch()
    tf.random.set_seed(3)
    out, ym, wm = mix_batch(x, {"fer2013": y}, {"fer2013": w}, **{kind: 1.0})
    out, ym, wm = out.numpy()[..., 0], ym["fer2013"].numpy(), wm["fer2013"].numpy()
    mixed = 0
    for i in range(len(values)):
        partners = [j for j in np.nonzero(ym[i])[0] if j != i]
        assert len(partners) <= 1 and ym[i].sum() == pytest.approx(1.0, abs=1e-5)
        lam = ym[i, i]
        if not partners:  # mixed with itself, or lam rounded to 1
            assert np.allclose(out[i], values[i]) and wm[i] == w.numpy()[i]
            continue
        j, mixed = partners[0], mixed + 1
        if kind == "mixup":  # every pixel the same convex blend as the target
            assert np.allclose(out[i], lam * values[i] + (1 - lam) * values[j], atol=1e-3)
        else:  # one solid box of the partner's pixels, whose share is the partner's target weight
            from_partner = out[i] == values[j]
            assert np.all((out[i] == values[i]) | from_partner)
            rows, cols = np.nonzero(from_partner)
            assert from_partner[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
            assert from_partner.mean() == pytest.approx(1 - lam, abs=1e-5)
        expected = 0.0 if 5 in (i, j) else lam * (i + 1) + (1 - lam) * (j + 1)
        assert wm[i] == pytest.approx(expected, rel=1e-5), "an unlabelled row or partner drops the mixed row"
    assert mixed >= len(values) // 2


def test_mix_batch_probability_and_arguments():
    _values, x, y, w = _constant_batch()
    same = mix_batch(x, y, w, mixup=0.4, probability=0.0)
    assert same[0] is x and same[1] is y and same[2] is w
    assert mix_batch(x, y, w)[0] is x  # both concentrations 0: off
    tf.random.set_seed(4)
    _, ym, _ = mix_batch(x, y, w, mixup=1.0, cutmix=1.0, probability=0.5)
    untouched = np.isclose(ym.numpy().max(axis=1), 1.0).mean()
    assert 0.2 < untouched < 0.9
    for bad in ({"mixup": -1.0}, {"cutmix": float("nan")}, {"mixup": 1.0, "probability": 1.5}):
        with pytest.raises(ValueError, match="must be"):
            mix_batch(x, y, w, **bad)


def test_make_dataset_and_sample_weights():
    images, cls = faces(10, 7, seed=2)
    targets = {"fer2013": np.eye(7, dtype=np.float32)[cls]}
    valid = np.ones(10, np.float32)
    valid[3] = 0
    weights = {"fer2013": sample_weights(targets["fer2013"], valid, "balanced")}
    assert weights["fer2013"][3] == 0 and np.all(weights["fer2013"][valid > 0] > 0)
    ds = make_dataset(images, targets, weights, 4, shuffle=False, augment=False)
    xb, yb, wb = next(iter(ds))
    assert xb.shape == (4, 48, 48, 1) and xb.dtype == tf.float32 and yb.shape == (4, 7) and wb.shape == (4,)
    assert np.array_equal(xb.numpy()[..., 0], images[:4].astype(np.float32))
    aug = make_dataset(images, targets, weights, 4, shuffle=True, augment=True, seed=1, single_output=False)
    xa, ya, _wa = next(iter(aug))
    assert isinstance(ya, dict) and set(ya) == {"fer2013"} and xa.shape == (4, 48, 48, 1)
    assert float(tf.reduce_min(xa)) >= 0.0 and float(tf.reduce_max(xa)) <= 255.0
    mixed = make_dataset(images, targets, weights, 10, shuffle=False, augment=True, cutmix=1.0, seed=1)
    _, ym, _ = next(iter(mixed))
    assert np.allclose(ym.numpy().sum(axis=1), 1.0) and (ym.numpy().max(axis=1) < 1.0).any()  # soft, mixed targets


def test_folded_feednet_has_conv_biases_and_no_batchnorm():
    from ml.models.feednet import build_feednet

    folded = build_feednet((48, 48, 1), 8, width=4, batch_norm=False)
    plain = build_feednet((48, 48, 1), 8, width=4)
    assert not any(layer.name.endswith("_bn") for layer in folded.layers)
    assert all(layer.use_bias for layer in folded.layers if layer.name.endswith("_conv"))
    bn_params = sum(layer.count_params() for layer in plain.layers if layer.name.endswith("_bn"))
    conv_biases = sum(layer.filters for layer in folded.layers if layer.name.endswith("_conv"))
    assert folded.count_params() == plain.count_params() - bn_params + conv_biases


def test_feednet_per_stage_widths_and_convs():
    from ml.models.feednet import build_feednet, stage_plan

    model = build_feednet((48, 48, 1), 8, stage_widths=(4, 8, 12), stage_convs=(1, 2, 1), batch_norm=False)
    convs = {layer.name: layer.filters for layer in model.layers if layer.name.endswith("_conv")}
    assert convs == {"s0_c0_conv": 4, "s1_c0_conv": 8, "s1_c1_conv": 8, "s2_c0_conv": 12}
    assert model.output_shape == (None, 8)
    assert stage_plan(4, 2, 3) == ((4, 8, 16), (2, 2, 2))
    assert stage_plan(4, 2, 4, stage_convs=(1, 2)) == ((4, 8), (1, 2))  # the lists set the stage count
    with pytest.raises(ValueError, match="differ in length"):
        stage_plan(4, 2, 4, (4, 8), (1, 2, 2))
    with pytest.raises(ValueError, match="at least one conv"):
        build_feednet((48, 48, 1), 8, stage_widths=(4, 8), stage_convs=(1, 0))


def test_reshape_feednet_narrows_to_the_strongest_channels_and_deepens_with_identities():
    """Same shape: the same function. Narrower: the largest-L1 channels, their inputs and head rows. Deeper: the
    new convs are identities, so the same function again (also when narrowed too). Wider or a new stage: refused."""
    from ml.models.feednet import build_feednet
    from ml.warmstart import WarmStartError, reshape_feednet

    source = build_feednet((48, 48, 1), 8, stage_widths=(4, 8), stage_convs=(2, 2), batch_norm=False)
    rng = np.random.default_rng(3)
    for layer in source.layers:
        if layer.weights:
            layer.set_weights([rng.normal(0, 0.3, w.shape).astype(np.float32) for w in layer.get_weights()])
    kernel, bias = source.get_layer("s1_c1_conv").get_weights()
    kernel[..., [1, 6]] *= 10.0  # the two channels a 2-wide last stage must keep
    source.get_layer("s1_c1_conv").set_weights([kernel, bias])
    x = rng.integers(0, 256, (4, 48, 48, 1)).astype(np.float32)

    same = reshape_feednet(source, (4, 8), (2, 2))
    np.testing.assert_allclose(same.predict(x, verbose=0), source.predict(x, verbose=0), atol=1e-6)

    narrow = reshape_feednet(source, (4, 2), (1, 2))
    assert [layer.name for layer in narrow.layers if layer.name.endswith("_conv")] == [
        "s0_c0_conv",
        "s1_c0_conv",
        "s1_c1_conv",
    ]
    last_kernel, last_bias = narrow.get_layer("s1_c1_conv").get_weights()
    first_kernel = source.get_layer("s1_c0_conv").get_weights()[0]
    kept_in = np.sort(np.argsort(-np.abs(first_kernel).sum(axis=(0, 1, 2)))[:2])
    np.testing.assert_array_equal(last_kernel, kernel[:, :, kept_in][..., [1, 6]])
    np.testing.assert_array_equal(last_bias, bias[[1, 6]])
    head = source.get_layer("probs").get_weights()[0]
    np.testing.assert_array_equal(narrow.get_layer("probs").get_weights()[0], head[[1, 6]])
    # s0_c1 is gone: s1_c0 reads s0_c0's 4 channels where it read s0_c1's
    np.testing.assert_array_equal(
        narrow.get_layer("s0_c0_conv").get_weights()[0], source.get_layer("s0_c0_conv").get_weights()[0]
    )

    with pytest.raises(WarmStartError, match="cannot narrow s1_c0_conv"):
        reshape_feednet(source, (4, 16), (2, 2))
    deeper = reshape_feednet(source, (4, 8), (3, 4))
    assert [layer.name for layer in deeper.layers if layer.name.endswith("_conv")] == [
        "s0_c0_conv",
        "s0_c1_conv",
        "s0_c2_conv",
        "s1_c0_conv",
        "s1_c1_conv",
        "s1_c2_conv",
        "s1_c3_conv",
    ]
    np.testing.assert_allclose(deeper.predict(x, verbose=0), source.predict(x, verbose=0), atol=1e-6)
    both = reshape_feednet(source, (4, 2), (1, 3))
    np.testing.assert_allclose(both.predict(x, verbose=0), narrow.predict(x, verbose=0), atol=1e-6)
    assert np.abs(deeper.get_layer("s1_c2_conv").get_weights()[0]).sum() == 8  # one centre tap per channel

    with pytest.raises(WarmStartError, match="cannot add s2_c0_conv"):
        reshape_feednet(source, (4, 8, 16), (2, 2, 1))
