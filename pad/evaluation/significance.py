"""Paired tests over users (DESIGN §11): is model A's per-user nDCG@10 higher than model B's on the same
users, or is the difference of the means noise?

For per-user scores a_u, b_u (same users, same order) and d_u = a_u - b_u:
- Paired bootstrap (Efron & Tibshirani 1993, ch. 13): resample users with replacement, keeping each user's
  pair together; the percentile 95% CI of mean(d) over `resamples` resamples (scipy.stats.bootstrap,
  `method="percentile"`: BCa's jackknife costs O(U^2) at 600k users). Seeded: the same inputs and seed
  give the same interval.
- Wilcoxon signed-rank test (Wilcoxon 1945; scipy.stats.wilcoxon, two-sided, `zero_method="wilcox"`):
  users with d_u = 0 (both models miss, or rank the target alike) are dropped, the rest ranked by |d_u|.
  All-zero differences: no evidence of a difference, p = 1 (scipy would refuse the empty test).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import polars as pl
from scipy import stats

from pad.errors import PadError

RESAMPLES = 1000
CONFIDENCE = 0.95
MAX_BATCH_VALUES = 2**24  # bootstrap resamples held at once x users (128 MB of float64)


@dataclass(frozen=True)
class PairedTest:
    """n users; mean_a, mean_b, mean_diff = mean(a - b); [ci_low, ci_high] the bootstrap CI of mean_diff;
    p_value the Wilcoxon signed-rank p; nonzero = users whose scores differ (the test's sample)."""

    n: int
    mean_a: float
    mean_b: float
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    nonzero: int


def paired_differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """d = a - b for two same-length 1-D finite score arrays; a one-line PadError otherwise."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise PadError(f"paired test: need two 1-D score arrays of the same length, got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise PadError("paired test: scores must be finite numbers")
    return a - b


def bootstrap_ci(d: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                 confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile CI of mean(d) over `resamples` seeded resamples of the users (module docstring)."""
    if len(d) == 0:
        raise PadError("paired test: no users")
    if np.all(d == d[0]):  # every resample has the same mean (and scipy refuses n = 1)
        return float(d[0]), float(d[0])
    res = stats.bootstrap((d,), np.mean, n_resamples=resamples, confidence_level=confidence,
                          method="percentile", batch=max(1, MAX_BATCH_VALUES // len(d)),
                          rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value of the differences d, zeros dropped; 1.0 if all are zero."""
    if not np.any(d != 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)


def paired_test(a: np.ndarray, b: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                confidence: float = CONFIDENCE) -> PairedTest:
    """Bootstrap CI of mean(a - b) and Wilcoxon p of a vs b, paired by position (one entry per user)."""
    d = paired_differences(a, b)
    low, high = bootstrap_ci(d, resamples, seed, confidence)
    return PairedTest(n=len(d), mean_a=float(np.mean(a)), mean_b=float(np.mean(b)), mean_diff=float(d.mean()),
                      ci_low=low, ci_high=high, p_value=wilcoxon_p(d), nonzero=int(np.count_nonzero(d)))


@dataclass(frozen=True)
class GroupComparison:
    """Model `a` against model `b` on one group of users (`overall`, an item group or a user group);
    `test` is None for a group with no users."""

    a: str
    b: str
    group: str
    test: PairedTest | None


def paired_by_group(per_user: pl.DataFrame, split: str, a: str, b: str, metric: str, item_groups: Sequence[str],
                    user_groups: Sequence[str], resamples: int = RESAMPLES, seed: int = 0) -> list[GroupComparison]:
    """Paired tests of `metric` (a per-user column, e.g. ndcg_10) for model a vs model b on `split`'s users
    (the per-user table of pad.evaluation.per_user), overall, in each item group (`item_group`: the
    target's) and in each user group (`user_group`: history length). Users are paired by user_idx."""
    rows = per_user.filter(pl.col("split") == split)
    known = rows["model"].unique().sort().to_list()
    for model in (a, b):
        if model not in known:
            raise PadError(f"per-user scores: no model {model!r} on split {split!r} (found: {', '.join(known) or 'none'})")
    cols = ["user_idx", "item_group", "user_group", metric]
    left = rows.filter(pl.col("model") == a).select(cols)
    right = rows.filter(pl.col("model") == b).select("user_idx", pl.col(metric).alias("_b"))
    pairs = left.join(right, on="user_idx", how="inner").sort("user_idx")
    if not (len(pairs) == len(left) == len(right)):
        raise PadError(f"per-user scores: models {a!r} and {b!r} were not scored on the same {split} users")
    out = [GroupComparison(a, b, "overall", paired_test(pairs[metric].to_numpy(), pairs["_b"].to_numpy(),
                                                        resamples, seed))]
    for column, names in (("item_group", item_groups), ("user_group", user_groups)):
        for group in names:
            sel = pairs.filter(pl.col(column) == group)
            test = paired_test(sel[metric].to_numpy(), sel["_b"].to_numpy(), resamples, seed) if len(sel) else None
            out.append(GroupComparison(a, b, group, test))
    return out
