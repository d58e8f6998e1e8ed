"""A tiny learnable toy for the baselines: users walk through the items in steps of 2, every item has its own
random text vector (so text identifies the item), 5 frequency buckets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pad.config import BaselinesConfig, EvaluateConfig, ModelConfig
from pad.losses.recommendation import negatives_per_position
from pad.train.data import TrainData, ranking_splits
from pad.train.pretrain import Prepared

N_ITEMS, N_USERS, TEXT_DIM, N_BUCKETS, DIM = 50, 120, 32, 5, 16
EV = EvaluateConfig(k=10, user_chunk=64, tau_max_pairs=1000, seed=0, valid_users=0)


def model_cfg(backbone: str = "sasrec", loss: str = "ce") -> ModelConfig:
    return ModelConfig(backbone=backbone, dim=DIM, blocks=1, heads=2, dropout=0.1, max_len=6, loss=loss, negatives=2)


def base_cfg(methods=(), epochs: int = 6, **kw) -> BaselinesConfig:
    values = dict(epochs=epochs, batch_size=32, lr=0.01, weight_decay=0.0, patience=0, seed=1, time_budget_s=0,
                  methods=tuple(methods), morec_tower="linear", text_std=1.0, null_dim=6,
                  llmesr_alpha=0.1, llmesr_neighbours=3, ctrl_epochs=5, ctrl_temperature=0.1, make_tower="linear",
                  disco_unique=4, disco_sufficiency=0.5, disco_disentangle=1.0)
    return BaselinesConfig(**{**values, **kw})


def sequences() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.array([(s + 2 * i - 1) % N_ITEMS + 1 for i in range(int(rng.integers(5, 10)))])
            for s in rng.integers(1, N_ITEMS + 1, N_USERS)]


def prepared(cfg: ModelConfig) -> Prepared:
    seqs = sequences()
    buckets = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(N_ITEMS) // (N_ITEMS // N_BUCKETS) + 1])
    train = TrainData(seqs, N_ITEMS, cfg.max_len, negatives_per_position(cfg.loss, cfg.negatives))
    return Prepared(N_ITEMS, buckets, N_BUCKETS, train, ranking_splits(seqs, cfg.max_len))


def text() -> torch.Tensor:
    t = torch.randn(N_ITEMS + 1, TEXT_DIM, generator=torch.Generator().manual_seed(5))
    t[0] = 0
    return t


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
