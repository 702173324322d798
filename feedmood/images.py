"""Untrusted image handling, shared by post uploads and the emotion pipeline.

Images are validated by really decoding them, never by file name or
content-type.  The rules, in order:

1. non-empty and at most ``FEEDMOOD_MAX_UPLOAD_BYTES`` bytes;
2. recognised by Pillow as an image at all;
3. format JPEG, PNG or WebP;
4. at most ``FEEDMOOD_MAX_IMAGE_PIXELS`` pixels, read from the header *before*
   decoding (Pillow's decompression-bomb warning is an error here too);
5. fully decodable (``load()``): truncated or corrupt files are rejected.

All failures raise ``django.core.exceptions.ValidationError`` with a clear
message; DRF's exception handler turns it into a 400.
"""

from __future__ import annotations

import contextlib
import io
import struct
import warnings
from dataclasses import dataclass
from typing import IO, Literal

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from feedmood.decode_budget import decode_budget_charge
from feedmood.image_metadata import ORIENTATION_TAG, strip_metadata

ALLOWED_FORMATS: dict[str, str] = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MIME_TYPES: dict[str, str] = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSION_MIME_TYPES: dict[str, str] = {f".{ext}": MIME_TYPES[fmt] for fmt, ext in ALLOWED_FORMATS.items()}

# Truncated files must fail loudly, and Pillow's own bomb guard must agree with ours.
ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = settings.FEEDMOOD_MAX_IMAGE_PIXELS


@dataclass(frozen=True)
class ImageInfo:
    """What decoding an image told us."""

    format: str  # "JPEG", "PNG" or "WEBP"
    width: int
    height: int

    @property
    def extension(self) -> str:
        return ALLOWED_FORMATS[self.format]

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.format]

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class ValidatedImage:
    """An upload that passed validation: its bytes and what they decode to."""

    data: bytes
    info: ImageInfo

    @property
    def filename(self) -> str:
        """A neutral name with the real extension (storage randomises it)."""
        return f"image.{self.info.extension}"


def max_upload_bytes() -> int:
    return int(settings.FEEDMOOD_MAX_UPLOAD_BYTES)


def max_image_pixels() -> int:
    return int(settings.FEEDMOOD_MAX_IMAGE_PIXELS)


def _too_large(size: int, limit: int) -> ValidationError:
    return ValidationError(
        "Image is too large (%(size)d bytes; the limit is %(limit)d).",
        code="too_large",
        params={"size": size, "limit": limit},
    )


def _too_many_pixels(limit: int, width: int | None = None, height: int | None = None) -> ValidationError:
    if width is not None and height is not None:
        return ValidationError(
            "Image has too many pixels (%(width)dx%(height)d = %(pixels)d; the limit is %(limit)d).",
            code="too_many_pixels",
            params={"width": width, "height": height, "pixels": width * height, "limit": limit},
        )
    return ValidationError(
        "Image has too many pixels (the limit is %(limit)d).", code="too_many_pixels", params={"limit": limit}
    )


def _open_checked(
    data: bytes,
    max_pixels: int | None,
    draft: tuple[str | None, tuple[int, int] | None] | None = None,
    owner_id: int | None = None,
) -> Image.Image:
    """Open (header only), check format and pixel count, then fully decode.

    With ``owner_id``, the pixels are charged to that user's decode budget
    (``feedmood.decode_budget``) between the header checks and the decode.

    ``draft=(mode, size)`` asks the JPEG decoder, after the header checks and
    before the full decode, for ``mode`` (``"L"``: libjpeg outputs only the
    luma plane, skipping chroma upsampling and colour conversion) and/or a
    DCT-domain downscale towards ``size``.  The whole entropy-coded stream is
    still decoded, so truncated or corrupt files are rejected all the same.
    """
    limit = max_image_pixels() if max_pixels is None else max_pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(limit) from None
        except UnidentifiedImageError:
            raise ValidationError(
                "Not an image: the data could not be decoded as JPEG, PNG or WebP.", code="not_an_image"
            ) from None
        except Exception as exc:
            raise ValidationError(
                "Not an image: %(reason)s", code="not_an_image", params={"reason": _reason(exc)}
            ) from None

        fmt = (img.format or "").upper()
        if fmt not in ALLOWED_FORMATS:
            raise ValidationError(
                "Unsupported image format %(format)s; use JPEG, PNG or WebP.",
                code="unsupported_format",
                params={"format": fmt or "unknown"},
            )
        width, height = img.size
        if width <= 0 or height <= 0:
            raise ValidationError("Not an image: it has no pixels.", code="not_an_image")
        if width * height > limit:
            raise _too_many_pixels(limit, width, height)
        if owner_id is not None:
            decode_budget_charge(user_id=owner_id, pixels=width * height)
        try:
            if draft is not None and fmt == "JPEG":
                img.draft(draft[0] or img.mode, draft[1])
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise _too_many_pixels(limit, width, height) from None
        except Exception as exc:
            raise ValidationError(
                "Not an image: the %(format)s file is truncated or corrupt (%(reason)s).",
                code="corrupt",
                params={"format": fmt, "reason": _reason(exc)},
            ) from None
    return img


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:200]


