"""The walk toy (tests/walk.py) at the baselines' size: 50 items, 120 users, 32-d text, 5 buckets."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pad.config import BaselinesConfig, EvaluateConfig, ModelConfig
from pad.train.pretrain import Prepared
from tests.walk import walk_prepared, walk_sequences, walk_text

N_ITEMS, N_USERS, TEXT_DIM, N_BUCKETS, DIM = 50, 120, 32, 5, 16
EV = EvaluateConfig(k=10, user_chunk=64, tau_max_pairs=1000, seed=0, valid_users=0)


def model_cfg(backbone: str = "sasrec", loss: str = "ce") -> ModelConfig:
    return ModelConfig(backbone=backbone, dim=DIM, blocks=1, heads=2, dropout=0.1, max_len=6, loss=loss, negatives=2)


def base_cfg(methods=(), epochs: int = 6, **kw) -> BaselinesConfig:
    values = dict(epochs=epochs, batch_size=32, lr=0.01, weight_decay=0.0, patience=0, seed=1, time_budget_s=0,
                  methods=tuple(methods), morec_tower="linear", text_std=1.0, null_dim=6,
                  llmesr_alpha=0.1, llmesr_neighbours=3, llmesr_teacher="train", ctrl_epochs=5, ctrl_temperature=0.1, make_tower="linear",
                  disco_unique=4, disco_sufficiency=0.5, disco_disentangle=1.0)
    return BaselinesConfig(**{**values, **kw})


def sequences() -> list[np.ndarray]:
    return walk_sequences(N_ITEMS, N_USERS)


def prepared(cfg: ModelConfig) -> Prepared:
    return walk_prepared(cfg, N_ITEMS, N_USERS, N_BUCKETS)


def text() -> torch.Tensor:
    return walk_text(N_ITEMS, TEXT_DIM)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
