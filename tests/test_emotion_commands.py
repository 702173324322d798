"""Management commands: register_model, activate_model, analyze."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from emotion import inference, testing
from emotion.fixtures import face_jpeg, faces_png, fer_model_dir, no_face_png  # noqa: F401
from emotion.models import ModelVersion
from ml.card import new_card, write_card

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_register_and_activate(fer_model_dir: Path) -> None:
    out, _ = run("register_model", str(fer_model_dir), "--name", "first")
    assert "Registered first" in out and "inactive" in out
    out, _ = run("register_model", str(fer_model_dir / "model_card.json"), "--name", "second", "--activate")
    assert "active" in out
    assert ModelVersion.objects.get(is_active=True).name == "second"
    out, _ = run("activate_model", "first")
    assert "first is now the active model" in out
    assert ModelVersion.objects.get(is_active=True).name == "first"
    assert "Already registered" in run("register_model", str(fer_model_dir), "--name", "first")[0]


def test_register_rejects_a_non_artifact(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="not an exported model"):
        run("register_model", str(tmp_path))
    (tmp_path / "model_card.json").write_text('{"format": "tflite", "file": "missing.tflite", "labels": ["anger"]}')
    with pytest.raises(CommandError, match="no schema_version"):  # not a card ml.export wrote
        run("register_model", str(tmp_path))
    card = new_card(name="gone", head="fer2013", labels=["anger"], fmt="tflite", file="missing.tflite")
    write_card(tmp_path, card)
    with pytest.raises(CommandError, match="does not load"):  # a whole card, but its model file is missing
        run("register_model", str(tmp_path))


def test_activate_unknown_name() -> None:
    with pytest.raises(CommandError, match="No model version named 'nope'"):
        run("activate_model", "nope")


def test_analyze_prints_faces_and_fails_on_bad_files(
    tmp_path: Path, fer_model_dir: Path, face_jpeg, faces_png, no_face_png
) -> None:
    files = {"one.jpg": face_jpeg, "three.png": faces_png, "wall.png": no_face_png, "broken.jpg": face_jpeg[:3000]}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    paths = [str(tmp_path / name) for name in files] + [str(tmp_path / "absent.jpg")]
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 of 5 image"):
        call_command("analyze", *paths, "--model", str(fer_model_dir), stdout=out, stderr=err)
    text = out.getvalue()
    assert "one.jpg: 640x480, 1 face(s)" in text and "three.png: 1536x512, 3 face(s)" in text
    assert "wall.png: 640x480, 0 face(s)" in text and "no face found" in text
    assert text.count("top-3:") == 4 and "valence" in text and "box x=" in text
    assert "broken.jpg: error: Not an image" in err.getvalue()
    assert "absent.jpg: error: cannot read file" in err.getvalue()


def test_analyze_uses_the_active_model(settings, tmp_path: Path, fer_model_dir: Path) -> None:
    settings.FEEDMOOD_MODEL_DIR = fer_model_dir  # fresh install: auto-registered
    image = tmp_path / "me.jpg"
    image.write_bytes(testing.one_face_jpeg())
    out, _ = run("analyze", str(image))
    assert "1 face(s)" in out
    card_tta = json.loads((fer_model_dir / "model_card.json").read_text()).get("tta", False)
    assert f"test-time flip {'on' if card_tta else 'off'}, temperature" in out
    settings.FEEDMOOD_MODEL_TTA = not card_tta
    inference.clear_cache()
    try:
        out, _ = run("analyze", str(image))
    finally:
        inference.clear_cache()  # later tests load the card's mode again
    assert f"test-time flip {'off' if card_tta else 'on'}, temperature" in out and "1 face(s)" in out
