"""The evaluate stage's pieces: metrics layout per split and model, user groups, per-user rows, ID tables for
tau, plot rows."""
from __future__ import annotations

import numpy as np
import polars as pl
import torch

from pad.config import ModelConfig
from pad.evaluation.phases import (bucket_rows, evaluate_models, evaluate_models_per_user, gate_rows, history_rows,
                                   id_table, phase_tables, tau_report, write_tsv)
from pad.evaluation.ranking import evaluate
from pad.evaluation.users import history_groups
from pad.models import Expert, build_backbone, build_id_expert
from pad.models.gate import build_gate
from pad.models.pad import PAD
from pad.models.text import AlignedItems
from pad.train.data import ranking_splits

torch.set_num_threads(1)
N_ITEMS, N_BUCKETS = 25, 4
CFG = ModelConfig(backbone="sasrec", dim=8, blocks=1, heads=2, dropout=0.1, max_len=5, loss="ce", negatives=1)


def setup():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, N_ITEMS + 1, int(rng.integers(4, 9))) for _ in range(40)]
    buckets = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(N_ITEMS) % N_BUCKETS + 1])
    text = torch.randn(N_ITEMS + 1, 6)
    pre = build_id_expert(CFG, N_ITEMS)
    aligned = Expert(AlignedItems(text, CFG.dim, CFG.dropout, id_init=pre.item_vectors().detach()), build_backbone(CFG))
    return seqs, buckets, pre, aligned


def test_metrics_per_split_and_model_match_the_plain_evaluation():
    seqs, buckets, pre, aligned = setup()
    splits = ranking_splits(seqs, CFG.max_len)
    pad = PAD({"id": pre, "align": aligned}, build_gate("bucket", 2, N_BUCKETS, ["id", "align"]), buckets)
    out = evaluate_models({"sasrec": PAD.single(pre, buckets, N_BUCKETS), "align": PAD.single(aligned, buckets, N_BUCKETS),
                           "pad": pad}, splits, buckets, 10, 16, n_buckets=N_BUCKETS)
    assert set(out) == {"valid", "test"} and set(out["test"]) == {"sasrec", "align", "pad"}
    assert out["test"]["sasrec"] == evaluate(pre, splits, buckets, 10, 7, n_buckets=N_BUCKETS)["test"]  # chunking and caching agree
    m = out["test"]["pad"]
    assert {"hr_10", "ndcg_10", "warm", "cold", "buckets", "unmasked", "repeat_targets"} <= set(m)
    rows = bucket_rows(out, 10)
    assert [r["bucket"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["align"] == out["test"]["align"]["buckets"]["3"]["ndcg_10"] and list(rows[0]) == [
        "bucket", "sasrec", "align", "pad"]


def test_tau_of_an_unchanged_id_table_is_one_and_tables_follow_the_experts():
    seqs, buckets, pre, aligned = setup()
    assert torch.equal(id_table(aligned), pre.item_vectors())  # the align expert starts from phase 1
    pad = PAD({"align": aligned}, build_gate("global", 1, N_BUCKETS), buckets)
    tables = phase_tables(pre, aligned, pad)
    assert set(tables) == {"align", "finetune_align"}  # no ID expert in PAD: no `finetune` entry
    tau = tau_report(pre.item_vectors().detach(), tables, seqs, buckets.numpy(), N_BUCKETS, 10_000, 0)
    assert abs(tau["align"]["overall"] - 1.0) < 1e-9 and tau["align"]["n_pairs"] > 50
    with torch.no_grad():
        aligned.items.id_emb.weight.add_(torch.randn_like(aligned.items.id_emb.weight))
    moved = tau_report(pre.item_vectors().detach(), phase_tables(pre, aligned, pad), seqs, buckets.numpy(),
                       N_BUCKETS, 10_000, 0)
    assert moved["align"]["overall"] < 0.9


def test_gate_rows_fill_removed_experts_with_zero(tmp_path):
    _, buckets, pre, _ = setup()
    pad = PAD({"id": pre}, build_gate("bucket", 1, N_BUCKETS, ["id"]), buckets)
    rows = gate_rows(pad)
    assert rows[0] == {"bucket": 1, "id": 1.0, "align": 0.0, "llm": 0.0} and len(rows) == N_BUCKETS
    write_tsv(rows, tmp_path / "g.tsv")
    lines = (tmp_path / "g.tsv").read_text().splitlines()
    assert lines[0] == "bucket\tid\talign\tllm" and lines[-1] == "4\t1.0\t0.0\t0.0"


def test_per_user_rows_agree_with_the_metrics_and_history_groups():
    seqs, buckets, pre, aligned = setup()
    splits = ranking_splits(seqs, CFG.max_len)
    models = {"sasrec": PAD.single(pre, buckets, N_BUCKETS), "align": PAD.single(aligned, buckets, N_BUCKETS)}
    groups = history_groups(seqs)
    user_idx = np.arange(len(seqs))[::-1].copy()
    out, rows = evaluate_models_per_user(models, splits, buckets, 10, 16, n_buckets=N_BUCKETS, groups=groups,
                                         user_idx=user_idx)
    plain = evaluate_models(models, splits, buckets, 10, 16, n_buckets=N_BUCKETS)
    m = out["test"]["align"]
    assert {k: v for k, v in m.items() if k != "history"} | {"unmasked": plain["test"]["align"]["unmasked"]} == \
        plain["test"]["align"]  # the history groups only add keys
    assert list(m)[-3:] == ["history", "repeat_targets", "unmasked"] and "history" in m["unmasked"]
    assert sum(g["users"] for g in m["history"].values()) == len(seqs)
    df = pl.concat(rows)
    assert df.height == 2 * 2 * len(seqs) and df["user_idx"].to_list()[:3] == user_idx[:3].tolist()
    test = df.filter((pl.col("split") == "test") & (pl.col("model") == "align"))
    assert round(100 * test["ndcg_10"].mean(), 4) == m["ndcg_10"] and round(100 * test["hr_10"].mean(), 4) == m["hr_10"]
    assert sum(g["users"] > 0 for g in m["history"].values()) >= 2
    for g in ("short", "medium", "long"):
        sel = test.filter(pl.col("user_group") == g)
        assert sel.height == m["history"][g]["users"]
        assert round(100 * (sel["ndcg_10"].mean() or 0.0), 4) == m["history"][g]["ndcg_10"]
    cold = test.filter(pl.col("item_group") == "cold")
    assert cold.height == m["cold"]["users"] and round(100 * cold["hr_10"].mean(), 4) == m["cold"]["hr_10"]
    assert test.filter(pl.col("repeat"))["rank"].is_infinite().all()
    assert test["repeat"].sum() == m["repeat_targets"]
    assert [r["group"] for r in history_rows(out, 10)] == [1, 2, 3]
    assert history_rows(out, 10)[2]["sasrec"] == out["test"]["sasrec"]["history"]["long"]["ndcg_10"]
