"""One error type for every problem a user can fix, and the entry-point wrapper that prints it in one
line and exits 2 (every stage script and `pad` command runs inside `friendly_errors`)."""
from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

F = TypeVar("F", bound=Callable)


class PadError(Exception):
    """A user-fixable problem: bad input, bad params, missing file. Message says what and where."""


def friendly_errors(fn: F) -> F:
    """The wrapper of every stage's and command's entry point: turn a `PadError` into one line on stderr
    and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted: finished work is kept; rerun to resume", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]
