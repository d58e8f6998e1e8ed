"""RecBole atomic files: `<name>.inter` and `<name>.item`, tab-separated, typed headers such as
`user_id:token item_id:token rating:float timestamp:float` and `item_id:token title:token_seq`.

The text is the `.item` field whose name (before `:`) is `data.text_field` (`title` or `title:token_seq`).
No `timestamp` field: file order is time order. A `timestamp` must be a finite number (an empty or NaN one
is an error naming its line); with one, exact repeats of a row (same user, item, timestamp and rating, if
any) are kept once and counted (`dropped_duplicate_interactions`). A `rating` field: rows below
`data.min_rating` dropped.
Items nobody keeps are dropped.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from pad.config import DataConfig
from pad.data.sources.common import (LINE, RawData, drop_duplicate_rows, find_one, known_items,
                                     optional_rating_filter, read_table, require_columns, require_file,
                                     string_ids, to_number, unique_items, with_line)


def read(cfg: DataConfig) -> RawData:
    folder = Path(cfg.path)
    if cfg.name:
        inter_path = require_file(folder / f"{cfg.name}.inter", "RecBole .inter file")
    else:
        inter_path = find_one(folder, ["*.inter"], "RecBole .inter file")
    items_path = require_file(inter_path.with_suffix(".item"), "RecBole .item file")

    inter = _read(inter_path)
    require_columns(inter, inter_path, ["user_id", "item_id"])
    inter = string_ids(inter, ["user_id", "item_id"], inter_path).rename({"user_id": "user", "item_id": "item"})
    duplicates = None
    if "timestamp" in inter.columns:
        inter = to_number(inter, "timestamp", inter_path).rename({"timestamp": "order"})
        exact = ["user", "item", "order"]
        if "rating" in inter.columns:  # as numbers, so that "5" and "5.0" are the same rating
            inter, exact = to_number(inter, "rating", inter_path), [*exact, "rating"]
        inter, duplicates = drop_duplicate_rows(inter, exact)
    else:  # without times a repeated row may be a real repeat: kept
        inter = inter.with_columns(order=pl.col(LINE))
    inter, counts = optional_rating_filter(inter, inter_path, cfg.min_rating)
    if duplicates is not None:
        counts["dropped_duplicate_interactions"] = duplicates

    text_field = cfg.text_field.split(":")[0]
    items = _read(items_path)
    require_columns(items, items_path, ["item_id", text_field])
    items = unique_items(string_ids(items.rename({"item_id": "item"}), ["item"], items_path), items_path)
    items = items.select("item", text=pl.col(text_field).fill_null(""))
    known_items(inter, items, inter_path, items_path)
    return RawData(inter.select("user", "item", "order"), items, keep_unused_items=False, counts=counts)


def _read(path: Path) -> pl.DataFrame:
    """A tab-separated atomic file; header fields lose their `:type` suffix."""
    df = read_table(path, separator="\t", quote_char=None)
    return with_line(df.rename({c: c.split(":")[0] for c in df.columns}))