def _checked_bytes(data: bytes, max_bytes: int | None) -> bytes:
    """Rule 1: bytes, non-empty, within the upload limit."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValidationError("Not an image: expected bytes.", code="not_an_image")
    data = bytes(data)
    if not data:
        raise ValidationError("Not an image: the file is empty.", code="empty")
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    if len(data) > limit:
        raise _too_large(len(data), limit)
    return data


def validate_image_bytes(data: bytes, *, max_bytes: int | None = None, max_pixels: int | None = None) -> ImageInfo:
    """Fully validate untrusted image bytes; return their format and size.

    Raises ``django.core.exceptions.ValidationError`` on any problem.
    """
    img = _open_checked(_checked_bytes(data, max_bytes), max_pixels)
    try:
        return ImageInfo(format=img.format.upper(), width=img.width, height=img.height)
    finally:
        img.close()


def read_upload(uploaded_file: IO[bytes], *, max_bytes: int | None = None) -> bytes:
    """Read an uploaded file without ever holding more than the limit + 1 bytes."""
    limit = max_upload_bytes() if max_bytes is None else max_bytes
    size = getattr(uploaded_file, "size", None)
    if size is not None and size > limit:
        raise _too_large(size, limit)
    if hasattr(uploaded_file, "seek"):
        with contextlib.suppress(OSError, ValueError):
            uploaded_file.seek(0)
    data = uploaded_file.read(limit + 1)
    if len(data) > limit:
        raise _too_large(size if size is not None else len(data), limit)
    return data


def validate_image_upload(
    uploaded_file: IO[bytes], *, max_bytes: int | None = None, owner_id: int | None = None
) -> ValidatedImage:
    """Validate a Django ``UploadedFile`` (or any binary file object).

    Size is checked before reading; then the bytes are validated like
    :func:`validate_image_bytes` and stripped of metadata (EXIF with GPS and
    camera, XMP, comments; orientation applied; ICC profile kept) by
    :func:`feedmood.image_metadata.strip_metadata`: the bytes returned are the
    ones to store.  The pixels are decoded once (the orientation is read from
    the decoded image).  With ``owner_id`` they are first charged to that
    user's decode budget (``DecodeBudgetExceeded``, a 429, when spent).
    Raises ``django.core.exceptions.ValidationError``.
    """
    if uploaded_file is None or not hasattr(uploaded_file, "read"):
        raise ValidationError("Not an image: no file was uploaded.", code="not_an_image")
    data = read_upload(uploaded_file, max_bytes=max_bytes)
    img = _open_checked(_checked_bytes(data, max_bytes), None, owner_id=owner_id)
    try:
        info = ImageInfo(format=img.format.upper(), width=img.width, height=img.height)
        orientation = img.getexif().get(ORIENTATION_TAG, 1)  # loaded already: no second decode
    finally:
        img.close()
    try:
        clean, reencoded = strip_metadata(data, info.format, orientation=orientation)
        if not reencoded:  # same pixels in a smaller container: already validated
            return ValidatedImage(data=clean, info=info)
        return ValidatedImage(data=clean, info=validate_image_bytes(clean, max_bytes=max_bytes))
    except (ValueError, OSError, struct.error) as exc:  # a container we cannot rewrite is refused, not stored as is
        raise ValidationError(
            "Not an image: the %(format)s file is malformed (%(reason)s).",
            code="corrupt",
            params={"format": info.format, "reason": _reason(exc)},
        ) from None


#: Pixels scaled at a time from 16/32-bit to 8-bit grey: the float temporaries stay ~1 MB for any size.
DEPTH_CONVERSION_PIXELS = 1 << 17


def _high_depth_to_gray(img: Image.Image, max_side: int | None = None) -> Image.Image:
    """16/32-bit grey (e.g. a 16-bit PNG) to 8-bit "L", scaled rather than clipped.

    Downscaled first when ``max_side`` asks for it, then converted in row blocks: no
    full-size float64 copy (a 6324x6324 16-bit PNG once cost ~1 GB here).
    """
    if max_side is not None and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img = img.resize(
            (max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BILINEAR
        )
    arr = np.asarray(img)  # uint16, int32 or float32: the decoded depth, no wider
    peak = 65535.0 if (img.mode.startswith("I;16") or arr.max(initial=0) > 255) else 255.0
    out = np.empty(arr.shape, dtype=np.uint8)
    rows = max(1, DEPTH_CONVERSION_PIXELS // max(1, arr.shape[1]))
    for top in range(0, arr.shape[0], rows):
        block = arr[top : top + rows].astype(np.float64)
        out[top : top + rows] = np.clip(np.rint(block * (255.0 / peak)), 0, 255)
    return Image.fromarray(out, mode="L")


def _to_rgb_or_gray(img: Image.Image, max_side: int | None = None) -> Image.Image:
    """Convert any Pillow mode to 8-bit "RGB" or "L", compositing alpha on white."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_gray(img, max_side)
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        if img.mode == "RGB":
            return img
        mode = "RGBA"
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        background.alpha_composite(rgba)
        composed = background.convert("RGB")
        return composed.convert("L") if mode in ("LA", "La") else composed
    # CMYK, YCbCr, LAB, HSV, RGBX, ...
    return img.convert("RGB")


