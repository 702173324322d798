"""Fuzzing the untrusted-image path: validator + emotion pipeline.

Every input must end as a clean ``ValidationError`` / ``PipelineError`` or a
normal pipeline result -- never any other exception type.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image

from emotion import pipeline, testing
from feedmood.images import decode_image_to_array, validate_image_bytes

FUZZ = hsettings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


class FakeClassifier:
    labels = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        out = np.full((len(faces), len(self.labels)), 1.0 / len(self.labels), dtype=np.float32)
        return out


CLASSIFIER = FakeClassifier()


def _img(fmt: str, mode: str = "RGB", size: tuple[int, int] = (64, 48), **save) -> bytes:
    color = {
        "RGB": (200, 30, 60),
        "RGBA": (1, 2, 3, 100),
        "L": 100,
        "LA": (100, 50),
        "CMYK": (0, 255, 255, 0),
        "I;16": 40000,
        "I": 70000,
        "P": 3,
        "1": 1,
        "F": 0.5,
    }.get(mode, 1)
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=fmt, **save)
    return buf.getvalue()


FACE_JPEG = testing.one_face_jpeg(320, 240)
SEEDS = {
    "jpeg": _img("JPEG"),
    "png": _img("PNG"),
    "webp": _img("WEBP"),
    "face": FACE_JPEG,
}


def check_validator(data: bytes) -> None:
    try:
        validate_image_bytes(data)
    except ValidationError as exc:
        assert exc.messages and all(isinstance(m, str) and m for m in exc.messages)


def check_pipeline(data: bytes) -> None:
    try:
        result = pipeline.analyze_bytes(data, CLASSIFIER)
    except pipeline.PipelineError as exc:
        assert exc.message
    else:
        assert result.width > 0 and result.height > 0


def check_both(data: bytes) -> None:
    check_validator(data)
    check_pipeline(data)


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    check_both(data)


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.integers(min_value=0, max_value=10**9))
def test_truncation_at_random_offsets(kind: str, cut: int) -> None:
    data = SEEDS[kind]
    check_both(data[: cut % len(data)])


@FUZZ
@given(
    st.sampled_from(sorted(SEEDS)),
    st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 7)), min_size=1, max_size=8),
)
def test_bit_flips(kind: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray(SEEDS[kind])
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    check_both(bytes(data))


@FUZZ
@given(st.sampled_from(sorted(SEEDS)), st.integers(0, 10**9), st.binary(min_size=1, max_size=64))
def test_splices(kind: str, pos: int, junk: bytes) -> None:
    data = SEEDS[kind]
    p = pos % len(data)
    check_both(data[:p] + junk + data[p + len(junk) :])


@pytest.mark.parametrize(
    ("width", "height"), [(20000, 20000), (400001, 100), (100, 400001), (2**31 - 1, 2**31 - 1), (65535, 65535)]
)
def test_declared_huge_png_rejected_before_allocating(width: int, height: int) -> None:
    data = testing.png_claiming_size(width, height)
    assert len(data) < 1000
    with pytest.raises(ValidationError):
        validate_image_bytes(data)
    with pytest.raises(pipeline.PipelineError):
        pipeline.analyze_bytes(data, CLASSIFIER)


def test_decompression_bomb_really_compressed() -> None:
    # 8000x6000 = 48 MP of zeros deflates to a few tens of KB: over the 40 MP limit.
    raw = b"".join(b"\x00" + b"\x00" * 8000 for _ in range(6000))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        )

    data = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 8000, 6000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    assert len(data) < 200_000
    with pytest.raises(ValidationError) as info:
        validate_image_bytes(data)
    assert "pixels" in " ".join(info.value.messages)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_img("PNG", size=(1, 1)), id="png-1x1"),
        pytest.param(_img("JPEG", size=(1, 1)), id="jpeg-1x1"),
        pytest.param(_img("WEBP", size=(1, 1)), id="webp-1x1"),
        pytest.param(_img("JPEG", "CMYK"), id="cmyk-jpeg"),
        pytest.param(_img("JPEG", "L"), id="grey-jpeg"),
        pytest.param(_img("PNG", "I;16"), id="png-16bit"),
        pytest.param(_img("PNG", "P"), id="png-palette"),
        pytest.param(_img("PNG", "1"), id="png-bilevel"),
        pytest.param(_img("PNG", "LA"), id="png-la"),
        pytest.param(_img("PNG", "RGBA"), id="png-rgba"),
        pytest.param(_img("WEBP", "RGBA"), id="webp-rgba"),
        pytest.param(_img("PNG", "P", transparency=0), id="png-palette-transparency"),
    ],
)
def test_odd_modes_and_sizes(data: bytes) -> None:
    try:
        info = validate_image_bytes(data)
    except ValidationError:
        return
    arr = decode_image_to_array(data, mode="L")
    assert arr.dtype == np.uint8 and arr.ndim == 2 and arr.shape == (info.height, info.width)
    result = pipeline.analyze_bytes(data, CLASSIFIER)
    assert result.face_count == 0  # flat colour: no face, a normal result


def _animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (32, 32), (i * 40, 0, 0)) for i in range(4)]
    buf = io.BytesIO()
    frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "PNG"])
def test_animated_images(fmt: str) -> None:
    data = _animated(fmt)
    if fmt == "GIF":
        with pytest.raises(ValidationError):
            validate_image_bytes(data)  # not an allowed format
    check_both(data)


def test_cmyk_face_still_analysed() -> None:
    img = Image.open(io.BytesIO(FACE_JPEG)).convert("CMYK")
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    result = pipeline.analyze_bytes(buf.getvalue(), CLASSIFIER)
    assert result.width == 320


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"GIF89a",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"%PDF-1.4",
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
    ],
)
def test_magic_only(data: bytes) -> None:
    with pytest.raises(ValidationError):
        validate_image_bytes(data)
    with pytest.raises(pipeline.PipelineError):
        pipeline.analyze_bytes(data, CLASSIFIER)


def test_non_bytes_rejected() -> None:
    with pytest.raises(ValidationError):
        validate_image_bytes("not bytes")  # type: ignore[arg-type]
