"""feedmood.images: validation by real decoding, and decoding to arrays."""

from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from PIL import Image, ImageFile

from feedmood.images import ImageInfo, decode_image_to_array, validate_image_bytes, validate_image_upload
from tests.conftest import make_image_bytes


def _message(exc_info: pytest.ExceptionInfo) -> str:
    return " ".join(exc_info.value.messages)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims a huge size (a decompression bomb's signature)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(("fmt", "expected"), [("JPEG", "JPEG"), ("PNG", "PNG"), ("WEBP", "WEBP")])
def test_valid_formats(fmt: str, expected: str) -> None:
    info = validate_image_bytes(make_image_bytes(fmt, size=(30, 20)))
    assert info == ImageInfo(format=expected, width=30, height=20)
    assert info.extension in {"jpg", "png", "webp"}
    assert info.mime_type.startswith("image/")


def test_zero_bytes() -> None:
    with pytest.raises(ValidationError) as exc:
        validate_image_bytes(b"")
    assert _message(exc).startswith("Not an image")


def test_random_bytes() -> None:
    with pytest.raises(ValidationError) as exc:
        validate_image_bytes(os.urandom(2048))
    assert _message(exc).startswith("Not an image")


def test_text_disguised_as_png() -> None:
    with pytest.raises(ValidationError) as exc:
        validate_image_upload(SimpleUploadedFile("photo.png", b"hello, I am not a picture", content_type="image/png"))
    assert _message(exc).startswith("Not an image")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated(fmt: str) -> None:
    noisy = Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3))
    buf = io.BytesIO()
    noisy.save(buf, format=fmt)
    data = buf.getvalue()
    with pytest.raises(ValidationError) as exc:
        validate_image_bytes(data[: len(data) // 2])
    assert "Not an image" in _message(exc)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(("fmt", "name"), [("GIF", "GIF"), ("BMP", "BMP"), ("TIFF", "TIFF")])
def test_unsupported_format(fmt: str, name: str) -> None:
    with pytest.raises(ValidationError) as exc:
        validate_image_bytes(make_image_bytes(fmt))
    assert _message(exc) == f"Unsupported image format {name}; use JPEG, PNG or WebP."


def test_too_large(settings) -> None:
    settings.FEEDMOOD_MAX_UPLOAD_BYTES = 100
    data = make_image_bytes("PNG", size=(64, 64), mode="RGB", color=None)
    with pytest.raises(ValidationError) as exc:
        validate_image_bytes(data + b"\0" * 200)
    assert _message(exc) == f"Image is too large ({len(data) + 200} bytes; the limit is 100)."


def test_upload_too_large_checked_before_reading(settings) -> None:
    settings.FEEDMOOD_MAX_UPLOAD_BYTES = 10

    class NoRead(io.BytesIO):
        size = 11

        def read(self, *a):  # pragma: no cover - must not be called
            raise AssertionError("read before size check")

    with pytest.raises(ValidationError) as exc:
        validate_image_upload(NoRead(b"x" * 11))
    assert "too large (11 bytes; the limit is 10)" in _message(exc)


def test_too_many_pixels_setting(settings) -> None:
    settings.FEEDMOOD_MAX_IMAGE_PIXELS = 1000
    with pytest.raises(ValidationError) as exc:
        validate_image_bytes(make_image_bytes("PNG", size=(50, 50)))
    assert _message(exc) == "Image has too many pixels (50x50 = 2500; the limit is 1000)."


def test_decompression_bomb_rejected_from_header() -> None:
    bomb = _png_header_only(100_000, 100_000)  # 10^10 pixels in ~100 bytes
    assert len(bomb) < 200
    with pytest.raises(ValidationError) as exc:
        validate_image_bytes(bomb)
    assert "too many pixels" in _message(exc)


def test_bomb_just_above_default_limit() -> None:
    bomb = _png_header_only(8000, 5001)  # 40,008,000 > 40 M
    with pytest.raises(ValidationError) as exc:
        validate_image_bytes(bomb)
    assert "too many pixels" in _message(exc)


def test_upload_returns_bytes_and_info() -> None:
    data = make_image_bytes("WEBP", size=(9, 7))
    validated = validate_image_upload(SimpleUploadedFile("x.gif", data, content_type="image/gif"))
    assert validated.data == data
    assert validated.info == ImageInfo("WEBP", 9, 7)
    assert validated.filename == "image.webp"


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=512))
def test_arbitrary_bytes_only_raise_validation_error(data: bytes) -> None:
    try:
        validate_image_bytes(data)
    except ValidationError as exc:
        assert exc.messages


@hsettings(max_examples=40, deadline=None)
@given(st.integers(min_value=1, max_value=2000))
def test_corrupted_png_only_raises_validation_error(cut: int) -> None:
    data = make_image_bytes("PNG", size=(40, 40), color=(1, 2, 3))
    damaged = bytearray(data)
    damaged[cut % len(damaged)] ^= 0xFF
    try:
        validate_image_bytes(bytes(damaged))
    except ValidationError as exc:
        assert exc.messages


# --- decode_image_to_array ---------------------------------------------------------------


def test_decode_rgb_and_gray() -> None:
    data = make_image_bytes("PNG", size=(6, 4), color=(10, 20, 30))
    rgb = decode_image_to_array(data)
    assert rgb.shape == (4, 6, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (10, 20, 30)
    gray = decode_image_to_array(data, mode="L")
    assert gray.shape == (4, 6) and gray.dtype == np.uint8


def test_decode_applies_exif_orientation() -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif.tobytes())
    arr = decode_image_to_array(buf.getvalue())
    assert arr.shape == (40, 20, 3)


def test_decode_cmyk_jpeg() -> None:
    arr = decode_image_to_array(make_image_bytes("JPEG", size=(8, 8), mode="CMYK", color=(0, 0, 0, 0)))
    assert arr.shape == (8, 8, 3)
    assert arr.min() > 240  # no ink = white


def test_decode_16bit_png_scales_instead_of_clipping() -> None:
    img = Image.new("I;16", (4, 4), 0)
    img.putpixel((0, 0), 65535)
    img.putpixel((1, 0), 32768)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    arr = decode_image_to_array(buf.getvalue(), mode="L")
    assert arr.shape == (4, 4)
    assert arr[0, 0] == 255 and arr[0, 1] == 128 and arr[1, 1] == 0


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_decode_alpha_composited_on_white(mode: str) -> None:
    transparent = (0, 0, 0, 0) if mode == "RGBA" else (0, 0)
    arr = decode_image_to_array(make_image_bytes("PNG", size=(3, 3), mode=mode, color=transparent))
    assert arr.shape == (3, 3, 3)
    assert (arr == 255).all()


def test_decode_palette_with_transparency() -> None:
    img = Image.new("P", (4, 4), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((1, 1), 1)
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    arr = decode_image_to_array(buf.getvalue())
    assert tuple(arr[0, 0]) == (255, 255, 255)
    assert tuple(arr[1, 1]) == (255, 0, 0)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_decode_max_side_keeps_aspect(fmt: str) -> None:
    arr = decode_image_to_array(make_image_bytes(fmt, size=(400, 200)), max_side=100)
    assert arr.shape == (50, 100, 3)


def test_decode_rejects_what_validation_rejects() -> None:
    with pytest.raises(ValidationError):
        decode_image_to_array(make_image_bytes("GIF"))
    with pytest.raises(ValueError):
        decode_image_to_array(make_image_bytes("PNG"), mode="CMYK")  # type: ignore[arg-type]
