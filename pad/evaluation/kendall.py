"""Kendall's tau discrepancy between two item embedding tables (paper §4.3, DESIGN §7).

For (history item, target item) pairs the distance is measured under table A and under table B; tau-b
(scipy.stats.kendalltau) between the two distance lists says how much of A's geometry B kept: 1 = same
ranking of pairs, 0 = unrelated. Reported overall and per frequency bucket of the target item; the paper
uses it to show that the ID table forgets less with recommendation-anchored alignment.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import numpy as np
from scipy.stats import kendalltau

from pad.errors import PadError
from pad.io import load_torch

Metric = Literal["euclidean", "cosine"]
_CHUNK = 65_536


def history_target_pairs(sequences: Sequence[Sequence[int]], max_history: int | None = None) -> np.ndarray:
    """(P, 2) int64 pairs (history item, target): per user the target is the last (test) item and the
    history is every earlier item (the latest `max_history` if given), following the paper's "distances
    between history items and the target item". Padding (0) and the target itself are skipped."""
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    if lengths.sum() == 0:
        return np.zeros((0, 2), dtype=np.int64)
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences if len(s)])
    ends = np.cumsum(lengths)[lengths > 0]  # one past each user's last position
    owner_end = np.repeat(ends, lengths[lengths > 0])  # (T,) end of the user each position belongs to
    from_end = owner_end - 1 - np.arange(flat.size)  # 0 = the target, 1 = the item just before it
    target = flat[owner_end - 1]
    keep = (from_end >= 1) & (flat != 0) & (flat != target)
    if max_history is not None:
        keep &= from_end <= max_history
    return np.stack([flat[keep], target[keep]], axis=1)


def pair_distances(table: np.ndarray, pairs: np.ndarray, metric: Metric = "euclidean") -> np.ndarray:
    """(P,) float64 distance between the rows of each pair: Euclidean, or 1 - cosine (0-norm rows: 1)."""
    out = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), _CHUNK):
        a = table[pairs[start:start + _CHUNK, 0]].astype(np.float64)  # (chunk, d)
        b = table[pairs[start:start + _CHUNK, 1]].astype(np.float64)
        if metric == "euclidean":
            out[start:start + len(a)] = np.linalg.norm(a - b, axis=1)
        elif metric == "cosine":
            norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
            cos = np.divide((a * b).sum(1), norms, out=np.zeros(len(a)), where=norms > 0)
            out[start:start + len(a)] = 1.0 - cos
        else:
            raise ValueError(f"unknown metric {metric!r}: use euclidean or cosine")
    return out


def _tau(x: np.ndarray, y: np.ndarray) -> float | None:
    """tau-b, or None where it is undefined (fewer than 2 pairs, or a constant side)."""
    if len(x) < 2:
        return None
    tau = kendalltau(x, y).statistic
    return None if np.isnan(tau) else float(tau)


def _as_array(table) -> np.ndarray:
    if hasattr(table, "detach"):  # a torch tensor
        table = table.detach().cpu().float().numpy()
    return np.asarray(table)


def kendall_tau_by_bucket(table_a, table_b, pairs: np.ndarray, pair_bucket: np.ndarray, n_buckets: int,
                          max_pairs: int, seed: int, metric: Metric = "euclidean") -> dict:
    """Tau-b between the pair distances under A and under B, overall and per target bucket 1..n_buckets.

    Tables are (N+1, d) arrays or tensors (their widths may differ); pairs (P, 2) item indices;
    pair_bucket (P,) the target's bucket. If P > max_pairs, a seeded uniform subsample of max_pairs pairs
    is used for everything. Returns {"overall": tau, "buckets": {1: tau, ...}, "n_pairs": int}; a tau is
    None where undefined.
    """
    a, b = _as_array(table_a), _as_array(table_b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"tables must have the same items, got {a.shape[0]} and {b.shape[0]} rows")
    pairs, pair_bucket = np.asarray(pairs, dtype=np.int64).reshape(-1, 2), np.asarray(pair_bucket)
    if len(pairs) > max_pairs:
        keep = np.sort(np.random.default_rng(seed).choice(len(pairs), size=max_pairs, replace=False))
        pairs, pair_bucket = pairs[keep], pair_bucket[keep]
    da, db = pair_distances(a, pairs, metric), pair_distances(b, pairs, metric)
    buckets = {k: _tau(da[pair_bucket == k], db[pair_bucket == k]) for k in range(1, n_buckets + 1)}
    return {"overall": _tau(da, db), "buckets": buckets, "n_pairs": int(len(pairs))}


