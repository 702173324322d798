"""Strip metadata from uploaded images before they are stored.

EXIF (camera make, serial numbers, GPS position), XMP, IPTC and comments are
removed; the ICC colour profile (and JFIF/Adobe colour information) stays.
Files are edited at the container level, so pixels are not re-encoded, except
when an EXIF orientation is set: then the rotation is applied to the pixels
first (and the image re-encoded), since dropping the tag would turn it.
"""

from __future__ import annotations

import io
import struct

from PIL import Image, ImageOps

ORIENTATION_TAG = 0x0112
#: JPEG segments kept: APP0 (JFIF), APP2 (ICC profile), APP14 (Adobe colour transform); every other APPn and COM goes.
JPEG_KEPT_APP_MARKERS = frozenset({0xE0, 0xE2, 0xEE})
PNG_DROPPED_CHUNKS = frozenset({b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"})
WEBP_DROPPED_CHUNKS = frozenset({b"EXIF", b"XMP "})
WEBP_VP8X_EXIF_XMP_FLAGS = 0x08 | 0x04
REENCODE_QUALITY = 95


def strip_metadata(data: bytes, image_format: str, orientation: int | None = None) -> tuple[bytes, bool]:
    """``data`` (a validated JPEG, PNG or WebP) without metadata, orientation applied, ICC profile kept;
    and whether the pixels were re-encoded (an orientation was applied: the size may have changed).

    Pass the EXIF ``orientation`` when the caller has decoded the image already: finding it costs a
    full decode for a PNG (its eXIf chunk may follow the pixels)."""
    if orientation is None:
        with Image.open(io.BytesIO(data)) as img:
            orientation = img.getexif().get(ORIENTATION_TAG, 1)
    if orientation != 1:
        with Image.open(io.BytesIO(data)) as img:
            return _reencode_upright(img, image_format), True
    strip = {"JPEG": _strip_jpeg, "PNG": _strip_png, "WEBP": _strip_webp}.get(image_format)
    if strip is None:
        raise ValueError(f"unsupported format {image_format}")
    return strip(data), False


def _reencode_upright(img: Image.Image, image_format: str) -> bytes:
    icc = img.info.get("icc_profile")
    upright = ImageOps.exif_transpose(img)
    upright.info = {}  # Pillow would carry the comment, EXIF and XMP over into the new file
    options = {"quality": REENCODE_QUALITY} if image_format in ("JPEG", "WEBP") else {}
    if icc:
        options["icc_profile"] = icc
    out = io.BytesIO()
    upright.save(out, format=image_format, **options)  # no exif= : nothing of it is written
    return out.getvalue()


def _strip_jpeg(data: bytes) -> bytes:
    out = bytearray(data[:2])  # SOI
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise ValueError("malformed JPEG segment")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:  # start of scan: entropy-coded data and the rest are copied as they are
            out += data[pos:]
            return bytes(out)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers
            out += data[pos : pos + 2]
            pos += 2
            continue
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if not ((0xE0 <= marker <= 0xEF and marker not in JPEG_KEPT_APP_MARKERS) or marker == 0xFE):
            out += data[pos:end]
        pos = end
    out += data[pos:]
    return bytes(out)


def _strip_png(data: bytes) -> bytes:
    out = bytearray(data[:8])
    pos = 8
    while pos + 8 <= len(data):
        length = struct.unpack(">I", data[pos : pos + 4])[0]
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if kind not in PNG_DROPPED_CHUNKS:
            out += data[pos:end]
        pos = end
        if kind == b"IEND":
            break
    return bytes(out)


def _strip_webp(data: bytes) -> bytes:
    chunks = bytearray()
    pos = 12
    while pos + 8 <= len(data):
        kind = data[pos : pos + 4]
        size = struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        end = pos + 8 + size + (size & 1)
        chunk = bytearray(data[pos:end])
        if kind == b"VP8X":
            chunk[8] &= ~WEBP_VP8X_EXIF_XMP_FLAGS & 0xFF
        if kind not in WEBP_DROPPED_CHUNKS:
            chunks += chunk
        pos = end
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WEBP" + bytes(chunks)
