"""The FER pipeline on real images (no ORM): decode, detect every face, crop, classify."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from emotion import pipeline, testing
from emotion.affect import CIRCUMPLEX, valence_arousal
from emotion.fixtures import face_jpeg, faces_png, fer_model_dir, no_face_png  # noqa: F401
from emotion.inference import get_classifier, load_classifier
from ml import labels as L
from tests.fer_data import shared_fer_dir

SHARED_FER = shared_fer_dir()


@pytest.fixture(scope="module")
def classifier(fer_model_dir: Path):
    return get_classifier(fer_model_dir)


def test_service_classifier_follows_the_tta_setting(fer_model_dir: Path, settings) -> None:
    card = load_classifier(fer_model_dir).card
    settings.FEEDMOOD_MODEL_TTA = None
    assert load_classifier(fer_model_dir).tta is card.tta
    settings.FEEDMOOD_MODEL_TTA = not card.tta
    flipped = load_classifier(fer_model_dir)
    assert flipped.tta is not card.tta
    assert flipped.temperature == (card.other_tta or card).temperature


# --- Affect ---------------------------------------------------------------------------------


def test_circumplex_covers_every_canonical_label() -> None:
    assert set(CIRCUMPLEX) == set(L.CANONICAL)
    assert all(-1 <= v <= 1 and -1 <= a <= 1 for v, a in CIRCUMPLEX.values())
    assert CIRCUMPLEX["happiness"][0] > 0 > CIRCUMPLEX["sadness"][0]
    assert CIRCUMPLEX["surprise"][1] > CIRCUMPLEX["neutral"][1] > CIRCUMPLEX["sadness"][1]


def test_valence_arousal_is_probability_weighted() -> None:
    labels = L.FERPLUS_LABELS
    one_hot = np.eye(len(labels), dtype=np.float32)
    np.testing.assert_allclose(valence_arousal(one_hot, labels), [CIRCUMPLEX[n] for n in labels], atol=1e-6)
    half = np.zeros(len(labels))
    half[labels.index("happiness")] = half[labels.index("sadness")] = 0.5
    np.testing.assert_allclose(valence_arousal(half, labels), [0.05, 0.05], atol=1e-6)
    # 7-class models (no contempt) work too.
    assert valence_arousal(np.full(7, 1 / 7), L.FER2013_LABELS).shape == (2,)
    with pytest.raises(ValueError):
        valence_arousal(np.ones(3), ("joy", "rage", "meh"))


# --- Detection and classification on real photos ------------------------------------------------


def test_one_face_photo(classifier, face_jpeg: bytes) -> None:
    result = pipeline.analyze_bytes(face_jpeg, classifier)
    assert (result.width, result.height) == (640, 480)
    assert result.face_count == 1
    face = result.faces[0]
    # The astronaut's face sits in the upper middle of the 640x480 frame.
    assert 200 <= face.box.x <= 280 and 30 <= face.box.y <= 90 and 80 <= face.box.w <= 140
    assert set(face.probabilities) == set(classifier.labels)
    assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    assert face.dominant == max(face.probabilities, key=face.probabilities.get)
    assert face.confidence == pytest.approx(max(face.probabilities.values()), abs=1e-5)
    assert -1 <= face.valence <= 1 and -1 <= face.arousal <= 1
    assert result.decode_ms > 0 and result.detect_ms > 0 and result.classify_ms > 0


def test_every_face_is_found_and_classified_in_one_batch(classifier, faces_png: bytes) -> None:
    calls = []
    original = classifier.predict_proba

    class Counting:
        labels = classifier.labels

        def predict_proba(self, faces: np.ndarray) -> np.ndarray:
            calls.append(faces.shape)
            return original(faces)

    result = pipeline.analyze_bytes(faces_png, Counting())
    assert result.face_count == 3
    assert calls == [(3, 48, 48)]  # one batched call for all faces
    xs = [face.box.x for face in result.faces]
    assert xs == sorted(xs) and [face.index for face in result.faces] == [0, 1, 2]
    for i, face in enumerate(result.faces):  # one face per 512-px tile, in original coordinates
        assert 512 * i <= face.box.x < 512 * (i + 1)


def test_large_photo_is_downscaled_for_detection_and_boxes_map_back(classifier) -> None:
    big = testing.one_face_image(2560, 1920)
    result = pipeline.analyze_bytes(testing.encode(big, "JPEG"), classifier)
    assert (result.width, result.height) == (2560, 1920)
    assert result.face_count == 1
    box = result.faces[0].box
    assert 800 <= box.x <= 1120 and 120 <= box.y <= 360 and 320 <= box.w <= 560  # 4x the 640x480 box


def test_exif_orientation_is_applied(classifier) -> None:
    upright = testing.one_face_image()
    result = pipeline.analyze_bytes(testing.rotated_with_exif(upright), classifier)
    assert (result.width, result.height) == (640, 480)  # displayed orientation, not stored
    assert result.face_count == 1


def test_no_face_is_a_result_not_an_error(classifier, no_face_png: bytes) -> None:
    for data in (no_face_png, testing.encode(np.full((300, 400, 3), 90, np.uint8), "JPEG")):
        result = pipeline.analyze_bytes(data, classifier)
        assert result.faces == ()
        assert result.classify_ms >= 0


def test_noise_image_has_no_face(classifier) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (480, 640), dtype=np.uint8)
    assert pipeline.analyze_bytes(testing.encode(noise, "PNG"), classifier).faces == ()


def test_tiny_image_has_no_face(classifier) -> None:
    assert pipeline.analyze_bytes(testing.encode(np.zeros((10, 10), np.uint8), "PNG"), classifier).faces == ()


# --- The default config on the standard test images -------------------------------------------

#: The "thorough" config (the Haar alternative, docs/photos.md), for group photos with small faces.
THOROUGH = {
    "detector": "haar",
    "cascade": "haarcascade_frontalface_alt.xml",
    "detect_max_pixels": 448 * 336,
    "scale_factor": 1.1,
    "framing": (1.3, 0.0, 0.0),
    "align": False,
}


def _iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def _side_by_side(count: int):
    x, y, w, h = testing.ASTRONAUT_FACE
    boxes = [(512 * i + (x if i % 2 == 0 else 512 - x - w), y, w, h) for i in range(count)]
    return testing.multi_face_image(count), boxes


STANDARD_IMAGES = [
    pytest.param(lambda: (testing.one_face_image(640, 480), [testing.one_face_box(640, 480)]), id="one-face-640x480"),
    pytest.param(
        lambda: (testing.one_face_image(1280, 960), [testing.one_face_box(1280, 960)]), id="one-face-1280x960"
    ),
    pytest.param(
        lambda: (testing.one_face_image(1920, 1080), [testing.one_face_box(1920, 1080)]), id="one-face-1920x1080"
    ),
    pytest.param(lambda: _side_by_side(2), id="two-side-by-side"),
    pytest.param(lambda: _side_by_side(3), id="three-side-by-side"),
    pytest.param(lambda: _side_by_side(4), id="four-side-by-side"),
    pytest.param(lambda: testing.group_image(3, face=100), id="group-of-3-100px"),
    pytest.param(lambda: testing.group_image(4, face=80), id="group-of-4-80px"),
]


def _find(data: bytes, config: pipeline.PipelineConfig = pipeline.DEFAULT_CONFIG) -> list[tuple[int, int, int, int]]:
    return [(b.x, b.y, b.w, b.h) for b in pipeline.detect_faces(pipeline.decode(data), config)]


@pytest.mark.parametrize("make", STANDARD_IMAGES)
def test_default_config_finds_every_face_in_the_standard_images(make) -> None:
    image, truth = make()
    found = _find(testing.encode(image, "JPEG"))
    assert len(found) == len(truth), (found, truth)  # every face, and nothing else
    for box in truth:
        assert max(_iou(box, f) for f in found) >= 0.5, (box, found)


def test_haar_config_finds_faces_of_a_ninth_of_the_short_side() -> None:
    """The documented trade-off: 640x480 faces of ~70 px are found, 40 px ones need the thorough config."""
    image, _truth = testing.group_image(6, face=70)
    assert len(_find(testing.encode(image, "JPEG"), pipeline.HAAR_CONFIG)) >= 4  # min face: 24 / 0.45 = 53 px
    image, _truth = testing.group_image(10, face=40)
    small = testing.encode(image, "JPEG")
    assert _find(small, pipeline.HAAR_CONFIG) == []
    assert len(_find(small, pipeline.PipelineConfig(**THOROUGH))) >= 3


def test_thorough_config_from_settings(settings, classifier) -> None:
    from emotion.analysis import pipeline_config

    settings.FEEDMOOD_FER_PIPELINE = THOROUGH
    config = pipeline_config()
    assert (config.cascade, config.detect_max_pixels, config.scale_factor) == (THOROUGH["cascade"], 448 * 336, 1.1)
    assert config.min_neighbors == pipeline.DEFAULT_CONFIG.min_neighbors  # the rest stays default
    image, truth = testing.group_image(6, face=60)
    result = pipeline.analyze_bytes(testing.encode(image, "JPEG"), classifier, config)
    assert result.face_count == 6
    assert all(max(_iou(box, (f.box.x, f.box.y, f.box.w, f.box.h)) for f in result.faces) >= 0.5 for box in truth)
    settings.FEEDMOOD_FER_PIPELINE = None
    assert pipeline_config() is pipeline.DEFAULT_CONFIG


@pytest.mark.parametrize(
    "bad",
    [{"cascade": "../haarcascade_frontalface_alt2.xml"}, {"cascade": "haarcascade_eye.xml"}, {"cascade": "/etc/passwd"},
     {"scale_factor": 1.0}, {"min_neighbors": -1}, {"detect_max_pixels": 0}],
)  # fmt: skip
def test_config_is_validated(bad: dict) -> None:
    with pytest.raises(ValueError):
        pipeline.PipelineConfig(**bad)


def test_flat_search_is_opencvs_detect_multiscale() -> None:
    """octaves=False: the raw hits grouped by OpenCV are exactly detectMultiScale's answer."""
    import cv2

    config = pipeline.PipelineConfig(octaves=False, min_neighbors=3, cascade="haarcascade_frontalface_default.xml")
    for image in (testing.one_face_image(), testing.multi_face_image(3)):
        small = pipeline.detection_image(pipeline.decode(testing.encode(image, "PNG")), config)
        raw = pipeline.face_candidates(small, config).tolist()
        own = pipeline.face_cascade(config.cascade).detectMultiScale(small, config.scale_factor, 3, minSize=(24, 24))
        assert sorted(np.asarray(cv2.groupRectangles(raw, 3, 0.2)[0]).reshape(-1, 4).tolist()) == sorted(
            np.asarray(own).reshape(-1, 4).tolist()
        )