def decode_image_to_array(
    data: bytes,
    max_side: int | None = None,
    *,
    mode: Literal["RGB", "L"] = "RGB",
    max_bytes: int | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Validate and decode image bytes into a ``uint8`` array.

    Returns ``(H, W, 3)`` for ``mode="RGB"`` or ``(H, W)`` for ``mode="L"``.
    EXIF orientation is applied; CMYK, 16-bit, palette and alpha images are
    converted properly (alpha over white).  If ``max_side`` is given the image
    is downscaled (aspect kept) so that its longer side is at most ``max_side``.
    Raises ``django.core.exceptions.ValidationError`` like ``validate_image_bytes``.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', not {mode!r}")
    if max_side is not None and max_side < 1:
        raise ValueError("max_side must be a positive integer")
    # One pass: the validation's full decode is the decode (rules 1-5 exactly as in
    # validate_image_bytes).  For JPEG, the decoder is asked for grey directly when
    # mode="L" and for a fast DCT-domain downscale when max_side is given.
    draft_size = None if max_side is None else (max_side, max_side)
    draft = ("L" if mode == "L" else None, draft_size) if (mode == "L" or draft_size) else None
    img = _open_checked(_checked_bytes(data, max_bytes), max_pixels, draft=draft)
    try:
        with warnings.catch_warnings(), img:
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if img.getexif().get(ORIENTATION_TAG, 1) != 1:
                img = ImageOps.exif_transpose(img)
            img = _to_rgb_or_gray(img, max_side)
            if max_side is not None and max(img.size) > max_side:
                img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
            if img.mode != mode:
                img = img.convert(mode)
            return np.array(img, dtype=np.uint8)
    except ValidationError:
        raise
    except Exception as exc:
        raise ValidationError(
            "Not an image: the file could not be decoded (%(reason)s).",
            code="corrupt",
            params={"reason": _reason(exc)},
        ) from None
