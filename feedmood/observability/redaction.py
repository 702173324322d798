"""What never leaves the process in logs or error reports: credentials, images and emotion data."""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

#: Keys whose values are dropped wherever they appear (headers, request bodies, extras, log fields).
SENSITIVE_KEYS = frozenset({
    "authorization", "cookie", "set-cookie", "x-csrftoken", "csrftoken", "sessionid", "token", "key", "password",
    "secret", "api_key", "image", "selfie", "file", "probabilities", "readings", "reading", "valence", "arousal",
    "dominant_emotion", "confidence", "emotion", "mood",
})  # fmt: skip

# "Token 0123..." / "Bearer ..." credentials, and bare 40-hex API tokens (DRF's key format).
_CREDENTIAL = re.compile(r"(?i)\b(token|bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_HEX_TOKEN = re.compile(r"\b[0-9a-fA-F]{40}\b")
_QUERY_SECRET = re.compile(r"(?i)\b(token|key|password|secret|sessionid)=[^&\s]+")


_NORMALISED_KEYS = frozenset(k.replace("-", "_") for k in SENSITIVE_KEYS)


def is_sensitive(key: Any) -> bool:
    """True for a key naming a credential, an image or emotion data (case-insensitive, ``-``/``_`` alike)."""
    return isinstance(key, str) and key.strip().lower().replace("-", "_") in _NORMALISED_KEYS


def redact_text(text: str) -> str:
    """Mask credentials inside free text (log messages, exception values, query strings)."""
    text = _CREDENTIAL.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _HEX_TOKEN.sub(REDACTED, text)


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with sensitive keys redacted and credentials masked in strings (nested, bounded)."""
    if depth > 8:
        return REDACTED
    if isinstance(value, dict):
        return {k: REDACTED if is_sensitive(k) else scrub(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, (list, tuple)) and len(item) == 2 for item in value):
            return [[k, REDACTED if is_sensitive(k) else scrub(v, depth + 1)] for k, v in value]  # header pairs
        return [scrub(item, depth + 1) for item in value]
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return REDACTED  # raw bodies and image bytes
    return value
