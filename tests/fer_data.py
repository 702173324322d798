"""Where the real FER-2013 data is, for the tests that use it when it is present (it is never committed)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def shared_fer_dir() -> Path | None:
    """$FEEDMOOD_FER_DATA, else ../shared/data/fer2013 next to the checkout."""
    candidates = [os.environ.get("FEEDMOOD_FER_DATA"), ROOT.parent / "shared" / "data" / "fer2013"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "fer2013.csv.gz").is_file():
            return Path(candidate)
    return None
