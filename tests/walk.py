"""The tiny learnable toy shared by the training and baseline tests: users walk through the items in steps of
2 from a random start, every item has its own random text vector (so text identifies the item), items fall
into `n_buckets` equal frequency buckets by index."""
from __future__ import annotations

import numpy as np
import torch

from pad.config import ModelConfig
from pad.losses.recommendation import negatives_per_position, shares_negatives
from pad.train.data import TrainData, ranking_splits
from pad.train.pretrain import Prepared


def walk_sequences(n_items: int, n_users: int) -> list[np.ndarray]:
    """Each user: 5-9 items start, start+2, start+4, ... (mod n_items), 1-based; seeded."""
    rng = np.random.default_rng(0)
    return [np.array([(s + 2 * i - 1) % n_items + 1 for i in range(int(rng.integers(5, 10)))])
            for s in rng.integers(1, n_items + 1, n_users)]


def walk_prepared(cfg: ModelConfig, n_items: int, n_users: int, n_buckets: int) -> Prepared:
    seqs = walk_sequences(n_items, n_users)
    buckets = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(n_items) // (n_items // n_buckets) + 1])
    train = TrainData(seqs, n_items, cfg.max_len, negatives_per_position(cfg.loss, cfg.negatives),
                      shared=shares_negatives(cfg.loss))
    return Prepared(n_items, buckets, n_buckets, train, ranking_splits(seqs, cfg.max_len))


def walk_text(n_items: int, dim: int) -> torch.Tensor:
    """(n_items + 1, dim) seeded random text vectors; row 0 (padding) zero."""
    t = torch.randn(n_items + 1, dim, generator=torch.Generator().manual_seed(5))
    t[0] = 0
    return t
