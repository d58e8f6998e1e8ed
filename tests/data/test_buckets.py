"""Equal-mass frequency buckets: tie rule, cut points, groups (DESIGN §2)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

from pad.data.buckets import GROUPS, assign_buckets, bucket_cuts, bucket_groups, group_of_bucket, rank_items
from pad.evaluation.ranking import summarize


def test_ties_break_by_item_index_and_cuts_reach_k_over_b_of_the_mass():
    freq = np.array([1, 4, 4, 0, 1])  # items 1..5
    assert rank_items(freq).tolist() == [1, 2, 0, 4, 3]  # freq desc, then index asc
    bucket, cuts = assign_buckets(freq, 2)
    assert cuts == [2]  # mass 10: ranks 1-2 hold 8 >= 5, rank 1 alone holds 4 < 5
    assert bucket.tolist() == [2, 1, 1, 2, 2]
    assert bucket.dtype == np.int8


def test_no_training_mass_puts_everything_in_the_coldest_bucket():
    bucket, cuts = assign_buckets(np.zeros(4, dtype=int), 3)
    assert cuts == [0, 0] and bucket.tolist() == [3, 3, 3, 3]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=80), st.integers(1, 12))
def test_bucket_properties(freq_list, n_buckets):
    freq = np.array(freq_list)
    bucket, cuts = assign_buckets(freq, n_buckets)
    total = freq.sum()
    assert bucket.min() >= 1 and bucket.max() <= n_buckets
    assert (bucket[freq == 0] == n_buckets).all()  # unseen items are the coldest
    order = rank_items(freq)
    assert (np.diff(bucket[order]) >= 0).all()  # warmer rank -> same or warmer bucket
    if total:
        cum = np.cumsum(freq[order])
        for k, cut in enumerate(cuts, start=1):  # cut = first rank reaching k/B of the mass
            assert cum[cut - 1] * n_buckets >= k * total
            assert cut == 1 or cum[cut - 2] * n_buckets < k * total
    assert cuts == bucket_cuts(freq, n_buckets)


@pytest.mark.parametrize("bucket,group", [(1, "warm"), (3, "warm"), (4, "median"), (7, "median"),
                                          (8, "cold"), (10, "cold")])
def test_group_of_bucket(bucket, group):
    assert group_of_bucket(bucket, 10) == group


def test_group_of_bucket_rejects_out_of_range():
    for bad in (0, 11):
        with pytest.raises(ValueError):
            group_of_bucket(bad, 10)


@pytest.mark.parametrize("n_buckets", range(1, 21))
def test_groups_partition_the_buckets_warm_to_cold(n_buckets):
    groups = bucket_groups(n_buckets)
    assert list(groups) == list(GROUPS)
    assert [b for g in GROUPS for b in groups[g]] == list(range(1, n_buckets + 1))  # in order, each once
    assert len(groups["warm"]) == len(groups["cold"]) == int(0.3 * n_buckets + 0.5)  # round(0.3 B), halves up
    assert [group_of_bucket(b, n_buckets) for b in range(1, n_buckets + 1)] == \
        [g for g in GROUPS for _ in groups[g]]


@settings(max_examples=100, deadline=None)
@given(n_buckets=st.integers(1, 20), data=st.data())
def test_evaluation_groups_agree_with_prepare_groups(n_buckets, data):
    """summarize's per-group users (evaluate.json) = group_of_bucket's counts (prepare.json's group_sizes):
    one definition (they used to differ, e.g. B = 5: bucket 3 median in one, cold in the other)."""
    targets = data.draw(st.lists(st.integers(1, n_buckets), min_size=1, max_size=30))
    buckets = torch.tensor(targets)
    hit = torch.ones(len(targets))
    out = summarize(hit, hit, buckets, 10, n_buckets)
    for g in GROUPS:
        assert out[g]["users"] == sum(group_of_bucket(b, n_buckets) == g for b in targets)
    assert sum(out[g]["users"] for g in GROUPS) == out["users"] == len(targets)
