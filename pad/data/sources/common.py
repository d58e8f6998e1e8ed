"""What every reader returns, and the checked file access they share.

Every problem with a raw file becomes one `PadError` naming the file, the row (1-based line of the
file, header included) or column, and what to do about it.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import polars as pl

from pad.errors import PadError

# The internal column holding each row's 1-based line in its file (for error messages); named so that it
# cannot clash with a column of the user's file and is never listed among the file's columns.
LINE = "__line__"


@dataclass(frozen=True)
class RawData:
    """A source's output, before the common preprocessing.

    interactions: `user` str, `item` str, `order` (any sortable number: timestamp or position);
        ties in `order` keep file order.
    items: `item` str (unique), `text` str (raw, may be empty), in catalogue order (item_idx follows it).
    keep_unused_items: True when the items file *is* the data set's catalogue (pad_csv, synthetic):
        items nobody interacts with stay (as zero-frequency items); False drops them.
    counts: source-specific counters for metrics/prepare.json (dropped rows and the like).
    """

    interactions: pl.DataFrame
    items: pl.DataFrame
    keep_unused_items: bool
    counts: dict[str, int] = field(default_factory=dict)


def find_one(folder: Path, patterns: Iterable[str], what: str) -> Path:
    """The single file in `folder` matching any glob in `patterns` (error if none or several)."""
    if not folder.is_dir():
        raise PadError(f"{folder}: data folder not found (set data.path to the folder with the {what})")
    matches = sorted({p for pat in patterns for p in folder.glob(pat) if p.is_file()})
    if not matches:
        raise PadError(f"{folder}: no {what} found (looked for {', '.join(patterns)}); check data.path/data.name")
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        stems = {p.name.split(".")[0] for p in matches}
        if len(stems) == 1:  # the same file as CSV and Parquet: data.name cannot choose between them
            raise PadError(f"{folder}: several {what} found ({names}), the same name in different formats; "
                           f"move or delete all but the one to use")
        raise PadError(f"{folder}: several {what} found ({names}); set data.name to pick one")
    return matches[0]


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise PadError(f"{path}: {what} not found; check data.path and data.name")
    return path


def first_bad_utf8_line(path: Path) -> tuple[int, int] | None:
    """(line, byte column), both 1-based, of the first byte sequence that is not UTF-8."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return lineno, exc.start + 1
    return None


def not_utf8_error(path: Path) -> PadError:
    where = first_bad_utf8_line(path)
    at = f" at line {where[0]}, byte {where[1]}" if where else ""
    return PadError(f"{path}: not UTF-8 text{at}; re-encode the file as UTF-8 (e.g. iconv -t UTF-8)")


def read_table(path: Path, *, separator: str = ",", has_header: bool = True,
               columns: list[str] | None = None, quote_char: str | None = '"') -> pl.DataFrame:
    """A CSV/TSV (all columns as strings) or a Parquet file, with readable errors."""
    require_file(path, "file")
    try:
        if path.suffix == ".parquet":
            return pl.read_parquet(path)
        return pl.read_csv(path, separator=separator, has_header=has_header, new_columns=columns,
                           infer_schema=False, quote_char=quote_char, encoding="utf8")
    except pl.exceptions.NoDataError:
        raise PadError(f"{path}: file is empty; it needs its rows (and header, if the format has one)") from None
    except pl.exceptions.ComputeError as exc:
        if "utf-8" in str(exc).lower() or "utf8" in str(exc).lower():
            raise not_utf8_error(path) from None
        raise PadError(f"{path}: cannot be read as a table: {str(exc).splitlines()[0]}") from None
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise PadError(f"{path}: cannot be read: {str(exc).splitlines()[0]}") from None


def require_columns(df: pl.DataFrame, path: Path, needed: Iterable[str]) -> None:
    missing = [c for c in needed if c not in df.columns]
    if missing:
        found = ", ".join(repr(c) for c in df.columns if c != LINE) or "none"
        raise PadError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)} "
                       f"(found {found}); fix the header or the data.* params")
    if df.height == 0:
        raise PadError(f"{path}: has a header but no rows")


def with_line(df: pl.DataFrame, header_lines: int = 1) -> pl.DataFrame:
    """Add `LINE`: the 1-based line of each row in its text file (for error messages)."""
    return df.with_row_index(LINE, offset=header_lines + 1)


def line_of(row: dict) -> str:
    return str(row.get(LINE, "?"))


def to_number(df: pl.DataFrame, column: str, path: Path, dtype: pl.DataType = pl.Float64) -> pl.DataFrame:
    """Cast `column` to a finite number; an empty, non-numeric, NaN or infinite value is an error naming its line.

    (A NaN timestamp would sort last and become a test target; a NaN rating passes any `>=` filter.)
    """
    cast = pl.col(column).cast(dtype, strict=False)
    bad = df.filter(~cast.is_finite().fill_null(False))
    if bad.height:
        row = bad.row(0, named=True)
        value = row[column]
        what = "is empty" if value is None or str(value).strip() == "" else f"{value!r} is not a finite number"
        raise PadError(f"{path}: line {line_of(row)}, column '{column}': {what}; fix or remove that row")
    return df.with_columns(cast)


def drop_duplicate_rows(df: pl.DataFrame, columns: list[str]) -> tuple[pl.DataFrame, int]:
    """Keep the first of rows equal in all `columns` (exact repeats of an interaction); (rows kept, rows dropped)."""
    kept = df.unique(columns, keep="first", maintain_order=True)
    return kept, df.height - kept.height


def optional_rating_filter(inter: pl.DataFrame, path: Path, min_rating: float) -> tuple[pl.DataFrame, dict[str, int]]:
    """Keep rows rated >= `min_rating` when the file has a `rating` column; count what was dropped."""
    if "rating" not in inter.columns:
        return inter, {}
    inter = to_number(inter, "rating", path)
    kept = inter.filter(pl.col("rating") >= min_rating)
    return kept, {"dropped_low_rating": inter.height - kept.height}


def unique_items(items: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Reject an items file that lists an item id twice (rows named)."""
    dup = items.filter(pl.col("item").is_duplicated())
    if dup.height:
        first = dup["item"][0]
        lines = dup.filter(pl.col("item") == first)[LINE].to_list() if LINE in dup.columns else []
        at = f" (lines {', '.join(map(str, lines))})" if lines else ""
        raise PadError(f"{path}: item id {first!r} appears {len(lines) or 'several'} times{at}; "
                       f"keep one row per item")
    return items


def known_items(inter: pl.DataFrame, items: pl.DataFrame, path: Path, items_path: Path) -> None:
    """Every interacted item must have a row in the items file (else: error naming the row)."""
    unknown = inter.join(items.select("item"), on="item", how="anti")
    if unknown.height:
        row = unknown.row(0, named=True)
        at = f"line {row[LINE]}, " if LINE in row else ""
        raise PadError(f"{path}: {at}user {row['user']!r} has item {row['item']!r} that is not in "
                       f"{items_path.name} ({unknown.height} such interactions); add the item with its "
                       f"text or remove those interactions")


def string_ids(df: pl.DataFrame, columns: Iterable[str], path: Path) -> pl.DataFrame:
    """Ids as strings; a missing id is an error naming its line."""
    df = df.with_columns(pl.col(c).cast(pl.String) for c in columns)
    for c in columns:
        if df[c].null_count():
            row = df.filter(pl.col(c).is_null()).row(0, named=True)
            raise PadError(f"{path}: line {line_of(row)}: column '{c}' is empty; every row needs one")
    return df