def tau_discrepancy(table_a, table_b, sequences: Sequence[Sequence[int]], item_bucket: np.ndarray,
                    n_buckets: int, max_pairs: int, seed: int, metric: Metric = "euclidean",
                    max_history: int | None = None) -> dict:
    """`kendall_tau_by_bucket` over the users' (history, test target) pairs; item_bucket: (N+1,) ints."""
    pairs = history_target_pairs(sequences, max_history)
    return kendall_tau_by_bucket(table_a, table_b, pairs, np.asarray(item_bucket)[pairs[:, 1]], n_buckets,
                                 max_pairs, seed, metric)


def _flatten(obj, prefix: str = "") -> dict:
    """Nested dicts of a checkpoint -> {"a.b.c": value}."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def load_table(path: str | Path, key: str | None = None, n_items: int | None = None) -> np.ndarray:
    """An (N+1, d) item table from an embeddings Parquet (`item_idx`, `embedding`; missing rows are zero)
    or a torch checkpoint: the 2-D tensor named `key` (full dotted name or a unique suffix), or, without
    a key, the checkpoint's only 2-D tensor (or only one with "emb" in its name)."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: no such file (give a .pt checkpoint or an embeddings .parquet)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        t = pq.read_table(path, columns=["item_idx", "embedding"])
        idx = t.column("item_idx").to_numpy()
        emb = np.stack(t.column("embedding").to_numpy(zero_copy_only=False)).astype(np.float32)
        if n_items is not None and int(idx.max()) > n_items:
            raise PadError(f"{path}: item_idx up to {int(idx.max())}, but the items file has {n_items} items")
        table = np.zeros((max(int(idx.max()), n_items or 0) + 1, emb.shape[1]), dtype=np.float32)
        table[idx] = emb
        return table
    import torch

    tensors = {k: v for k, v in _flatten(load_torch(path)).items()  # tensors and plain data only: never runs code
               if isinstance(v, torch.Tensor) and v.dim() == 2}
    if key is not None:
        found = [k for k in tensors if k == key] or [k for k in tensors if k.endswith("." + key)]
    else:
        found = list(tensors) if len(tensors) == 1 else [k for k in tensors if "emb" in k.lower()]
    if len(found) != 1:
        what = f"key {key!r} matches {len(found)}" if key else "no single embedding table among"
        raise PadError(f"{path}: {what} of its 2-D tensors {sorted(tensors)}; pick one with --key")
    table = _as_array(tensors[found[0]])
    if n_items is not None and table.shape[0] != n_items + 1:
        raise PadError(f"{path}: {found[0]} has {table.shape[0]} rows, expected {n_items + 1} (items + padding)")
    return table


def load_sequences_and_buckets(sequences: str | Path, items: str | Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Users' item lists from sequences.parquet and the (N+1,) bucket per item (0 for padding) from
    items.parquet (DESIGN §2 layouts)."""
    import polars as pl

    for path in (sequences, items):
        if not Path(path).is_file():
            raise PadError(f"{path}: no such file; run `dvc repro prepare` or pass --sequences/--items")
    seqs = [np.asarray(s, dtype=np.int64) for s in pl.read_parquet(sequences, columns=["items"])["items"].to_list()]
    item_df = pl.read_parquet(items, columns=["item_idx", "bucket"])
    item_bucket = np.zeros(int(item_df["item_idx"].max()) + 1, dtype=np.int64)
    item_bucket[item_df["item_idx"].to_numpy()] = item_df["bucket"].to_numpy()
    return seqs, item_bucket


def format_tau(result: dict) -> str:
    """Plain-text table of a `kendall_tau_by_bucket` result."""
    fmt = lambda t: "   n/a" if t is None else f"{t:6.3f}"  # noqa: E731
    lines = [f"overall  {fmt(result['overall'])}  ({result['n_pairs']} pairs)"]
    lines += [f"bucket {k:>2} {fmt(t)}" for k, t in result["buckets"].items()]
    return "\n".join(lines) + "\n"
