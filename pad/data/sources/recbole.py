"""RecBole atomic files: `<name>.inter` and `<name>.item`, tab-separated, typed headers such as
`user_id:token item_id:token rating:float timestamp:float` and `item_id:token title:token_seq`.

The text is the `.item` field whose name (before `:`) is `data.text_field` (`title` or `title:token_seq`).
No `timestamp` field: file order is time order. A `rating` field: rows below `data.min_rating` dropped.
Items nobody keeps are dropped.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from pad.config import DataConfig
from pad.data.sources.common import (RawData, find_one, known_items, optional_rating_filter, read_table,
                                     require_columns,
                                     require_file, string_ids, to_number, unique_items, with_line)


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
    if "timestamp" in inter.columns:
        inter = to_number(inter, "timestamp", inter_path).rename({"timestamp": "order"})
    else:
        inter = inter.with_columns(order=pl.col("line"))
    inter, counts = optional_rating_filter(inter, inter_path, cfg.min_rating)

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
