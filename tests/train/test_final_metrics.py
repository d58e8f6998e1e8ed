"""pad.train.pretrain.final_metrics: every user by default; with `evaluate.valid_users` the same seeded sample
of users in both splits (the evaluate stage ranks everyone once)."""
import dataclasses

import torch

from pad.evaluation.ranking import evaluate, sample_users
from pad.models import build_id_expert
from pad.train.loop import FitResult
from pad.train.pretrain import final_metrics
from tests.baselines.conftest import EV, N_ITEMS, model_cfg, prepared


def test_final_metrics_rank_every_user_or_the_seeded_sample_in_both_splits():
    cfg = model_cfg()
    data = prepared(cfg)
    torch.manual_seed(0)
    expert = build_id_expert(cfg, N_ITEMS)
    result = FitResult(best_epoch=1, best_valid={}, epochs_run=1, train_s=0.0, stop_reason="test")
    full = final_metrics(expert, data, result, EV)
    assert "sample_users" not in full
    assert full["valid"] == evaluate(expert, data.splits, data.item_buckets, EV.k, EV.user_chunk,
                                     n_buckets=data.n_buckets)["valid"]
    n = len(data.splits["valid"].targets) // 3
    ev = dataclasses.replace(EV, valid_users=n)
    part = final_metrics(expert, data, result, ev)
    assert part["sample_users"] == n
    splits = {name: sample_users(s, n, ev.seed) for name, s in data.splits.items()}
    want = evaluate(expert, splits, data.item_buckets, ev.k, ev.user_chunk, n_buckets=data.n_buckets)
    assert part["valid"] == want["valid"] and part["test"] == want["test"]
    assert part["test"] != full["test"]
