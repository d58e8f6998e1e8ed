"""Every baseline trains under the shared protocol, beats a random ranking on the toy and reports the metrics
layout of evaluate.json (overall, item groups, buckets, user history groups, unmasked)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from pad.baselines.harness import BUILDERS, run_baselines, train_method
from pad.errors import PadError
from pad.evaluation.users import history_groups
from tests.baselines.conftest import EV, N_ITEMS, base_cfg, model_cfg, prepared, sequences, text

METHODS = sorted(BUILDERS)


def random_hr10() -> float:
    """Expected HR@10 (%) of a random ranking on the toy's test split (history items excluded)."""
    seqs = sequences()
    return 100.0 * sum(min(1.0, 10 / (N_ITEMS - len(set(s[:-1].tolist())))) for s in seqs) / len(seqs)


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_and_beats_a_random_ranking(tmp_path, method):
    cfg = model_cfg()
    data = prepared(cfg)
    metrics, timings, rows = run_baselines(data, sequences(), text(), cfg, base_cfg([method]), EV,
                                           device=torch.device("cpu"), resume_root=tmp_path / "cache", **users())
    m = metrics[method]
    assert set(m) == {"valid", "test", "train"} and m["train"]["epochs"] == 6
    test = m["test"]
    assert {"hr_10", "ndcg_10", "warm", "median", "cold", "buckets", "history", "unmasked"} <= set(test)
    assert set(test["history"]) == {"short", "medium", "long"} and "history" in test["unmasked"]
    assert test["hr_10"] > 2 * random_hr10(), (method, test["hr_10"], random_hr10())
    assert timings[method]["total_s"] >= 0
    assert not any((tmp_path / "cache").glob("*/last.pt"))  # the resume state is cleared once done
    per_user = pl.concat(rows)  # the paired tests' rows: the same ranks as the metrics
    assert per_user["model"].unique().to_list() == [method]
    for split in ("valid", "test"):
        mine = per_user.filter(pl.col("split") == split)
        assert len(mine) == m[split]["users"] and mine["user_idx"].to_list() == list(range(len(mine)))
        assert round(100 * mine["ndcg_10"].mean(), 4) == m[split]["ndcg_10"]


@pytest.mark.parametrize("method", ["hybrid", "alphafuse", "llmesr", "make", "disco", "ctrl", "smem"])
@pytest.mark.parametrize("backbone,loss", [("gru4rec", "bce"), ("caser", "sampled_ce")])
def test_methods_run_with_other_backbones_and_losses(tmp_path, method, backbone, loss):
    cfg = model_cfg(backbone, loss)
    expert, result = train_method(method, prepared(cfg), sequences(), text(), cfg, base_cfg(epochs=1), EV,
                                  device=torch.device("cpu"), resume_root=tmp_path)
    assert result.epochs_run == 1 and torch.isfinite(expert.item_vectors()).all()


def test_embeddings_of_other_items_are_one_line_errors(tmp_path):
    cfg = model_cfg()
    with pytest.raises(PadError, match="the text embeddings have 49 items but the prepared data has 50"):
        train_method("hybrid", prepared(cfg), sequences(), text()[:-1], cfg, base_cfg(), EV,
                     device=torch.device("cpu"), resume_root=tmp_path)
    with pytest.raises(PadError, match="unknown baseline 'sasrec'"):
        train_method("sasrec", prepared(cfg), sequences(), text(), cfg, base_cfg(), EV, device=torch.device("cpu"),
                     resume_root=tmp_path)


def test_no_methods_train_nothing(tmp_path):
    cfg = model_cfg()
    assert run_baselines(prepared(cfg), sequences(), text(), cfg, base_cfg(), EV, device=torch.device("cpu"),
                         resume_root=tmp_path, **users()) == ({}, {}, [])


def users() -> dict:
    """run_baselines' per-user arguments for the toy: history groups and user ids in file order."""
    seqs = sequences()
    return {"groups": history_groups(seqs), "user_idx": np.arange(len(seqs))}