def test_octave_search_finds_the_same_faces_as_the_flat_pyramid() -> None:
    for image, truth in (_side_by_side(3), (testing.one_face_image(), [testing.one_face_box()])):
        data = testing.encode(image, "PNG")
        for octaves in (True, False):
            found = _find(data, pipeline.PipelineConfig(octaves=octaves))
            assert all(max(_iou(box, f) for f in found) >= 0.5 for box in truth), (octaves, found)


def test_octave_search_covers_every_scale(monkeypatch) -> None:
    """Octave o searches windows of 1-2x the cascade's on a 1/2**o copy: together, every face size."""
    real = pipeline.face_cascade()
    calls = []

    class Recorder:
        def getOriginalWindowSize(self):
            return real.getOriginalWindowSize()

        def detectMultiScale(self, image, **kwargs):
            calls.append((image.shape, kwargs))
            return real.detectMultiScale(image, **kwargs)

    monkeypatch.setattr(pipeline, "face_cascade", lambda name=pipeline.CASCADE_FILE: Recorder())
    config = pipeline.DEFAULT_CONFIG
    small = np.full((216, 288), 128, np.uint8)
    pipeline.face_candidates(small, config)
    window = real.getOriginalWindowSize()[0]
    spans = []
    for shape, kwargs in calls:
        f = small.shape[0] / shape[0]
        assert (
            kwargs["scaleFactor"] == config.scale_factor and kwargs["maxSize"][0] < 2 * window
        )  # always the 2-px step
        spans.append((max(kwargs["minSize"][0], window) * f, min(kwargs["maxSize"][0], min(shape)) * f))
    assert len(calls) >= 3 and spans[0][0] == config.min_face_side
    assert all(b[0] <= a[1] * config.scale_factor for a, b in itertools.pairwise(spans))  # contiguous
    assert spans[-1][1] >= min(small.shape) * 0.9  # up to faces as big as the image


