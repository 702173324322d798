"""Shared bits of the ml command-line tools: the default data directory, argparse number types, and clean
error exits instead of tracebacks."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ml.data import DataError

EXPECTED_ERRORS = (DataError, FileNotFoundError, ValueError, KeyError)

#: The FER-2013 data every command reads unless --data says otherwise.
DEFAULT_DATA = os.environ.get(
    "FEEDMOOD_FER_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "fer2013")
)


def positive_int(value: str) -> int:
    """argparse type: an integer > 0."""
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def positive_float(value: str) -> float:
    """argparse type: a number > 0."""
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return number


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> None:
    """Run a CLI `main`, turning expected errors into `error: ...` on stderr and exit status 1."""
    try:
        status = main(argv)
    except EXPECTED_ERRORS as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        status = 130
    sys.exit(status)
