"""User groups by training-history length: tercile cuts (ties never split a length), group metrics."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pad.errors import PadError
from pad.evaluation.users import by_history, describe_groups, history_groups, tercile_cuts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=200))
def test_cuts_come_closest_to_thirds(lengths):
    lengths = np.array(lengths)
    c1, c2 = tercile_cuts(lengths)
    n = len(lengths)
    assert c1 <= c2 and c1 in lengths and c2 in lengths
    for j, c in ((1, c1), (2, c2)):  # brute force: the shortest observed length whose count is closest to j n / 3
        gap = lambda t: abs(3 * int((lengths <= t).sum()) - j * n)  # noqa: E731
        assert c == min(np.unique(lengths), key=lambda t: (gap(t), t))
    assert tercile_cuts(np.random.default_rng(0).permutation(lengths)) == (c1, c2)  # order does not matter


def test_groups_are_thirds_when_lengths_differ_and_ties_stay_together():
    seqs = [np.arange(n + 2) for n in range(1, 10)]  # training lengths 1..9
    g = history_groups(seqs)
    assert g.cuts == (3, 6) and g.names().tolist() == ["short"] * 3 + ["medium"] * 3 + ["long"] * 3
    tied = history_groups([np.arange(5)] * 6 + [np.arange(8)] * 2 + [np.arange(9)])  # lengths 3 x6, 6 x2, 7
    assert tercile_cuts(np.repeat([2, 3, 4, 5, 6], [6, 6, 7, 7, 14])) == (3, 5)  # long is not left empty
    assert tied.cuts == (3, 3) and tied.names().tolist() == ["short"] * 6 + ["long"] * 3
    assert describe_groups(tied) == {"short": {"min_len": 3, "max_len": 3, "users": 6},
                                     "medium": {"min_len": 4, "max_len": 3, "users": 0},  # empty: min > max
                                     "long": {"min_len": 4, "max_len": 7, "users": 3}}


def test_bad_input_is_one_line():
    with pytest.raises(PadError, match="no users"):
        tercile_cuts(np.array([], dtype=int))
    with pytest.raises(PadError, match="has 2 items"):
        history_groups([np.arange(5), np.arange(2)])


def test_group_metrics_average_the_members():
    hit = torch.tensor([1.0, 0.0, 1.0, 1.0])
    ndcg = torch.tensor([1.0, 0.0, 0.5, 0.5])
    out = by_history(hit, ndcg, np.array([0, 0, 2, 2]), 10)
    assert out == {"short": {"users": 2, "hr_10": 50.0, "ndcg_10": 50.0},
                   "medium": {"users": 0, "hr_10": 0.0, "ndcg_10": 0.0},
                   "long": {"users": 2, "hr_10": 100.0, "ndcg_10": 50.0}}
