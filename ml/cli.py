"""Shared bits of the ml command-line tools: clean error exits instead of tracebacks."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ml.data import DataError

EXPECTED_ERRORS = (DataError, FileNotFoundError, ValueError, KeyError)


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
