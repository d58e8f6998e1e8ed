"""Groups of users by history length (DESIGN §11; LLM-ESR reports long-tail users the same way) and the
metrics of each group.

A user's history length is the length of their training part, `len(seq) - 2` (leave-one-out: the last item
is the test target, the one before the validation target), so a user is in the same group in both splits.

Cut rule (terciles, deterministic under ties): with U users and lengths l, cut c_j (j = 1, 2) is the
observed length t whose count #(l <= t) is closest to j * U / 3 (integer test: |3 * #(l <= t) - j * U|
smallest; a tie goes to the shorter t), so c_1 <= c_2. short = l <= c_1, medium = c_1 < l <= c_2,
long = l > c_2. A length is never split between groups, so with many ties (most users at the minimum
length) the groups are not thirds and `medium` may be empty; the cut points and group sizes are written
next to the metrics (`describe_groups`). (The nearest-rank quantile, the smallest t with
3 * #(l <= t) >= j * U, was not taken: on lengths 2..6 it can leave `long` empty while `medium` holds half.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from pad.errors import PadError
from pad.evaluation.ranking import _pct

USER_GROUPS = ("short", "medium", "long")
HELD_OUT = 2  # items per user outside the training part: the validation and the test target


@dataclass(frozen=True)
class HistoryGroups:
    """lengths (U,) training-history length per user; group (U,) index into USER_GROUPS; cuts (c_1, c_2)."""

    lengths: np.ndarray
    group: np.ndarray
    cuts: tuple[int, int]

    def names(self) -> np.ndarray:
        """(U,) group name per user."""
        return np.asarray(USER_GROUPS)[self.group]


def tercile_cuts(lengths: np.ndarray) -> tuple[int, int]:
    """(c_1, c_2): the observed lengths whose cumulative counts come closest to 1/3 and 2/3 of the users
    (module docstring)."""
    if len(lengths) == 0:
        raise PadError("no users to cut into history-length groups")
    values, counts = np.unique(np.asarray(lengths, dtype=np.int64), return_counts=True)  # ascending
    cum = np.cumsum(counts)  # #(l <= values[i])
    # argmin takes the first (shortest) of equally close lengths
    return tuple(int(values[np.argmin(np.abs(3 * cum - j * len(lengths)))]) for j in (1, 2))  # type: ignore[return-value]


def history_groups(sequences: Sequence[np.ndarray]) -> HistoryGroups:
    """Every user's training-history length, the tercile cuts and each user's group (module docstring)."""
    lengths = np.fromiter((len(s) - HELD_OUT for s in sequences), dtype=np.int64, count=len(sequences))
    if len(lengths) and lengths.min() < 1:
        raise PadError(f"a user has {int(lengths.min()) + HELD_OUT} items: every user needs train, valid and test items")
    cuts = tercile_cuts(lengths)
    group = np.searchsorted(np.asarray(cuts), lengths, side="left").astype(np.int8)  # l <= c1 -> 0, <= c2 -> 1
    return HistoryGroups(lengths, group, cuts)


def describe_groups(groups: HistoryGroups) -> dict[str, dict[str, int]]:
    """{short|medium|long: {min_len, max_len, users}}: each group's length range (inclusive; min_len >
    max_len marks an empty group) and size, for evaluate.json next to the metrics."""
    lo, hi = int(groups.lengths.min()), int(groups.lengths.max())
    c1, c2 = groups.cuts
    bounds = {"short": (lo, c1), "medium": (c1 + 1, c2), "long": (c2 + 1, hi)}
    return {name: {"min_len": a, "max_len": b, "users": int((groups.group == g).sum())}
            for g, (name, (a, b)) in enumerate(bounds.items())}


def by_history(hit: Tensor, ndcg: Tensor, group: np.ndarray, k: int) -> dict[str, dict[str, Any]]:
    """Per-user HR@k / nDCG@k (0/1 and 1/log2(rank+1)) -> {short|medium|long: {users, hr_k, ndcg_k}} in %,
    averaged over the group's users (0.0 for an empty group)."""
    member = torch.as_tensor(group, dtype=torch.long)
    out = {}
    for g, name in enumerate(USER_GROUPS):
        sel = member == g
        n = int(sel.sum())
        out[name] = {"users": n, f"hr_{k}": _pct(hit[sel], n), f"ndcg_{k}": _pct(ndcg[sel], n)}
    return out
