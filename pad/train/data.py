"""Training and evaluation tensors from the prepared sequences (DESIGN §2 split, left padding).

Split per user sequence `seq` (item ids 1..N, time order): test target seq[-1] with history
seq[:-1]; valid target seq[-2] with history seq[:-2]; training part seq[:-2], where every item
predicts the next one. Models see the last `max_len` items, left-padded with 0.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import polars as pl
import torch
from torch import Tensor

from pad.data.buckets import read_n_buckets
from pad.errors import PadError
from pad.evaluation.ranking import RankingSplit


@dataclass
class Batch:
    """One batch of users: inputs/targets (B, L) left-padded (target 0 = no loss), negatives (B, L, K) per
    position, or (K,) shared by the batch (`shared_ce`)."""

    inputs: Tensor
    targets: Tensor
    negatives: Tensor | None
    users: Tensor
    n_items: int = 0  # the catalogue size N the negatives were drawn from (shared_ce's correction)

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(**{f.name: _to(getattr(self, f.name), device) for f in fields(self)})


def _to(t: object, device: torch.device | str) -> object:
    return t.to(device) if isinstance(t, Tensor) else t


def left_pad(rows: Sequence[np.ndarray], length: int) -> Tensor:
    """The last `length` items of each row, left-padded with 0 -> (U, length) long."""
    out = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        row = row[-length:] if length else row[:0]
        out[i, length - len(row):] = row
    return torch.from_numpy(out)


def sample_negatives(user_items: Tensor, shape: tuple[int, int], n_items: int, generator: torch.Generator) -> Tensor:
    """Uniform item ids in 1..N, none of them padding or in the user's row of `user_items`.

    user_items (B, T) long, 0-padded (each user's training items) -> (B, *shape) long.
    Rejection sampling: draws that hit a user's item are redrawn until none does.
    """
    b = user_items.shape[0]
    neg = torch.randint(1, n_items + 1, (b, *shape), generator=generator)  # (B, L, K)
    items = user_items[:, None, None, :]  # (B, 1, 1, T)
    bad = (neg.unsqueeze(-1) == items).any(-1)  # (B, L, K)
    while bad.any():
        neg[bad] = torch.randint(1, n_items + 1, (int(bad.sum()),), generator=generator)
        bad = (neg.unsqueeze(-1) == items).any(-1)
    return neg


def sample_shared(k: int, n_items: int, generator: torch.Generator) -> Tensor:
    """`k` distinct uniform item ids in 1..N (all N when k >= N), one draw for a whole batch -> (k,) long."""
    if k >= n_items:
        return torch.arange(1, n_items + 1)
    return torch.randperm(n_items, generator=generator)[:k] + 1


class TrainData:
    """Per-user training windows; `batches(epoch, ...)` shuffles users and draws fresh negatives."""

    def __init__(self, sequences: Sequence[np.ndarray], n_items: int, max_len: int, negatives: int,
                 shared: bool = False) -> None:
        train = [np.asarray(s[:-2], dtype=np.int64) for s in sequences]
        users = [u for u, t in enumerate(train) if len(t) >= 2]
        if not users:
            raise PadError("no user has a training part of 2+ items (sequences need 4+ items)")
        self.n_items = n_items
        self.negatives = negatives
        self.shared = shared  # one draw of `negatives` items per batch instead of per position
        self.users = torch.tensor(users, dtype=torch.long)
        self.inputs = left_pad([train[u][:-1] for u in users], max_len)  # (U, L)
        self.targets = left_pad([train[u][1:] for u in users], max_len)  # (U, L)
        self.train_items = left_pad([train[u] for u in users], max(len(train[u]) for u in users))  # (U, T)
        if negatives and max(len(np.unique(train[u])) for u in users) >= n_items:
            raise PadError("a user's training items cover the whole catalogue: no negative can be sampled")
        self.n_positions = int((self.targets != 0).sum())

    def batches(self, epoch: int, batch_size: int, seed: int, rank: int = 0, world: int = 1) -> Iterator[Batch]:
        """Shuffled batches of `batch_size` users (split over `world` ranks), seeded by (seed, epoch)."""
        perm = torch.randperm(len(self.users), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        gen = torch.Generator().manual_seed((seed * 100_003 + epoch) * 1_009 + rank + 1)
        for start in range(0, len(perm), batch_size):
            chunk = perm[start:start + batch_size]
            if len(chunk) < world:
                continue  # every rank must get a slice: drop a tail smaller than the world
            idx = chunk.tensor_split(world)[rank]
            targets = self.targets[idx]
            negatives = None
            if self.negatives and self.shared:
                negatives = sample_shared(self.negatives, self.n_items, gen)
            elif self.negatives:
                negatives = sample_negatives(self.train_items[idx], (targets.shape[1], self.negatives), self.n_items, gen)
            yield Batch(self.inputs[idx], targets, negatives, self.users[idx], self.n_items)

    def n_batches(self, batch_size: int, world: int = 1) -> int:
        n = len(self.users)
        return n // batch_size + int(n % batch_size >= world)


def ranking_splits(sequences: Sequence[np.ndarray], max_len: int) -> dict[str, RankingSplit]:
    """Leave-one-out `valid` (target seq[-2]) and `test` (target seq[-1]) splits for full ranking."""
    out = {}
    for name, cut in (("valid", 2), ("test", 1)):
        hist = [np.asarray(s[:-cut], dtype=np.int64) for s in sequences]
        targets = torch.tensor([int(s[-cut]) for s in sequences], dtype=torch.long)
        out[name] = RankingSplit(left_pad(hist, max_len), targets, left_pad(hist, max(map(len, hist))))
    return out


def read_sequences(path: str | Path) -> list[np.ndarray]:
    """`sequences.parquet` -> one int64 array of item ids per user, ordered by user_idx."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: not found; run the prepare stage first (`dvc repro prepare`)")
    df = pl.read_parquet(path, columns=["user_idx", "items"]).sort("user_idx")
    if df.height == 0:
        raise PadError(f"{path}: no users; rerun the prepare stage (`dvc repro prepare`)")
    short = df.filter(pl.col("items").list.len() < 3)
    if len(short):
        raise PadError(f"{path}: user_idx {short['user_idx'][0]} has fewer than 3 items (need train, valid, test)")
    return [np.asarray(s, dtype=np.int64) for s in df["items"].to_list()]


def read_item_buckets(path: str | Path) -> tuple[Tensor, int]:
    """`items.parquet` -> (N+1,) long frequency bucket per item id (index 0 = padding, bucket 0) and the
    number of buckets B from the file's metadata (the coldest buckets may hold no item)."""
    path = Path(path)
    n_buckets = read_n_buckets(path)
    df = pl.read_parquet(path, columns=["item_idx", "bucket"]).sort("item_idx")
    if df["item_idx"].to_list() != list(range(1, len(df) + 1)):
        raise PadError(f"{path}: item_idx must be exactly 1..N")
    buckets = torch.tensor(df["bucket"].to_numpy(), dtype=torch.long)  # (N,)
    if len(buckets) and not (1 <= int(buckets.min()) and int(buckets.max()) <= n_buckets):
        raise PadError(f"{path}: buckets must lie in 1..{n_buckets} (its n_buckets), found "
                       f"{int(buckets.min())}..{int(buckets.max())}; rerun `dvc repro prepare`")
    return torch.cat([torch.zeros(1, dtype=torch.long), buckets]), n_buckets
