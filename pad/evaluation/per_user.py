"""Per-user scores of the evaluate stage (metrics/per_user.parquet; a DVC out, not a metric): what the
paired tests of `pad report` (pad.evaluation.significance) compare user by user.

One row per (split, model, user), in the order split (valid, test), model (as evaluated), user (as in
sequences.parquet), primary protocol (history excluded, DESIGN §7):
  split str, model str (sasrec | align | pad, the keys of evaluate.json), user_idx int32, target int32,
  rank float64 (1..N; inf = no rank: a repeat target, excluded with the history, or a non-finite score:
  pad.evaluation.ranking), hr_{k} / ndcg_{k} float64 (0/1 and 1/log2(rank+1) or 0, not in %),
  bucket int8 (the target's frequency bucket), item_group str (warm | median | cold), history_len int32
  (training-history length), user_group str (short | medium | long: pad.evaluation.users), repeat bool.
Schema metadata `pad`: JSON with k, n_buckets and the user groups' length ranges (`describe_groups`).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from torch import Tensor

from pad.data.buckets import bucket_groups
from pad.errors import PadError
from pad.evaluation.ranking import RankingSplit, hit_ndcg
from pad.evaluation.users import HistoryGroups, describe_groups
from pad.io import write_parquet

METADATA_KEY = b"pad"


def item_group_names(n_buckets: int) -> np.ndarray:
    """(B+1,) group name per bucket 0..B (bucket 0, padding, is never a target: '')."""
    names = np.full(n_buckets + 1, "", dtype=object)
    for group, members in bucket_groups(n_buckets).items():
        names[list(members)] = group
    return names


def read_user_idx(sequences: str | Path, n_users: int) -> np.ndarray:
    """(U,) user_idx of sequences.parquet in file order: the order `load_sequences_and_buckets` reads the
    users in, so row u of the ranking splits is user_idx[u]."""
    user_idx = pl.read_parquet(sequences, columns=["user_idx"])["user_idx"].to_numpy()
    if len(user_idx) != n_users:
        raise PadError(f"{sequences}: {len(user_idx)} user_idx values for {n_users} sequences")
    return user_idx


def row_schema(k: int) -> dict[str, Any]:
    """The columns of `user_rows` and their types (module docstring)."""
    return {"split": pl.String, "model": pl.String, "user_idx": pl.Int32, "target": pl.Int32, "rank": pl.Float64,
            f"hr_{k}": pl.Float64, f"ndcg_{k}": pl.Float64, "bucket": pl.Int8, "item_group": pl.String,
            "history_len": pl.Int32, "user_group": pl.String, "repeat": pl.Boolean}


def user_rows(split_name: str, model: str, user_idx: np.ndarray, split: RankingSplit, masked: Tensor,
              item_buckets: Tensor, k: int, n_buckets: int, groups: HistoryGroups) -> pl.DataFrame:
    """One model's per-user rows of one split from its (U,) history-excluded ranks (`rank_split`)."""
    hit, ndcg = hit_ndcg(masked, k)
    buckets = item_buckets[split.targets].numpy()
    n = len(user_idx)
    return pl.DataFrame({
        "split": [split_name] * n, "model": [model] * n, "user_idx": user_idx, "target": split.targets.numpy(),
        "rank": masked.double().numpy(), f"hr_{k}": hit.double().numpy(), f"ndcg_{k}": ndcg.double().numpy(),
        "bucket": buckets, "item_group": item_group_names(n_buckets)[buckets], "history_len": groups.lengths,
        "user_group": groups.names(), "repeat": (split.history == split.targets[:, None]).any(1).numpy(),
    }, schema=row_schema(k))


def write_per_user(rows: list[pl.DataFrame], path: str | Path, k: int, n_buckets: int,
                   groups: HistoryGroups | None) -> None:
    """The rows as one Parquet, atomically, with k, B and the user groups in its metadata (no rows and no
    groups: an empty table of the same columns, e.g. the baselines stage with no methods)."""
    table = (pl.concat(rows) if rows else pl.DataFrame(schema=row_schema(k))).to_arrow()
    meta = {"k": k, "n_buckets": n_buckets, "user_groups": describe_groups(groups) if groups is not None else {}}
    write_parquet(table.replace_schema_metadata({METADATA_KEY: json.dumps(meta, sort_keys=True)}), path)


def read_per_user(path: str | Path) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The per-user table and its metadata; a PadError naming the file if it is missing or not one."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: no per-user scores; run the evaluate stage (`dvc repro evaluate`)")
    return parse_per_user(path.read_bytes(), str(path))


def parse_per_user(data: bytes, source: str) -> tuple[pl.DataFrame, dict[str, Any]]:
    """`read_per_user` of a file's bytes (e.g. one run's file read from the DVC cache); `source` names it in errors."""
    try:
        meta = pq.read_schema(io.BytesIO(data)).metadata or {}
        df = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one user-facing line
        raise PadError(f"{source}: unreadable per-user scores ({type(exc).__name__}); rerun `dvc repro evaluate`") from None
    if METADATA_KEY not in meta:
        raise PadError(f"{source}: not a per-user scores file (no `pad` metadata); rerun `dvc repro evaluate`")
    info = json.loads(meta[METADATA_KEY])
    need = {"split", "model", "user_idx", f"ndcg_{info['k']}", "item_group", "user_group"}
    missing = sorted(need - set(df.columns))
    if missing:
        raise PadError(f"{source}: missing columns {', '.join(missing)}; rerun `dvc repro evaluate`")
    return df, info


def pool_seeds(frames: list[pl.DataFrame], k: int) -> pl.DataFrame:
    """The per-user tables of one configuration run over several seeds -> one table of the same layout whose
    hr_{k} / ndcg_{k} are each user's mean over the seeds (`rank` and `target` dropped: they are per run).
    The user stays the unit of the paired tests (pad.evaluation.significance); averaging over seeds takes
    the training noise out of each user's score instead of counting a user once per seed. Every frame must
    hold the same (split, model, user_idx) rows: the split and the user groups do not depend on the seed."""
    if not frames:
        raise PadError("per-user scores: no runs to pool")
    keys = ["split", "model", "user_idx"]
    first = frames[0].select(keys).sort(keys)
    for i, frame in enumerate(frames[1:], start=2):
        if not frame.select(keys).sort(keys).equals(first):
            raise PadError(f"per-user scores: run {i} of the seed group has other (split, model, user) rows than "
                           "run 1; pool only runs of the same data (`data.*`) and models")
    fixed = ["split", "model", "user_idx", "bucket", "item_group", "history_len", "user_group", "repeat"]
    pooled = (pl.concat([f.select(*fixed, f"hr_{k}", f"ndcg_{k}") for f in frames])
              .group_by(fixed, maintain_order=True)
              .agg(pl.col(f"hr_{k}").mean(), pl.col(f"ndcg_{k}").mean(), pl.len().alias("seeds")))
    if len(pooled) != len(first):
        raise PadError("per-user scores: the runs of the seed group disagree on a user's target bucket or group; "
                       "pool only runs of the same data (`data.*`)")
    return pooled
