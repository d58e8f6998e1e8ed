"""Bring-your-own data: `<path>/interactions.{csv,parquet}` (columns user, item, timestamp[, rating])
and `<path>/items.{csv,parquet}` (item + the `data.text_field` column). With `data.name=X` the files
are `X_interactions.*` and `X_items.*`. Timestamps: numbers, or dates/datetimes (Parquet or ISO text).
An empty, NaN or infinite timestamp is an error naming its line. Exact repeats of a row (same user, item,
timestamp and rating, if any) are kept once and counted (`dropped_duplicate_interactions`). Then rows
rated below `data.min_rating` are dropped when a rating column exists; items nobody keeps are dropped.
If both `interactions.csv` and `interactions.parquet` exist, move one away: nothing picks between them.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from pad.config import DataConfig
from pad.data.sources.common import (RawData, drop_duplicate_rows, find_one, known_items, line_of,
                                     optional_rating_filter, read_table, require_columns, string_ids, to_number,
                                     unique_items, with_line)
from pad.errors import PadError

EXTS = (".csv", ".parquet")


def read(cfg: DataConfig) -> RawData:
    folder = Path(cfg.path)
    prefix = f"{cfg.name}_" if cfg.name else ""
    inter_path = find_one(folder, [f"{prefix}interactions{e}" for e in EXTS], "interactions file")
    items_path = find_one(folder, [f"{prefix}items{e}" for e in EXTS], "items file")

    inter = _read(inter_path)
    require_columns(inter, inter_path, ["user", "item", "timestamp"])
    inter = string_ids(inter, ["user", "item"], inter_path)
    inter = _timestamps(inter, inter_path)
    exact = ["user", "item", "timestamp"]
    if "rating" in inter.columns:  # as numbers, so that "5" and "5.0" are the same rating
        inter, exact = to_number(inter, "rating", inter_path), [*exact, "rating"]
    inter, duplicates = drop_duplicate_rows(inter, exact)
    inter, counts = optional_rating_filter(inter, inter_path, cfg.min_rating)
    counts["dropped_duplicate_interactions"] = duplicates

    items = _read(items_path)
    require_columns(items, items_path, ["item", cfg.text_field])
    items = unique_items(string_ids(items, ["item"], items_path), items_path)
    items = items.select("item", text=pl.col(cfg.text_field).cast(pl.String).fill_null(""))
    known_items(inter, items, inter_path, items_path)
    return RawData(inter.select("user", "item", order="timestamp"), items, keep_unused_items=False,
                   counts=counts)


def _read(path: Path) -> pl.DataFrame:
    return with_line(read_table(path), header_lines=0 if path.suffix == ".parquet" else 1)


def _timestamps(df: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Timestamps as finite Float64 seconds (numbers kept as they are; dates parsed); a bad one names its line."""
    dtype = df.schema["timestamp"]
    if dtype.is_temporal():
        seconds = df["timestamp"].dt.epoch("s").cast(pl.Float64)
    elif dtype == pl.String:
        text = df["timestamp"].str.strip_chars()
        seconds = text.cast(pl.Float64, strict=False)
        if seconds.null_count() > text.null_count():  # some are not numbers: dates?
            try:
                as_date = text.str.to_datetime(strict=False)
            except pl.exceptions.ComputeError:  # no date format fits the column
                as_date = pl.Series([None] * df.height, dtype=pl.Datetime)
            seconds = seconds.fill_null(as_date.dt.epoch("s").cast(pl.Float64))
    else:
        return to_number(df, "timestamp", path)
    bad = df.filter(~seconds.is_finite().fill_null(False))
    if bad.height:
        row = bad.row(0, named=True)
        value = row["timestamp"]
        if value is None or str(value).strip() == "":
            what = "is empty; every interaction needs a time"
        elif isinstance(value, str) and value.strip().lower().lstrip("+-") not in ("nan", "inf", "infinity"):
            what = f"{value!r} is neither a number nor an ISO date/time"
        else:
            what = f"{value!r} is not a finite number"
        raise PadError(f"{path}: line {line_of(row)}, column 'timestamp': {what}; fix or remove that row")
    return df.with_columns(timestamp=seconds)
