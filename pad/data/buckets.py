"""Item-frequency buckets of equal training-interaction mass (DESIGN §2) and the report groups.

Tie rule (deterministic): items are ranked by training frequency, descending, then by item_idx,
ascending (rank 1 = warmest). With total training mass M and B buckets, cut k (k = 1..B-1) is the
smallest rank r whose cumulative mass reaches k/B of M (integer test: B * cum(r) >= k * M);
bucket k holds ranks cut[k-1]+1 .. cut[k] (cut[0] = 0, cut[B] = N). Items never seen in training
therefore land in bucket B (the coldest). A single item heavier than M/B leaves a bucket empty, so B
is stored with the data (items.parquet's schema metadata: `write_items` / `read_n_buckets` below), never taken from the
largest bucket seen.

Report groups (DESIGN §2: warm = 1-3, median = 4-7, cold = 8-10 for B = 10): the warmest and the
coldest E = round(0.3 B) buckets (halves rounded up) are warm and cold, the rest median. Since 2E <= B,
this partitions 1..B for every B >= 1 (B = 1: all median; B = 2: no median bucket).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pad.errors import PadError
from pad.io import atomic_path

N_BUCKETS_KEY = "n_buckets"  # items.parquet schema metadata: the data's B (stored, never inferred from max())

GROUPS = ("warm", "median", "cold")


def rank_items(freq: np.ndarray) -> np.ndarray:
    """Item positions (0-based into `freq`) from warmest to coldest: freq desc, then index asc."""
    return np.lexsort((np.arange(len(freq)), -freq))


def bucket_cuts(freq: np.ndarray, n_buckets: int) -> list[int]:
    """The B-1 cut ranks (1-based, inclusive end of buckets 1..B-1) of the ranked `freq`."""
    ranked = freq[rank_items(freq)].astype(np.int64)
    cum = np.cumsum(ranked)
    total = int(cum[-1]) if len(cum) else 0
    if total == 0:
        return [0] * (n_buckets - 1)  # no training mass: every item is in the coldest bucket
    return [int(np.searchsorted(cum * n_buckets, k * total, side="left")) + 1 for k in range(1, n_buckets)]


def assign_buckets(freq: np.ndarray, n_buckets: int) -> tuple[np.ndarray, list[int]]:
    """Bucket (1..B, int8) of every item of `freq` (one entry per item, padding excluded), and the cuts."""
    cuts = bucket_cuts(freq, n_buckets)
    rank = np.empty(len(freq), dtype=np.int64)
    rank[rank_items(freq)] = np.arange(1, len(freq) + 1)
    bucket = np.searchsorted(np.asarray(cuts, dtype=np.int64), rank, side="left") + 1
    return bucket.astype(np.int8), cuts


def bucket_groups(n_buckets: int) -> dict[str, range]:
    """{warm, median, cold: their buckets}: 1-3 / 4-7 / 8-10 for B = 10 (module docstring for any B)."""
    edge = (3 * n_buckets + 5) // 10  # round(0.3 B), halves up, in integers
    return {"warm": range(1, edge + 1), "median": range(edge + 1, n_buckets - edge + 1),
            "cold": range(n_buckets - edge + 1, n_buckets + 1)}


def group_of_bucket(bucket: int, n_buckets: int) -> str:
    """'warm' / 'median' / 'cold': the group of `bucket_groups(n_buckets)` holding `bucket`."""
    for group, members in bucket_groups(n_buckets).items():
        if bucket in members:
            return group
    raise ValueError(f"bucket {bucket} is outside 1..{n_buckets}")


def with_n_buckets(items: pa.Table, n_buckets: int) -> pa.Table:
    """`items` with B in its schema metadata (other metadata kept)."""
    return items.replace_schema_metadata({**(items.schema.metadata or {}), N_BUCKETS_KEY: str(n_buckets)})


def write_items(items: pa.Table | pl.DataFrame, path: str | Path, n_buckets: int) -> None:
    """Write an items table (item_idx, bucket, ...) with B in its metadata, atomically: for items files
    made outside `prepare` (tests, hand-made data)."""
    items = items.to_arrow() if isinstance(items, pl.DataFrame) else items
    with atomic_path(path) as tmp:
        pq.write_table(with_n_buckets(items, n_buckets), tmp)


def read_n_buckets(path: str | Path) -> int:
    """B of an items.parquet (its schema metadata); a PadError if the file predates it or B is not >= 1."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: not found; run the prepare stage first (`dvc repro prepare`)")
    raw = (pq.read_schema(path).metadata or {}).get(N_BUCKETS_KEY.encode())
    if raw is None:
        raise PadError(f"{path}: no '{N_BUCKETS_KEY}' in its metadata (written by an older prepare); "
                       "rerun the prepare stage (`dvc repro prepare`)")
    if not raw.decode().isdigit() or int(raw) < 1:
        raise PadError(f"{path}: metadata '{N_BUCKETS_KEY}' is {raw.decode()!r}, expected an integer >= 1")
    return int(raw)
