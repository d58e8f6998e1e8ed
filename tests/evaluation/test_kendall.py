"""Kendall's tau discrepancy between embedding tables (paper §4.3)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau
from typer.testing import CliRunner

from pad.cli import app
from pad.data.buckets import write_items
from pad.errors import PadError
from pad.evaluation.kendall import (
    history_target_pairs,
    kendall_tau_by_bucket,
    load_table,
    pair_distances,
    tau_discrepancy,
)

N_ITEMS, N_BUCKETS = 200, 5


def world(seed: int = 0, n_users: int = 400):
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, N_ITEMS + 1, size=rng.integers(2, 24)) for _ in range(n_users)]
    item_bucket = np.concatenate([[0], rng.integers(1, N_BUCKETS + 1, size=N_ITEMS)])
    table = rng.normal(size=(N_ITEMS + 1, 8))
    return seqs, item_bucket, table, rng


def test_history_target_pairs_small_example():
    seqs = [np.array([3, 5, 3, 7]), np.array([9]), np.array([], dtype=int), np.array([0, 0, 4, 2])]
    pairs = history_target_pairs(seqs)
    assert pairs.tolist() == [[3, 7], [5, 7], [3, 7], [4, 2]]
    assert history_target_pairs(seqs, max_history=1).tolist() == [[3, 7], [4, 2]]
    assert history_target_pairs([[1, 2, 2]]).tolist() == [[1, 2]]  # the target itself is skipped
    assert history_target_pairs([]).shape == (0, 2)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), max_size=8), max_size=6), st.none() | st.integers(1, 5))
def test_history_target_pairs_matches_loop(seqs, max_history):
    expected = []
    for s in seqs:
        if len(s) < 2:
            continue
        history = s[:-1] if max_history is None else s[:-1][-max_history:]
        expected += [[h, s[-1]] for h in history if h != 0 and h != s[-1]]
    assert history_target_pairs([np.array(s, dtype=int) for s in seqs], max_history).tolist() == expected


def test_tau_with_itself_is_one_and_with_shuffled_copy_about_zero():
    seqs, item_bucket, table, rng = world()
    same = tau_discrepancy(table, table.copy(), seqs, item_bucket, N_BUCKETS, 10**6, 0)
    assert same["overall"] == pytest.approx(1.0)
    assert all(t == pytest.approx(1.0) for t in same["buckets"].values())
    shuffled = table[np.concatenate([[0], rng.permutation(np.arange(1, N_ITEMS + 1))])]
    other = tau_discrepancy(table, shuffled, seqs, item_bucket, N_BUCKETS, 10**6, 0)
    assert abs(other["overall"]) < 0.08
    assert all(abs(t) < 0.2 for t in other["buckets"].values())


def test_tau_invariant_to_distance_preserving_maps():
    seqs, item_bucket, table, rng = world(1)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    moved = 3.0 * table @ q + 1.5  # rotation, scaling, shift keep the ranking of Euclidean distances
    assert tau_discrepancy(table, moved, seqs, item_bucket, N_BUCKETS, 10**6, 0)["overall"] == pytest.approx(1.0)
    rescaled = table * rng.uniform(0.1, 10, size=(N_ITEMS + 1, 1))  # per-row scale: cosine is blind to it
    result = tau_discrepancy(table, rescaled, seqs, item_bucket, N_BUCKETS, 10**6, 0, metric="cosine")
    assert result["overall"] == pytest.approx(1.0)
    assert tau_discrepancy(table, torch.tensor(rescaled), seqs, item_bucket, N_BUCKETS, 10**6, 0)["overall"] < 0.9


def test_matches_scipy_per_bucket_and_subsamples_deterministically():
    seqs, item_bucket, table, rng = world(2)
    noisy = table + 0.5 * rng.normal(size=table.shape)
    pairs = history_target_pairs(seqs)
    pb = item_bucket[pairs[:, 1]]
    full = kendall_tau_by_bucket(table, noisy, pairs, pb, N_BUCKETS, len(pairs), 0)
    da, db = pair_distances(table, pairs), pair_distances(noisy, pairs)
    assert full["overall"] == pytest.approx(kendalltau(da, db).statistic)
    assert full["buckets"][3] == pytest.approx(kendalltau(da[pb == 3], db[pb == 3]).statistic)
    assert full["n_pairs"] == len(pairs)
    sub = kendall_tau_by_bucket(table, noisy, pairs, pb, N_BUCKETS, 500, seed=7)
    assert sub == kendall_tau_by_bucket(table, noisy, pairs, pb, N_BUCKETS, 500, seed=7)
    assert sub["n_pairs"] == 500 and sub != kendall_tau_by_bucket(table, noisy, pairs, pb, N_BUCKETS, 500, seed=8)
    assert abs(sub["overall"] - full["overall"]) < 0.1


def test_undefined_buckets_are_none_and_cosine_handles_zero_rows():
    table = np.eye(4)
    table[3] = 0.0
    pairs = np.array([[1, 2], [3, 2], [1, 3]])
    assert pair_distances(table, pairs, "cosine").tolist() == [1.0, 1.0, 1.0]
    result = kendall_tau_by_bucket(table, table, pairs, np.array([1, 1, 2]), 3, 10, 0)
    assert result["buckets"][2] is None and result["buckets"][3] is None
    with pytest.raises(ValueError, match="same items"):
        kendall_tau_by_bucket(table, table[:3], pairs, np.array([1, 1, 2]), 3, 10, 0)


def _write_project(tmp_path, seqs, item_bucket, table):
    pl.DataFrame({"user_idx": list(range(len(seqs))), "items": [s.tolist() for s in seqs]}).write_parquet(
        tmp_path / "sequences.parquet")
    write_items(pl.DataFrame({"item_idx": list(range(1, N_ITEMS + 1)), "bucket": item_bucket[1:].tolist()}),
                tmp_path / "items.parquet", n_buckets=N_BUCKETS)
    emb = pa.FixedSizeListArray.from_arrays(pa.array(table[1:].astype(np.float32).ravel()), table.shape[1])
    pq.write_table(pa.table({"item_idx": pa.array(range(1, N_ITEMS + 1), pa.int32()), "embedding": emb}),
                   tmp_path / "emb.parquet")


def test_load_table_and_cli(tmp_path):
    seqs, item_bucket, table, rng = world(3)
    _write_project(tmp_path, seqs, item_bucket, table)
    ckpt = {"model": {"items.id_emb.weight": torch.tensor(table, dtype=torch.float32),
                      "backbone.pos.weight": torch.zeros(20, 8)}, "epoch": 3}
    torch.save(ckpt, tmp_path / "a.pt")
    from_pt = load_table(tmp_path / "a.pt", "id_emb.weight", N_ITEMS)
    assert np.allclose(from_pt, table, atol=1e-6)
    assert np.allclose(load_table(tmp_path / "a.pt"), table, atol=1e-6)  # the only "emb" tensor
    assert np.allclose(load_table(tmp_path / "emb.parquet", n_items=N_ITEMS)[1:], table[1:], atol=1e-6)
    with pytest.raises(PadError, match="--key"):
        load_table(tmp_path / "a.pt", "weight")
    with pytest.raises(PadError, match="rows"):
        load_table(tmp_path / "a.pt", "id_emb.weight", N_ITEMS + 5)

    args = ["tau", str(tmp_path / "a.pt"), str(tmp_path / "emb.parquet"), "--key", "id_emb.weight",
            "--sequences", str(tmp_path / "sequences.parquet"), "--items", str(tmp_path / "items.parquet")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "overall   1.000" in result.output and "bucket  5  1.000" in result.output
    bad = CliRunner().invoke(app, args[:3] + ["--key", "nope"] + args[5:])
    assert bad.exit_code == 2 and "nope" in bad.output


def test_tau_refuses_a_checkpoint_that_would_run_code(tmp_path, code_payload):
    seqs, item_bucket, table, _ = world(3)
    _write_project(tmp_path, seqs, item_bucket, table)
    torch.save({"emb": torch.tensor(table), "x": code_payload}, tmp_path / "evil.pt")
    args = ["tau", str(tmp_path / "evil.pt"), str(tmp_path / "emb.parquet"),
            "--sequences", str(tmp_path / "sequences.parquet"), "--items", str(tmp_path / "items.parquet")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "refused to load" in result.stderr and not code_payload.marker.exists()
    assert len(result.stderr.strip().splitlines()) == 1
