"""The model-card schema (ml.card): the shipped cards read and write back unchanged, an unknown schema version
or a malformed field is refused with a message that names it, and the recorded photo pipelines are the ones
the service applies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emotion import pipeline
from ml.card import (
    DEFAULT_PIPELINE,
    PIPELINES,
    SCHEMA_VERSION,
    CardError,
    ModelCard,
    PipelineSpec,
    load_card,
    new_card,
    write_card,
)
from ml.labels import FERPLUS_LABELS
from ml.runtime import EmotionClassifier

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "ml" / "artifacts").glob("*/model_card.json"))


def card_data(**changes) -> dict:
    """A small valid card as JSON data, with `changes` applied (None deletes a key)."""
    data = new_card(name="probe", head="ferplus", labels=FERPLUS_LABELS, fmt="tflite", file="model.tflite").to_json()
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_shipped_cards_read_and_write_back_unchanged(path: Path, tmp_path: Path) -> None:
    raw = json.loads(path.read_text())
    card = load_card(path.parent)
    assert card.schema_version == SCHEMA_VERSION
    assert card.to_json() == raw and list(card.to_json()) == list(raw)  # same keys, values and order
    assert write_card(tmp_path, card).read_text() == path.read_text()
    assert card.pipeline == PIPELINES[DEFAULT_PIPELINE]  # what the service runs for these models
    assert card.accuracy == raw["metrics"]["accuracy"] and card.files == (raw["file"], *raw.get("ensemble", []))


def test_every_shipped_artifact_has_a_card() -> None:
    expected = {
        "cnn-ferplus",
        "fer2013",
        "fer2013-ensemble",
        "fer2013-ensemble3",
        "ferplus",
        "ferplus-ensemble",
        "ferplus-ensemble3",
    }
    assert {path.parent.name for path in SHIPPED} == expected


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"schema_version": 2}, "schema_version 2 is not supported"),
        ({"schema_version": True}, "schema_version True is not supported"),
        ({"schema_version": None}, "no schema_version"),
        ({"format": "pytorch"}, "unknown format 'pytorch'"),
        ({"labels": []}, "'labels' must be a non-empty list"),
        ({"temperature": 0}, "temperature must be a positive number"),
        ({"tta": "yes"}, "tta must be true or false"),
        ({"class_bias": [0.0, 1.0]}, "class_bias must be 8 finite numbers"),
        ({"tta_flip_below": -0.5}, "tta_flip_below must be a positive number"),
        ({"other_tta": {"tta": True}}, "other_tta temperature must be a positive number"),
        ({"pipeline": {"detector": "haar", "zoom": 2}}, "pipeline has unknown settings ['zoom']"),
        ({"pipeline": {"framing": [1.0, 0.0]}}, "pipeline framing must be [scale, dx, dy]"),
        ({"file": ""}, "'file' must be a non-empty string"),
    ],
)
def test_a_malformed_card_is_refused_with_the_field_named(tmp_path: Path, changes: dict, message: str) -> None:
    (tmp_path / "model_card.json").write_text(json.dumps(card_data(**changes)))
    with pytest.raises(CardError) as caught:
        load_card(tmp_path)
    assert message in str(caught.value) and str(tmp_path) in str(caught.value)
    with pytest.raises(ValueError, match="model_card.json"):  # the runtime reads cards through the schema too
        EmotionClassifier.load(tmp_path)


def test_free_form_blocks_round_trip_and_updates_are_checked() -> None:
    card = ModelCard.from_json(card_data(formats=[{"format": "tflite", "accuracy": 0.5}], tta=True))
    assert card.extra["formats"] == [{"format": "tflite", "accuracy": 0.5}]
    changed = card.updated(temperature=1.5, class_bias=[0.1] * 8, calibration={"kind": "temperature + class bias"})
    assert changed.temperature == 1.5 and changed.class_bias == (0.1,) * 8
    assert changed.extra["calibration"] == {"kind": "temperature + class bias"} and card.temperature == 1.0
    assert list(changed.to_json())[: len(card.to_json())] == list(card.to_json())  # new keys go after the old ones
    assert "class_bias" not in changed.updated(class_bias=None).to_json()
    with pytest.raises(CardError, match="class_bias must be 8 finite numbers"):
        card.updated(class_bias=[0.1])


def test_other_tta_applies_only_to_the_flipped_mode() -> None:
    other = {"tta": False, "temperature": 0.8, "accuracy": 0.7}
    card = ModelCard.from_json(card_data(tta=True, other_tta=other))
    assert card.other_tta_for(False) is not None and card.other_tta_for(False).temperature == 0.8
    assert card.other_tta_for(True) is None and card.other_tta.accuracy == 0.7
    assert card.to_json()["other_tta"] == other


def test_cards_name_every_pipeline_the_service_has() -> None:
    assert set(PIPELINES) == set(pipeline.CONFIGS)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_recorded_pipelines_are_the_ones_the_service_applies(name: str) -> None:
    spec = PIPELINES[name]
    assert pipeline.config_from(spec.to_json()) == pipeline.CONFIGS[name]
    recorded = {k: v for k, v in spec.to_json().items() if k != "fitted_by"}
    assert recorded == pipeline.card_fields(pipeline.CONFIGS[name], name)


def test_a_pipeline_may_be_named_only() -> None:
    spec = PipelineSpec.from_json("haar")
    assert spec.to_json() == {"name": "haar"}
    assert pipeline.config_from(spec.to_json()) == pipeline.HAAR_CONFIG


def test_new_cards_carry_the_schema_version(tmp_path: Path) -> None:
    card = new_card(name="n", head="fer2013", labels=["a", "b"], fmt="keras", file="model.keras", label_mode="fer2013")
    assert card.schema_version == SCHEMA_VERSION and card.pipeline is None
    write_card(tmp_path, card)
    assert json.loads((tmp_path / "model_card.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert load_card(tmp_path / "model_card.json") == card