def test_nested_duplicates_are_suppressed() -> None:
    boxes = np.array([[0, 0, 100, 100], [10, 12, 60, 60], [200, 0, 50, 50], [240, 0, 50, 50]], np.int32)
    weights = np.array([3, 4, 2, 2])
    kept = pipeline.suppress_overlaps(boxes, weights).tolist()
    # the nested pair keeps its stronger box; the two side by side overlap by 20% only: both stay
    assert kept == [[10, 12, 60, 60], [200, 0, 50, 50], [240, 0, 50, 50]]


def test_decode_is_luma_of_the_jpeg() -> None:
    """decode() asks libjpeg for grey directly; it matches Pillow's RGB->L within rounding."""
    import io

    from PIL import Image

    data = testing.one_face_jpeg()
    ours = pipeline.decode(data).astype(int)
    pillow = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=int)
    assert ours.shape == pillow.shape == (480, 640)
    assert np.abs(ours - pillow).max() <= 12 and np.abs(ours - pillow).mean() < 0.5


@pytest.mark.skipif(SHARED_FER is None, reason="shared FER-2013 data not present")
def test_upscaled_fer_faces_are_detected(classifier) -> None:
    import cv2

    faces = testing.fer_faces(SHARED_FER, count=12)
    assert faces is not None
    canvas = np.full((240, 240 * len(faces)), 128, np.uint8)
    for i, face in enumerate(faces):
        canvas[24:216, 240 * i + 24 : 240 * i + 216] = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
    result = pipeline.analyze_bytes(testing.encode(canvas, "PNG"), classifier)
    # FER crops are tight and low-resolution; Haar still finds most of them.
    assert result.face_count >= len(faces) // 2
    assert all(0 <= f.box.x < canvas.shape[1] and 0 <= f.box.y < canvas.shape[0] for f in result.faces)


