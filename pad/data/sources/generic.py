"""Bring-your-own data: `<path>/interactions.{csv,parquet}` (columns user, item, timestamp[, rating])
and `<path>/items.{csv,parquet}` (item + the `data.text_field` column). With `data.name=X` the files
are `X_interactions.*` and `X_items.*`. Timestamps: numbers, or dates/datetimes (Parquet or ISO text).
Rows rated below `data.min_rating` are dropped when a rating column exists; items nobody keeps are dropped.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from pad.config import DataConfig
from pad.data.sources.common import (RawData, find_one, known_items, optional_rating_filter, read_table,
                                     require_columns,
                                     string_ids, to_number, unique_items, with_line)
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
    inter, counts = optional_rating_filter(inter, inter_path, cfg.min_rating)

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
    """Timestamps as Float64 seconds (numbers kept as they are; dates parsed)."""
    dtype = df.schema["timestamp"]
    if dtype.is_temporal():
        return df.with_columns(pl.col("timestamp").dt.epoch("s").cast(pl.Float64))
    if dtype == pl.String:
        as_number = df["timestamp"].cast(pl.Float64, strict=False)
        if as_number.null_count() == 0:
            return df.with_columns(timestamp=as_number)
        try:
            as_date = df["timestamp"].str.to_datetime(strict=False)
        except pl.exceptions.ComputeError:  # no date format fits the column
            as_date = pl.Series([None] * df.height, dtype=pl.Datetime)
        bad = df.filter(as_date.is_null() & as_number.is_null())
        if bad.height:
            row = bad.row(0, named=True)
            raise PadError(f"{path}: line {row['line']}, column 'timestamp': {row['timestamp']!r} is neither "
                           f"a number nor an ISO date/time; fix or remove that row")
        return df.with_columns(timestamp=as_number.fill_null(as_date.dt.epoch("s").cast(pl.Float64)))
    return to_number(df, "timestamp", path)
