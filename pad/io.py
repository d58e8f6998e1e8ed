"""Atomic file writes (a failed or killed run never leaves a half-written output behind) and safe
checkpoint reads (`load_torch`: tensors and plain data only, one-line errors).

JSON outputs (metrics/*.json, DVC metrics) hold finite numbers only: NaN or inf in a metric means a
broken model or a broken metric, and written down it would read as a number in `dvc metrics diff`.
"""
from __future__ import annotations

import json
import math
import os
import pickle
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from pad.errors import PadError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_parquet(table: pa.Table, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def non_finite(obj: Any, prefix: str = "") -> tuple[str, float] | None:
    """The dotted key (list items by index) and value of the first NaN or +-inf float in nested
    dicts/lists `obj`, or None if every float is finite."""
    if isinstance(obj, float):
        return None if math.isfinite(obj) else (prefix[:-1], obj)
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = non_finite(value, f"{prefix}{key}.")
        if found is not None:
            return found
    return None


def json_text(obj: Any, path: str | Path) -> str:
    """`obj` as indented JSON; a PadError naming `path` and the dotted key of a NaN or inf."""
    found = non_finite(obj)
    if found is not None:
        raise PadError(f"{path}: refusing to write {found[0]} = {found[1]}: metrics must be finite numbers "
                       "(a NaN or inf comes from a diverged model or a broken metric)")
    return json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"


def write_json(obj: Any, path: str | Path) -> None:
    """Write `obj` as JSON atomically; refuses NaN and inf (`json_text`)."""
    text = json_text(obj, path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_torch(obj: Any, path: str | Path) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_torch(path: str | Path, *, what: str = "checkpoint", fix: str = "", map_location: Any = "cpu") -> Any:
    """`torch.load` with `weights_only=True` (tensors and plain data only: a file that would run code
    when unpickled is refused). Every refusal is a one-line PadError naming `path`; `fix` says what to do."""
    import torch

    path = Path(path)
    hint = f"; {fix}" if fix else ""
    if not path.is_file():
        raise PadError(f"{path}: {what} not found{hint}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):  # the weights-only unpickler met a class or function to import
            raise PadError(f"{path}: refused to load this {what}: it holds Python objects beyond tensors and "
                           f"plain data, which could run code when loaded (files this project writes never do){hint}") from None
        raise PadError(f"{path}: unreadable {what}: corrupt or truncated, or not written by torch.save{hint}") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, KeyError) as exc:
        raise PadError(f"{path}: unreadable {what}: corrupt or truncated ({type(exc).__name__}){hint}") from None
