"""Amazon Review Data 2018, one category as published (DESIGN §2).

Files in `data.path`, `<name>` = the category stem (e.g. Prime_Pantry):
- interactions, the first that exists of: `<name>.csv` (ratings, no header: item,user,rating,timestamp),
  `<name>.json.gz` / `<name>.json` (reviews, JSON lines with asin, reviewerID, overall, unixReviewTime);
- `meta_<name>.json.gz` / `meta_<name>.json` (JSON lines with asin, title).
Kept: rating >= `data.min_rating`; items with a meta row (the published files rate items the meta file
lacks: those rows are dropped and counted, as is a repeated meta row, which those files also have).
Exact duplicate (user, item, time) rows are kept once. Order = timestamp; an empty or NaN time or
rating is an error naming its line.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl

from pad.config import DataConfig
from pad.data.sources.common import (LINE, RawData, find_one, not_utf8_error, read_table, require_columns,
                                     to_number, with_line)
from pad.errors import PadError

RATING_COLUMNS = ["item", "user", "rating", "timestamp"]
REVIEW_FIELDS = {"reviewerID": "user", "asin": "item", "overall": "rating", "unixReviewTime": "timestamp"}


def read(cfg: DataConfig) -> RawData:
    folder = Path(cfg.path)
    meta_path = find_one(folder, [f"meta_{cfg.name or '*'}.json.gz", f"meta_{cfg.name or '*'}.json"],
                         "Amazon meta file (meta_<name>.json.gz)")
    name = meta_path.name.removeprefix("meta_").split(".json")[0]
    candidates = [folder / f"{name}{ext}" for ext in (".csv", ".json.gz", ".json")]
    inter_path = next((p for p in candidates if p.is_file()), None)
    if inter_path is None:
        raise PadError(f"{folder}: no ratings/reviews for {name!r} (looked for "
                       f"{', '.join(p.name for p in candidates)}); download one next to {meta_path.name}")

    if inter_path.suffix == ".csv":
        inter = read_table(inter_path, has_header=False)
        if inter.width != len(RATING_COLUMNS):
            raise PadError(f"{inter_path}: expected 4 columns item,user,rating,timestamp without a header, "
                           f"found {inter.width}; use the categoryFilesSmall ratings CSV")
        inter = with_line(inter.rename(dict(zip(inter.columns, RATING_COLUMNS))), header_lines=0)
    else:
        inter = _json_lines(inter_path, REVIEW_FIELDS)
    inter = to_number(to_number(inter, "rating", inter_path), "timestamp", inter_path)
    meta = _json_lines(meta_path, {"asin": "item", "title": "text"}, optional={"title"})

    n_meta = meta.height
    meta = meta.unique("item", keep="first", maintain_order=True).with_columns(pl.col("text").fill_null(""))
    kept = inter.filter(pl.col("rating") >= cfg.min_rating)
    known = kept.join(meta.select("item"), on="item", how="semi")
    deduped = known.unique(["user", "item", "timestamp"], keep="first", maintain_order=True)
    counts = {"raw_interactions": inter.height, "dropped_low_rating": inter.height - kept.height,
              "dropped_no_metadata": kept.height - known.height,
              "dropped_duplicate_interactions": known.height - deduped.height,
              "duplicate_meta_rows": n_meta - meta.height}
    return RawData(deduped.select("user", "item", order="timestamp"), meta.select("item", "text"),
                   keep_unused_items=False, counts=counts)


def _json_lines(path: Path, fields: dict[str, str], optional: set[str] = frozenset()) -> pl.DataFrame:
    """The named `fields` of a JSON-lines file (optionally gzipped), renamed; errors name the line."""
    rows = {new: [] for new in fields.values()}
    lines = []
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise PadError(f"{path}: line {lineno} is not JSON ({exc.msg}); the 2018 files are "
                                   f"JSON lines: re-download or fix that line") from None
                for old, new in fields.items():
                    if old not in record and old not in optional:
                        raise PadError(f"{path}: line {lineno} has no '{old}' field; is this the right file?")
                    value = record.get(old)
                    rows[new].append(value if value is None or isinstance(value, (int, float)) else str(value))
                lines.append(lineno)
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    except (OSError, EOFError) as exc:
        raise PadError(f"{path}: cannot be read ({exc}); re-download it") from None
    if not lines:
        raise PadError(f"{path}: file is empty; re-download it")
    df = pl.DataFrame({**rows, LINE: lines}, strict=False)
    require_columns(df, path, list(fields.values()))
    return df.with_columns(pl.col(c).cast(pl.String) for c in ("user", "item", "text") if c in df.columns)
