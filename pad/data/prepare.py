"""The `prepare` stage's logic (DESIGN §2): raw source -> sequences, items with buckets, metrics.

Rules, in order: interactions sorted by time per user (ties keep file order); users with fewer than
`min_interactions` dropped; with `sample_users`, a seeded sample of that many of the remaining users (in
their order) is kept; each user keeps the latest `max_items`; items numbered 1..N in the items
file's order (0 = padding; items nobody interacts with are dropped unless the source's items file is
the catalogue itself: pad_csv, synthetic); users numbered 0..U-1 by their first interaction.
Split (leave-one-out): test target = seq[-1], valid target = seq[-2], training part = seq[:-2];
train_freq counts the training parts; buckets per `pad.data.buckets`. The number of buckets B is
stored in items.parquet's schema metadata (`n_buckets`): the coldest buckets may be empty, so readers
take B from there (`pad.data.buckets.read_n_buckets`), never from the largest bucket present.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pad.config import PARAMS_FILE, DataConfig
from pad.data.buckets import GROUPS, assign_buckets, group_of_bucket, with_n_buckets
from pad.data.sources import read_source
from pad.data.sources.common import RawData
from pad.data.text import clean_text
from pad.errors import PadError
from pad.io import atomic_path, json_text

ITEMS_SCHEMA = pa.schema([("item_idx", pa.int32()), ("item_id", pa.string()), ("text", pa.string()),
                          ("train_freq", pa.int32()), ("bucket", pa.int8())])
SEQUENCES_SCHEMA = pa.schema([("user_idx", pa.int32()), ("user_id", pa.string()),
                              ("items", pa.list_(pa.int32()))])


@dataclass(frozen=True)
class Prepared:
    items: pa.Table  # ITEMS_SCHEMA + metadata n_buckets, row i = item_idx i + 1
    sequences: pa.Table  # SEQUENCES_SCHEMA, time order
    metrics: dict[str, Any]


def prepare(cfg: DataConfig) -> Prepared:
    """Read `cfg.source` and apply the common preprocessing (`cfg`'s ranges are checked by pad.config)."""
    return preprocess(read_source(cfg), cfg)


def preprocess(raw: RawData, cfg: DataConfig) -> Prepared:
    seqs = (raw.interactions.select("user", "item", "order")
            .sort("order", maintain_order=True)
            .group_by("user", maintain_order=True).agg(pl.col("item")))
    total_users = seqs.height
    seqs = seqs.filter(pl.col("item").list.len() >= cfg.min_interactions)
    if seqs.height == 0:
        fix = ("raise 'data.synthetic.min_len' or 'data.synthetic.users'" if cfg.source == "synthetic"
               else "check the data or lower 'data.min_interactions'")
        raise PadError(f"{PARAMS_FILE}: no user is left: none of the {total_users} users read has >= "
                       f"{cfg.min_interactions} interactions ('data.min_interactions'); {fix}")
    kept_users = seqs.height
    if 0 < cfg.sample_users < seqs.height:  # a seeded sample of the users, kept in their order
        keep = np.sort(np.random.default_rng(cfg.sample_seed).choice(seqs.height, cfg.sample_users, replace=False))
        seqs = seqs[keep]
    before_cut = int(seqs["item"].list.len().sum())
    seqs = seqs.with_columns(pl.col("item").list.tail(cfg.max_items))

    used = seqs.select(pl.col("item").explode().unique())["item"]
    catalogue = raw.items if raw.keep_unused_items else raw.items.filter(pl.col("item").is_in(used.implode()))
    item_ids = catalogue["item"]
    n_items = len(item_ids)
    if cfg.n_buckets > n_items:
        raise PadError(f"{PARAMS_FILE}: 'data.n_buckets' is {cfg.n_buckets}; must be <= the number of items "
                       f"after preparation ({n_items})")
    lengths = seqs["item"].list.len().to_numpy().astype(np.int64)
    flat = seqs["item"].explode().replace_strict(item_ids, pl.int_range(1, n_items + 1, eager=True),
                                                return_dtype=pl.Int32).to_numpy()
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    sequences = pa.table({
        "user_idx": pa.array(np.arange(seqs.height), pa.int32()),
        "user_id": pa.array(seqs["user"].to_list(), pa.string()),
        "items": pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), pa.array(flat, pa.int32())),
    }, schema=SEQUENCES_SCHEMA)

    in_train = np.arange(len(flat)) < np.repeat(offsets[1:] - 2, lengths)  # positions of seq[:-2]
    freq = np.bincount(flat[in_train], minlength=n_items + 1)[1:]  # (N,) padding dropped
    bucket, cuts = assign_buckets(freq, cfg.n_buckets)
    texts = [clean_text(t) for t in catalogue["text"].to_list()]
    items = pa.table({
        "item_idx": pa.array(np.arange(1, n_items + 1), pa.int32()),
        "item_id": pa.array(item_ids.to_list(), pa.string()),
        "text": pa.array(texts, pa.string()),
        "train_freq": pa.array(freq, pa.int32()),
        "bucket": pa.array(bucket, pa.int8()),
    }, schema=ITEMS_SCHEMA)
    items = with_n_buckets(items, cfg.n_buckets)

    metrics = _metrics(cfg, raw, flat, offsets, freq, bucket, cuts, texts)
    metrics.update(dropped_short_users=total_users - kept_users, sampled_out_users=kept_users - seqs.height,
                   truncated_interactions=before_cut - len(flat),
                   unused_items=int(n_items - len(used)))
    return Prepared(items, sequences, metrics)


def _metrics(cfg: DataConfig, raw: RawData, flat: np.ndarray, offsets: np.ndarray, freq: np.ndarray,
             bucket: np.ndarray, cuts: list[int], texts: list[str]) -> dict[str, Any]:
    seqs = [flat[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    lengths = np.diff(offsets)
    sizes = np.bincount(bucket, minlength=cfg.n_buckets + 1)[1:]
    mass = np.bincount(bucket, weights=freq, minlength=cfg.n_buckets + 1)[1:]
    groups = {g: 0 for g in GROUPS}
    for b, size in enumerate(sizes, start=1):
        groups[group_of_bucket(b, cfg.n_buckets)] += int(size)
    return {
        "source": cfg.source,
        "users": len(seqs),
        "items": len(freq),
        "interactions": len(flat),
        "train_interactions": int(freq.sum()),
        "seq_len": {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 4),
                    "median": float(np.median(lengths)), "max": int(lengths.max())},
        "repeat_targets": {"valid": sum(int(s[-2] in s[:-2]) for s in seqs),
                           "test": sum(int(s[-1] in s[:-1]) for s in seqs)},
        "empty_texts": sum(1 for t in texts if not t),
        "zero_freq_items": int((freq == 0).sum()),
        "bucket_cuts": cuts,
        "bucket_sizes": sizes.tolist(),
        "bucket_train_mass": mass.astype(int).tolist(),
        "group_sizes": groups,
        **{k: int(v) for k, v in raw.counts.items()},
    }


def write_prepared(prepared: Prepared, items_path: str | Path, sequences_path: str | Path,
                   metrics_path: str | Path) -> None:
    """Write the three outputs; all are replaced together only once all three are written."""
    metrics = json_text(prepared.metrics, metrics_path)
    with atomic_path(items_path) as items_tmp, atomic_path(sequences_path) as seq_tmp, \
            atomic_path(metrics_path) as metrics_tmp:
        pq.write_table(prepared.items, items_tmp)
        pq.write_table(prepared.sequences, seq_tmp)
        metrics_tmp.write_text(metrics)
