"""The PAD authors' files: `<name>_cleaned_history.csv` (`,user,history`, history a Python list
literal of item ids, oldest first) and `metadata_<name>.csv` (`asin,title`).

item_idx = metadata row + 1, as in the reference code; every metadata item is kept.
"""
from __future__ import annotations

import ast
from pathlib import Path

import polars as pl

from pad.config import DataConfig
from pad.data.sources.common import (LINE, RawData, find_one, known_items, read_table, require_columns,
                                     require_file, string_ids, unique_items, with_line)
from pad.errors import PadError

SUFFIX = "_cleaned_history.csv"


def read(cfg: DataConfig) -> RawData:
    folder = Path(cfg.path)
    if cfg.name:
        hist_path = require_file(folder / f"{cfg.name}{SUFFIX}", "history file")
    else:
        hist_path = find_one(folder, [f"*{SUFFIX}"], "PAD history file (<name>_cleaned_history.csv)")
    name = hist_path.name[: -len(SUFFIX)]
    meta_path = require_file(folder / f"metadata_{name}.csv", "metadata file")

    hist = with_line(read_table(hist_path))
    require_columns(hist, hist_path, ["user", "history"])
    hist = string_ids(hist, ["user"], hist_path)
    dup = hist.filter(pl.col("user").is_duplicated())
    if dup.height:
        raise PadError(f"{hist_path}: user {dup['user'][0]!r} has several rows (lines "
                       f"{', '.join(map(str, dup.filter(pl.col('user') == dup['user'][0])[LINE]))}); "
                       f"merge them into one history")
    lists = [_parse_history(h, line, hist_path) for h, line in zip(hist["history"], hist[LINE])]
    inter = (hist.select("user", LINE).with_columns(item=pl.Series(lists, dtype=pl.List(pl.String)))
             .explode("item")
             .with_columns(order=pl.int_range(pl.len()).over("user")))

    meta = with_line(read_table(meta_path))
    require_columns(meta, meta_path, ["asin", "title"])
    items = string_ids(meta.rename({"asin": "item"}), ["item"], meta_path)
    items = unique_items(items, meta_path).select("item", text=pl.col("title").fill_null(""))
    known_items(inter, items, hist_path, meta_path)
    return RawData(inter.select("user", "item", "order"), items, keep_unused_items=True)


def _parse_history(text: str | None, line: int, path: Path) -> list[str]:
    """Parse a list literal safely (`ast.literal_eval`, never `eval`)."""
    try:
        value = ast.literal_eval(text) if text is not None else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        shown = text if text is None or len(text) < 60 else text[:57] + "..."
        raise PadError(f"{path}: line {line}, column 'history': {shown!r} is not a non-empty list of "
                       f"item ids like ['B001', 'B002']; fix or remove that row")
    return value