# --- Bad input: clear errors, never crashes -----------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "code", "text"),
    [
        (lambda: b"", "empty", "empty"),
        (lambda: b"hello, I am not a picture", "not_an_image", "Not an image"),
        (lambda: testing.one_face_jpeg()[:4000], "corrupt", "truncated"),
        (lambda: testing.png_claiming_size(100_000, 100_000), "too_many_pixels", "too many pixels"),
        (lambda: testing.encode(np.zeros((8, 8, 3), np.uint8), "GIF"), "unsupported_format", "GIF"),
    ],
    ids=["zero-bytes", "not-an-image", "truncated-jpeg", "huge-dimensions", "gif"],
)
def test_bad_input_raises_pipeline_error(classifier, make, code: str, text: str) -> None:
    with pytest.raises(pipeline.PipelineError) as info:
        pipeline.analyze_bytes(make(), classifier)
    assert info.value.code == code
    assert text in str(info.value)


def test_too_many_pixels_follows_settings(classifier, settings, face_jpeg: bytes) -> None:
    settings.FEEDMOOD_MAX_IMAGE_PIXELS = 100_000
    with pytest.raises(pipeline.PipelineError, match="too many pixels"):
        pipeline.analyze_bytes(face_jpeg, classifier)


# --- Stages ------------------------------------------------------------------------------------------


def test_crops_are_48x48_uint8_and_clipped_to_the_image() -> None:
    gray = np.arange(100 * 80, dtype=np.uint32).reshape(100, 80).astype(np.uint8)
    boxes = [pipeline.Box(0, 0, 40, 40), pipeline.Box(60, 70, 20, 30)]  # both touch an edge
    crops = pipeline.crop_faces(gray, boxes, margin=0.2)
    assert crops.shape == (2, 48, 48) and crops.dtype == np.uint8


def test_detection_scale_bounds_side_and_pixels() -> None:
    config = pipeline.DEFAULT_CONFIG
    assert pipeline.detection_scale(150, 200, config) == 1.0  # never upscaled
    for h, w in [(480, 640), (1920, 2560), (512, 1536), (4000, 300)]:
        s = pipeline.detection_scale(h, w, config)
        assert max(h, w) * s <= config.detect_max_side + 1
        assert h * w * s * s <= config.detect_max_pixels * 1.01


def test_cascade_is_cached_per_process() -> None:
    assert pipeline.face_cascade() is pipeline.face_cascade()
    assert pipeline.face_cascade() is pipeline.face_cascade(pipeline.DEFAULT_CONFIG.cascade)
    other = pipeline.face_cascade("haarcascade_frontalface_default.xml")
    assert other is not pipeline.face_cascade() and other is pipeline.face_cascade(
        "haarcascade_frontalface_default.xml"
    )
