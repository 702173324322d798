"""BlazeFace detector, FER framing and eye alignment, the model card's pipeline and the group search."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import shutil
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.exceptions import ValidationError

from emotion import face_detector, model_versions, pipeline, submission, testing
from emotion.analysis import analysis_run, pipeline_config
from emotion.fixtures import consenting_user, faces_png, fer_model, fer_model_dir, upload  # noqa: F401
from emotion.models import ImageAnalysis
from feedmood import services as core_services


def astronaut_grey() -> np.ndarray:
    return cv2.cvtColor(testing.one_face_image(640, 480), cv2.COLOR_RGB2GRAY)


def _iou(a, b) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


# --- The detector --------------------------------------------------------------------------------


def test_detector_loads_offline_from_the_shipped_weights(monkeypatch) -> None:
    """No network during load and detection; nothing is built before the first use."""

    def no_network(*args, **kwargs):
        raise AssertionError("the face detector tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    detector = face_detector.BlazeFace("short")
    verifier = face_detector.FaceVerifier()
    assert not detector._interps and verifier._interp is None  # lazy
    assert (face_detector.MODELS_DIR / detector.spec.file).is_file()
    assert (face_detector.MODELS_DIR / verifier.FILE).is_file()
    found = detector.detect(astronaut_grey())
    assert len(found) == 1 and _iou(testing.one_face_box(), pipeline_box(found[0])) >= 0.5
    assert found[0].keypoints.shape == (6, 2)
    assert verifier.logit(astronaut_grey(), found[0]) > face_detector.VERIFY_LOGIT_HIGH


def pipeline_box(det: face_detector.Detection) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = det.box
    return (x0, y0, x1 - x0, y1 - y0)


def _detect_in_child(queue) -> None:
    detector = face_detector.blazeface()
    faces = len(detector.detect(astronaut_grey()))
    queue.put((detector._pid, faces))


@pytest.mark.slow
def test_a_forked_child_builds_its_own_interpreter() -> None:
    parent = face_detector.blazeface().load()
    parent_interps = dict(parent._interps)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_detect_in_child, args=(queue,))
    child.start()
    child_pid, faces = queue.get(timeout=60)
    child.join(30)
    assert child.exitcode == 0 and faces == 1
    assert child_pid == child.pid != parent._pid and parent._interps == parent_interps


def test_keypoints_follow_the_face() -> None:
    """Eyes above the nose, nose above the mouth, image-left eye left of the image-right eye."""
    (det,) = face_detector.blazeface().detect(astronaut_grey())
    left, right, nose, mouth = det.keypoints[:4]
    assert left[0] < right[0] and max(left[1], right[1]) < nose[1] < mouth[1]
    x0, y0, x1, y1 = det.box
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in det.keypoints[:4])


def test_photos_without_faces_give_no_faces() -> None:
    """Textured real photos (scikit-image's) with no face: nothing detected, so the analysis is ``no_face``."""
    from skimage import data

    for name in ("coffee", "brick", "grass", "rocket", "chelsea"):
        image = getattr(data, name)()
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        assert pipeline.detect_faces(grey) == [], name


@pytest.mark.parametrize("config", ["blazeface-group", "blazeface-tiles"])
def test_group_search_finds_small_faces_the_whole_image_misses(config: str) -> None:
    image, truth = testing.group_image(6, face=40)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    found = [(b.x, b.y, b.w, b.h) for b in pipeline.detect_faces(grey, pipeline.CONFIGS[config])]
    assert len(found) == len(truth)
    assert all(max(_iou(t, f) for f in found) >= 0.4 for t in truth)
    # faces of 40 px are below what one whole-image pass sees (its own tiles fall back only when nothing is found)
    assert len(face_detector.blazeface().detect(grey)) < len(truth)


def test_a_whole_image_pass_at_any_scale_finds_the_face_where_the_square_pass_does() -> None:
    """The model runs on inputs larger than 128x128 (the pyramid's passes): the face as a 128x128 square around
    it at the same scale shows it, same box and keypoints."""
    grey = astronaut_grey()
    detector = face_detector.BlazeFace()
    cx, cy = 291, 109  # the face's centre
    for scale in (0.4, 0.75):  # 256x192 and 480x368 inputs
        side = detector.spec.side / scale
        square = max(detector.run_square(grey, cx - side / 2, cy - side / 2, side), key=lambda d: d.score)
        scaled = max(detector.run_scaled(grey, scale, 0.5), key=lambda d: d.score)
        assert _iou(pipeline_box(square), pipeline_box(scaled)) > 0.9, scale
        offsets = np.abs(scaled.keypoints - square.keypoints)  # a few input pixels: other pixels, other rounding
        assert offsets[:2].max() < 0.05 * square.side and offsets.max() < 0.1 * square.side, scale


def test_pyramid_levels_show_every_face_at_a_size_the_model_scores_well() -> None:
    """Each face from the minimum up to what the whole-image pass sees appears on some level at
    PYRAMID_FACE..2*PYRAMID_FACE input pixels."""
    detector = face_detector.BlazeFace()
    scales = detector.pyramid(480, 640, 24)
    seen = 640 * detector.spec.min_face / detector.spec.side
    assert 2 <= len(scales) <= 4
    for face in np.geomspace(24, seen, 40):
        sizes = [face * s for s in scales]
        assert any(face_detector.PYRAMID_FACE - 1e-6 <= v < 2 * face_detector.PYRAMID_FACE for v in sizes), face


class _ConfirmsAll:
    """A verifier that confirms every candidate the detector scores high enough: the search without its check."""

    def confirms(self, gray, face) -> bool:
        return face.score >= face_detector.PYRAMID_KEEP_LOW


def test_the_verifier_removes_the_group_search_false_positives() -> None:
    """Old coins and a cat: the pyramid's candidates there pass the detector's score but not the face-mesh check."""
    from skimage import data

    detector = face_detector.blazeface()
    unchecked = checked = 0
    for name in ("coins", "chelsea", "page", "moon", "hubble_deep_field"):
        image = getattr(data, name)()
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
        grey = cv2.resize(grey, (640, round(640 * grey.shape[0] / grey.shape[1])), interpolation=cv2.INTER_AREA)
        min_face = 0.05 * min(grey.shape)
        unchecked += len(detector.detect_pyramid(grey, min_face, _ConfirmsAll()))
        checked += len(detector.detect_pyramid(grey, min_face, face_detector.verifier()))
    assert unchecked >= 10 and checked == 0


def test_a_box_inside_a_confirmed_face_is_dropped_even_when_it_scores_higher() -> None:
    points = np.zeros((6, 2))
    face = face_detector.Detection((100.0, 100.0, 200.0, 200.0), 0.7, points)
    part = face_detector.Detection((120.0, 110.0, 170.0, 160.0), 0.95, points)
    beside = face_detector.Detection((215.0, 100.0, 300.0, 185.0), 0.6, points)
    overlapping = face_detector.Detection((150.0, 100.0, 250.0, 200.0), 0.65, points)
    kept = face_detector._resolve_overlaps([part, face, beside, overlapping])
    assert kept == [face, beside]


def test_plan_sees_every_face_down_to_the_minimum_whole_and_large_enough() -> None:
    """Any face of 24 px or more, anywhere in 640x480, lies whole inside a searched square where it is
    at least the model's reliable size."""
    detector = face_detector.BlazeFace()
    ratio = detector.spec.min_face / detector.spec.side
    squares = detector.plan(480, 640, 24)
    assert len(squares) < 150
    for side in (24, 30, 34, 45, 69, 100, 139, 300, 470):  # and just below each level's smallest face
        for x in np.linspace(0, 640 - side, 9):
            for y in np.linspace(0, 480 - side, 7):
                assert any(
                    sx - 1e-6 <= x
                    and x + side <= sx + size + 1e-6
                    and sy - 1e-6 <= y
                    and y + side <= sy + size + 1e-6
                    and size * ratio <= side + 1e-6
                    for sx, sy, size in squares
                ), (side, x, y)


# --- Alignment and framing ---------------------------------------------------------------------------


#: The astronaut's head is tilted; the photo turned by this many degrees (OpenCV: counter-clockwise) has her eyes level.
LEVEL_TURN = 4.0


def _turned_astronaut(angle: float) -> np.ndarray:
    """The 640x480 astronaut photo turned by ``angle`` degrees counter-clockwise about her face."""
    x, y, w, h = testing.one_face_box()
    m = cv2.getRotationMatrix2D((x + w / 2, y + h / 2 + 40), angle, 1.0)
    return cv2.warpAffine(astronaut_grey(), m, (640, 480), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.mark.parametrize("tilt", [-25.0, 20.0])
def test_alignment_levels_the_eyes_of_a_rotated_face(tilt: float) -> None:
    level = _turned_astronaut(LEVEL_TURN)
    (box0,) = pipeline.detect_faces(level)
    assert abs(box0.angle) < 5
    tilted = _turned_astronaut(LEVEL_TURN + tilt)
    (box,) = pipeline.detect_faces(tilted)
    # turning the photo counter-clockwise raises the image-right eye: the eye line turns by -tilt
    assert box.angle - box0.angle == pytest.approx(-tilt, abs=6.0)
    levelled = pipeline.PipelineConfig(align=True, align_slack=0.0)
    reference = pipeline.frame_faces(level, [box0], levelled)[0].astype(float)
    aligned = pipeline.frame_faces(tilted, [box], levelled)[0].astype(float)
    unaligned = pipeline.frame_faces(tilted, [box], pipeline.PipelineConfig(align=False))[0].astype(float)
    # the default levels only the roll beyond its slack: a crop between the two
    default = pipeline.frame_faces(tilted, [box], pipeline.DEFAULT_CONFIG)[0].astype(float)

    def corr(a, b):
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    # levelled, the crop is (nearly) the level face's crop again; without alignment it is not
    assert corr(aligned, reference) > 0.85
    assert corr(aligned, reference) > corr(unaligned, reference) + 0.1
    assert corr(aligned, reference) > corr(default, reference) > corr(unaligned, reference)


def test_framing_moves_and_scales_the_crop_square() -> None:
    box = pipeline.Box(100, 200, 50, 60)
    cx, cy, side = pipeline.framed_square(box, (1.2, 0.1, -0.1))
    assert (cx, cy, side) == pytest.approx((125 + 5, 230 - 5, 60))
    grey = np.zeros((480, 640), np.uint8)
    grey[200:260, 100:150] = 255  # the box itself white: framing 1.0 at its centre sees only white
    crop = pipeline.frame_faces(grey, [pipeline.Box(100, 200, 50, 50)], pipeline.PipelineConfig(framing=(1.0, 0, 0)))
    assert crop.shape == (1, 48, 48) and crop[0, 4:-4, 4:-4].min() == 255
    wide = pipeline.frame_faces(grey, [pipeline.Box(100, 200, 50, 50)], pipeline.PipelineConfig(framing=(2.0, 0, 0)))
    assert wide[0, :8].max() == 0 and wide[0, 24, 24] == 255


def test_faces_at_the_border_are_framed_with_edge_pixels() -> None:
    grey = np.full((100, 100), 7, np.uint8)
    crops = pipeline.frame_faces(
        grey, [pipeline.Box(0, 0, 30, 30, 15.0), pipeline.Box(80, 80, 20, 20)], pipeline.DEFAULT_CONFIG
    )
    assert crops.shape == (2, 48, 48) and (crops == 7).all()


# --- Configs and the model card ---------------------------------------------------------------------


def test_config_from_names_dicts_and_bad_input() -> None:
    assert pipeline.config_from(None) is pipeline.DEFAULT_CONFIG
    assert pipeline.config_from("haar") is pipeline.HAAR_CONFIG
    custom = pipeline.config_from({"name": "haar-thorough", "min_neighbors": 2})
    assert custom.detector == "haar" and custom.scale_factor == 1.1 and custom.min_neighbors == 2
    assert pipeline.config_from(pipeline.card_fields(pipeline.DEFAULT_CONFIG)) == pipeline.DEFAULT_CONFIG
    group = pipeline.CONFIGS["blazeface-group"]
    assert group.search == "pyramid" and pipeline.card_fields(group, "blazeface-group")["search"] == "pyramid"
    assert pipeline.config_from(pipeline.card_fields(group, "blazeface-group")) == group
    for bad in (
        "mtcnn",
        {"search": "sliding"},
        {"search": "pyramid"},  # the pyramid needs a smallest face to search down to
        {"search": "pyramid", "min_face": 0.05, "detector": "haar", "align": False},
        {"detector": "mtcnn"},
        {"framing": [1.0, 0.0]},
        {"align": True, "detector": "haar"},
        {"min_score": "high"},
        {"colour": True},
        42,
    ):
        with pytest.raises(ValueError):
            pipeline.config_from(bad)


@pytest.mark.django_db
def test_the_card_pipeline_is_applied_per_model_version(
    fer_model_dir: Path,
    tmp_path: Path,
    settings,
    consenting_user,
    upload,
    faces_png,
    django_capture_on_commit_callbacks,
) -> None:
    """Two versions of the same weights with different card pipelines score the same photo differently,
    and rescoring with the second is just ``analysis_run`` with that version."""
    settings.FEEDMOOD_FER_PIPELINE = None
    haar_dir = tmp_path / "haar-pipeline"
    shutil.copytree(fer_model_dir, haar_dir)
    card = json.loads((haar_dir / "model_card.json").read_text())
    card["pipeline"] = pipeline.card_fields(pipeline.HAAR_CONFIG, "haar")
    (haar_dir / "model_card.json").write_text(json.dumps(card))
    blaze, _ = model_versions.model_version_register(path=fer_model_dir, name="blazeface", activate=True)
    haar, _ = model_versions.model_version_register(path=haar_dir, name="haar")
    assert pipeline_config(haar).detector == "haar"
    assert pipeline_config(blaze) == pipeline.config_from(blaze.card.get("pipeline"))

    settings.FEEDMOOD_RETAIN_SELFIES = True  # kept, so it can be rescored
    with django_capture_on_commit_callbacks(execute=True):
        analysis = submission.selfie_submit(user=consenting_user, uploaded_file=upload(faces_png))
    analysis_run(analysis.pk, model_version=haar, notify=False)  # what a rescoring chunk does

    grey = pipeline.decode(faces_png)
    expected = {
        v: [(b.x, b.y, b.w, b.h) for b in pipeline.detect_faces(grey, pipeline_config(v))] for v in (blaze, haar)
    }
    assert expected[blaze] != expected[haar] and len(expected[blaze]) == 3
    for version in (blaze, haar):
        readings = analysis.readings.filter(model_version=version).order_by("face_index")
        assert [(r.x, r.y, r.w, r.h) for r in readings] == expected[version], version.name


def test_the_group_config_is_the_default_with_the_group_search() -> None:
    group = pipeline.for_group_photos(pipeline.DEFAULT_CONFIG)
    assert (group.min_face, group.search) == (0.05, "pyramid")  # every face down to 24 px at 640x480
    assert dataclasses.replace(group, min_face=0.0, search="tiles") == pipeline.DEFAULT_CONFIG  # nothing else moves
    assert pipeline.for_group_photos(pipeline.HAAR_CONFIG) == pipeline.HAAR_CONFIG
    tiles = pipeline.CONFIGS["blazeface-tiles"]
    assert pipeline.for_group_photos(tiles) == tiles  # a search an operator chose is kept


@pytest.mark.django_db
@pytest.mark.parametrize("group_search", [True, False])
def test_post_images_get_the_group_search_and_selfies_do_not(
    group_search: bool, make_user, fer_model, upload, settings, django_capture_on_commit_callbacks
) -> None:
    """Six 40 px faces: a post image is searched for every face down to 24 px, a selfie of the same photo
    only as its card says (a whole-image pass, which misses most of them)."""
    settings.FEEDMOOD_FER_PIPELINE = None
    settings.FEEDMOOD_POST_IMAGE_GROUP_SEARCH = group_search
    image, truth = testing.group_image(6, face=40)
    photo = testing.encode(image, "PNG")
    author = make_user(username="group", emotion_consent=True)
    with django_capture_on_commit_callbacks(execute=True):
        post = core_services.post_create(author=author, image=upload(photo, "g.png", "image/png"))
        selfie = submission.selfie_submit(user=author, uploaded_file=upload(photo, "s.png", "image/png"))
    post_analysis = ImageAnalysis.objects.get(post=post)
    selfie.refresh_from_db()
    assert selfie.face_count < len(truth)
    if group_search:
        assert post_analysis.face_count == len(truth)
        assert list(post_analysis.readings.values_list("face_index", flat=True)) == [0]  # still one aggregate
    else:
        assert post_analysis.face_count == selfie.face_count


@pytest.mark.django_db
def test_a_card_with_a_bad_pipeline_is_refused(fer_model_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(fer_model_dir, bad)
    card = json.loads((bad / "model_card.json").read_text())
    card["pipeline"] = {"detector": "mtcnn"}
    (bad / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValidationError, match="detector must be one of"):
        model_versions.model_version_register(path=bad, name="bad")


def test_shipped_cards_record_the_default_pipeline() -> None:
    """Every shipped artifact's card names the detector, framing and alignment the runtime applies."""
    cards = sorted((Path(__file__).resolve().parents[1] / "ml" / "artifacts").glob("*/model_card.json"))
    assert cards
    for path in cards:
        recorded = json.loads(path.read_text())["pipeline"]
        assert {"detector", "framing", "align"} <= set(recorded), path
        assert pipeline.config_from(recorded) == pipeline.DEFAULT_CONFIG, path


def test_a_weak_detection_the_closer_look_does_not_confirm_is_dropped() -> None:
    """Where there is no face, a weak first detection is dropped and only a sure one stands."""
    detector = face_detector.BlazeFace()
    grey = np.full((480, 640), 128, np.uint8)
    ghost = {"box": (300.0, 200.0, 360.0, 260.0), "keypoints": np.zeros((6, 2))}
    assert detector.refine(grey, face_detector.Detection(score=0.55, **ghost)) is None
    kept = detector.refine(grey, face_detector.Detection(score=0.9, **ghost))
    assert kept is not None and kept.score == 0.9
    (real,) = detector.detect(astronaut_grey(), refine=False)
    confirmed = detector.refine(astronaut_grey(), dataclasses.replace(real, score=0.55))
    assert confirmed is not None and confirmed.score >= detector.min_score


def test_analyze_command_applies_the_pipeline_setting(fer_model_dir: Path, settings, tmp_path: Path) -> None:
    """``manage.py analyze`` reads photos as the service does: the named config when set, else the card's."""
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    image, truth = testing.group_image(6, face=40)
    path = tmp_path / "group.jpg"
    path.write_bytes(testing.encode(image, "JPEG"))

    def faces_found() -> str:
        out = StringIO()
        call_command("analyze", str(path), "--model", str(fer_model_dir), stdout=out)
        return out.getvalue()

    settings.FEEDMOOD_FER_PIPELINE = None
    assert "0 face(s)" in faces_found()
    settings.FEEDMOOD_FER_PIPELINE = "blazeface-group"
    assert f"{len(truth)} face(s)" in faces_found()
    settings.FEEDMOOD_FER_PIPELINE = "nope"
    with pytest.raises(CommandError, match="unknown pipeline"):
        faces_found()
