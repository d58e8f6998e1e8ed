"""Paired tests over users: identical scores show nothing, a consistent shift is found, seeds fix the CI."""
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pad.errors import PadError
from pad.evaluation.significance import paired_by_group, paired_test

scores = st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=60).map(np.array)


@settings(max_examples=50, deadline=None)
@given(scores)
def test_identical_scores_give_p_one_and_a_ci_at_zero(a):
    t = paired_test(a, a.copy())
    assert t.p_value == 1.0 and t.ci_low <= 0.0 <= t.ci_high and t.mean_diff == 0.0 and t.nonzero == 0


@settings(max_examples=30, deadline=None)
@given(scores.filter(lambda a: len(a) >= 20), st.floats(0.05, 1.0))
def test_a_consistent_shift_is_significant(b, shift):
    t = paired_test(b + shift, b, resamples=200)
    assert t.p_value < 1e-3 and t.ci_low > 0 and abs(t.mean_diff - shift) < 1e-9


def test_seeded_and_deterministic_ci_that_covers_the_mean():
    rng = np.random.default_rng(1)
    b = (rng.random(300) < 0.2) / np.log2(rng.integers(1, 11, 300) + 1)  # nDCG-like: mostly zeros
    a = np.where(rng.random(300) < 0.1, 1.0, b)
    first, again, other = paired_test(a, b, seed=3), paired_test(a, b, seed=3), paired_test(a, b, seed=4)
    assert first == again and (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    assert first.ci_low < first.mean_diff < first.ci_high and 0 < first.p_value < 0.05
    assert first.nonzero == int(np.count_nonzero(a - b))


def test_bad_input_is_one_line():
    with pytest.raises(PadError, match="same length"):
        paired_test(np.zeros(3), np.zeros(4))
    with pytest.raises(PadError, match="finite"):
        paired_test(np.array([0.0, np.nan]), np.zeros(2))
    with pytest.raises(PadError, match="no users"):
        paired_test(np.zeros(0), np.zeros(0))


def per_user_frame() -> pl.DataFrame:
    n = 40
    users = np.arange(n)
    base = np.where(users % 4 == 0, 0.5, 0.0)
    rows = []
    for model, ndcg in (("sasrec", base), ("pad", base + np.where(users < 20, 0.25, 0.0))):
        rows.append(pl.DataFrame({"split": "test", "model": model, "user_idx": users[::-1].copy(),
                                  "ndcg_10": ndcg[::-1].copy(),
                                  "item_group": np.where(users < 20, "cold", "warm")[::-1],
                                  "user_group": np.where(users % 2 == 0, "short", "long")[::-1]}))
    return pl.concat(rows)


def test_paired_by_group_pairs_users_and_splits_groups():
    out = paired_by_group(per_user_frame(), "test", "pad", "sasrec", "ndcg_10", ("warm", "median", "cold"),
                          ("short", "medium", "long"), resamples=200)
    by = {c.group: c.test for c in out}
    assert list(by) == ["overall", "warm", "median", "cold", "short", "medium", "long"]
    assert by["overall"].n == 40 and by["overall"].mean_diff == pytest.approx(0.125)
    assert by["cold"].n == 20 and by["cold"].ci_low > 0 and by["cold"].p_value < 1e-3
    assert by["warm"].p_value == 1.0 and by["warm"].ci_high == 0.0 and by["median"] is None
    assert by["short"].n == 20 and by["long"].n == 20


def test_paired_by_group_refuses_missing_models_or_users():
    df = per_user_frame()
    with pytest.raises(PadError, match="no model 'align'"):
        paired_by_group(df, "test", "pad", "align", "ndcg_10", (), ())
    with pytest.raises(PadError, match="same test users"):
        paired_by_group(df.filter(~((pl.col("model") == "pad") & (pl.col("user_idx") == 3))), "test", "pad",
                        "sasrec", "ndcg_10", (), ())
