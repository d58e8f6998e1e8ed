"""Training windows, leave-one-out splits and the negative sampler."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pad.errors import PadError
from pad.train.data import TrainData, ranking_splits, read_sequences, sample_negatives, sample_shared


def test_windows_and_splits_follow_the_leave_one_out_rule():
    seqs = [np.array([1, 2, 3, 4, 5, 6]), np.array([7, 8, 9, 10])]
    data = TrainData(seqs, n_items=10, max_len=4, negatives=0)
    # user 0: training part [1, 2, 3, 4]; user 1: [7, 8]
    assert data.inputs.tolist() == [[0, 1, 2, 3], [0, 0, 0, 7]]
    assert data.targets.tolist() == [[0, 2, 3, 4], [0, 0, 0, 8]]
    assert data.n_positions == 4
    splits = ranking_splits(seqs, max_len=3)
    assert splits["valid"].targets.tolist() == [5, 9]
    assert splits["valid"].inputs.tolist() == [[2, 3, 4], [0, 7, 8]]
    assert splits["test"].targets.tolist() == [6, 10]
    assert splits["test"].history.tolist() == [[1, 2, 3, 4, 5], [0, 0, 7, 8, 9]]  # full history, not the window


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.integers(0, 2**31 - 1))
def test_negatives_are_never_padding_or_training_items(n_items, seed):
    rng = np.random.default_rng(seed)
    users = []
    for _ in range(5):
        k = int(rng.integers(1, n_items))  # leave at least one item free
        users.append(rng.choice(np.arange(1, n_items + 1), size=k, replace=False))
    width = max(map(len, users))
    items = torch.zeros(5, width, dtype=torch.long)
    for i, u in enumerate(users):
        items[i, :len(u)] = torch.from_numpy(u)
    neg = sample_negatives(items, (4, 3), n_items, torch.Generator().manual_seed(seed))
    assert neg.shape == (5, 4, 3)
    assert ((neg >= 1) & (neg <= n_items)).all()
    for i, u in enumerate(users):
        assert not np.isin(neg[i].numpy(), u).any()


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 50), st.integers(1, 60), st.integers(0, 2**31 - 1))
def test_shared_negatives_are_distinct_real_items(k, n_items, seed):
    neg = sample_shared(k, n_items, torch.Generator().manual_seed(seed))
    assert len(neg) == min(k, n_items) and len(neg.unique()) == len(neg)
    assert ((neg >= 1) & (neg <= n_items)).all()


def test_shared_ce_batches_carry_one_draw_per_batch():
    seqs = [np.arange(1, 9) + i for i in range(10)]
    data = TrainData(seqs, n_items=30, max_len=5, negatives=7, shared=True)
    draws = [b.negatives for b in data.batches(1, 4, seed=0)]
    assert [d.shape for d in draws] == [(7,)] * 3
    assert not torch.equal(draws[0], draws[1])


def test_batches_shard_users_and_resample_each_epoch():
    seqs = [np.arange(1, 9) + i for i in range(10)]
    data = TrainData(seqs, n_items=30, max_len=5, negatives=1)
    ranks = [list(data.batches(1, 4, seed=0, rank=r, world=2)) for r in (0, 1)]
    users = torch.cat([b.users for bs in ranks for b in bs])
    assert sorted(users.tolist()) == list(range(10))  # every user once over the two ranks
    e1 = torch.cat([b.negatives for b in data.batches(1, 4, seed=0)])
    e2 = torch.cat([b.negatives for b in data.batches(2, 4, seed=0)])
    assert not torch.equal(e1, e2)
    again = torch.cat([b.negatives for b in data.batches(1, 4, seed=0)])
    assert torch.equal(e1, again)  # seeded by (seed, epoch): a resumed run sees the same batches


def test_sequences_without_users_is_a_clear_error(tmp_path):
    path = tmp_path / "sequences.parquet"
    pq.write_table(pa.table({"user_idx": pa.array([], pa.int32()), "user_id": pa.array([], pa.string()),
                             "items": pa.array([], pa.list_(pa.int32()))}), path)
    with pytest.raises(PadError, match=r"sequences.parquet: no users; rerun the prepare stage"):
        read_sequences(path)
