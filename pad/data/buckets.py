"""Item-frequency buckets of equal training-interaction mass (DESIGN §2) and the report groups.

Tie rule (deterministic): items are ranked by training frequency, descending, then by item_idx,
ascending (rank 1 = warmest). With total training mass M and B buckets, cut k (k = 1..B-1) is the
smallest rank r whose cumulative mass reaches k/B of M (integer test: B * cum(r) >= k * M);
bucket k holds ranks cut[k-1]+1 .. cut[k] (cut[0] = 0, cut[B] = N). Items never seen in training
therefore land in bucket B (the coldest). A single item heavier than M/B leaves a bucket empty.
"""
from __future__ import annotations

import numpy as np

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


def group_of_bucket(bucket: int, n_buckets: int = 10) -> str:
    """'warm' / 'median' / 'cold' for buckets 1-3 / 4-7 / 8-10 (the same 30/40/30 split for other B)."""
    if not 1 <= bucket <= n_buckets:
        raise ValueError(f"bucket {bucket} is outside 1..{n_buckets}")
    if bucket <= round(0.3 * n_buckets):
        return "warm"
    if bucket <= round(0.7 * n_buckets):
        return "median"
    return "cold"
