"""MIND (Microsoft News): `behaviors.tsv` + `news.tsv`, as unpacked from MINDsmall_train.zip etc.

Files: `<path>/behaviors.tsv` and `<path>/news.tsv`, or with `data.name=X` the same names in
`<path>/X/` (e.g. X = MINDsmall_train); with no name and no files at the top, the one sub-folder that
has them. A user's sequence: the clicked-news history of their earliest impression (oldest first),
then the clicks (`-1`) of their impressions in time order. Text = the news title; items nobody keeps
are dropped.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from pad.config import DataConfig
from pad.data.sources.common import (LINE, RawData, find_one, known_items, read_table, require_file,
                                     string_ids, unique_items, with_line)
from pad.errors import PadError

BEHAVIOR_COLUMNS = ["impression_id", "user", "time", "history", "impressions"]
NEWS_COLUMNS = ["item", "category", "subcategory", "text", "abstract", "url", "title_entities",
                "abstract_entities"]


def read(cfg: DataConfig) -> RawData:
    folder = Path(cfg.path) / cfg.name
    if cfg.name or (folder / "behaviors.tsv").is_file():
        behaviors_path = require_file(folder / "behaviors.tsv", "MIND behaviors.tsv")
    else:
        behaviors_path = find_one(folder, ["*/behaviors.tsv"], "MIND folder with behaviors.tsv")
    news_path = require_file(behaviors_path.with_name("news.tsv"), "MIND news.tsv")

    beh = _tsv(behaviors_path, BEHAVIOR_COLUMNS)
    beh = string_ids(beh, ["user"], behaviors_path)
    time = pl.col("time").str.to_datetime("%m/%d/%Y %I:%M:%S %p", strict=False)
    bad = beh.filter(time.is_null())
    if bad.height:
        row = bad.row(0, named=True)
        raise PadError(f"{behaviors_path}: line {row[LINE]}, column 3 (time): {row['time']!r} is not like "
                       f"'11/15/2019 8:55:58 AM'; fix or remove that row")
    beh = beh.with_columns(ms=time.dt.epoch("ms")).sort("ms", maintain_order=True)

    first = beh.unique("user", keep="first", maintain_order=True)
    history = (first.select("user", LINE, item=pl.col("history").fill_null("").str.split(" "))
               .explode("item").filter(pl.col("item") != "")
               .with_columns(order=pl.int_range(pl.len()).over("user") - pl.len().over("user")))
    clicks = (beh.select("user", LINE, "ms", item=pl.col("impressions").fill_null("").str.split(" "))
              .explode("item").filter(pl.col("item") != "")
              .with_columns(pos=pl.int_range(pl.len()).over(LINE)))
    malformed = clicks.filter(~pl.col("item").str.contains(r"^[^-]+-[01]$"))
    if malformed.height:
        row = malformed.row(0, named=True)
        raise PadError(f"{behaviors_path}: line {row[LINE]}, column 5 (impressions): {row['item']!r} is not "
                       f"like 'N123-1'; fix or remove that row")
    clicks = (clicks.filter(pl.col("item").str.ends_with("-1"))
              .with_columns(item=pl.col("item").str.slice(0, pl.col("item").str.len_chars() - 2),
                            order=pl.col("ms") * 1000 + pl.col("pos")))
    inter = pl.concat([history.select("user", "item", "order", LINE),
                       clicks.select("user", "item", "order", LINE)])

    news = _tsv(news_path, NEWS_COLUMNS)
    news = unique_items(string_ids(news, ["item"], news_path), news_path)
    items = news.select("item", text=pl.col("text").fill_null(""))
    known_items(inter, items, behaviors_path, news_path)
    return RawData(inter.select("user", "item", "order"), items, keep_unused_items=False,
                   counts={"impressions": beh.height})


def _tsv(path: Path, columns: list[str]) -> pl.DataFrame:
    df = read_table(path, separator="\t", has_header=False, quote_char=None)
    if df.width != len(columns):
        raise PadError(f"{path}: expected {len(columns)} tab-separated columns, found {df.width}; "
                       f"is this the MIND {path.name}?")
    df.columns = columns
    return with_line(df, header_lines=0)
