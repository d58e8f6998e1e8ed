"""Full-ranking evaluation (DESIGN §7): every item scored for every user, in user chunks.

Tie rule (pessimistic, stated once): rank = 1 + #(items scoring higher than the target)
+ #(other items scoring the same), so a constant scorer gets no credit. Padding (item 0) is never
ranked. Primary protocol: the user's history items are excluded (removed from the ranking); a target
that is already in the history (a repeat) then counts as a miss. Protocol `unmasked`: nothing excluded.
HR@k = [rank <= k], nDCG@k = [rank <= k] / log2(rank + 1), averaged over users, in %.

Non-finite rule (same pessimistic spirit): a NaN, +inf or -inf score is a broken score and never
helps the target. A target whose own score is non-finite has no rank (inf: a miss under every k, in
both protocols); an other item whose score is non-finite counts as ahead of the target, whatever the
target's score. Scorers therefore exclude nothing by scoring it -inf: exclusion is `exclude`'s job,
and an excluded item is removed under the same rule whatever its score. A user's rank is thus inf or
an integer in 1..N, and every metric is finite.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from pad.data.buckets import bucket_groups
from pad.memory import kept_heap


@dataclass(frozen=True)
class RankingSplit:
    """inputs (U, L) left-padded model window; targets (U,); history (U, H) 0-padded items to exclude."""

    inputs: Tensor
    targets: Tensor
    history: Tensor


def ahead_of_target(item_scores: Tensor, target_scores: Tensor) -> Tensor:
    """(U, M) item scores, (U, 1) target scores -> (U, M) bool: the item counts as ahead of the target
    (scores >= the target's, ties included, or a non-finite item score: module docstring)."""
    return (item_scores >= target_scores) | ~torch.isfinite(item_scores)


def target_ranks(scores: Tensor, targets: Tensor, exclude: Tensor | None = None) -> Tensor:
    """(U, N+1) scores, (U,) targets, (U, H) 0-padded ids to exclude -> (U,) float ranks
    (inf = excluded, or a non-finite target score).

    rank = #(items 1..N ahead of the target) (a finite target counts itself), counted as N - #(items below
    the target) (an item is below iff its score is < the target's: NaN and +inf never are), plus the -inf
    items, which are below a finite target but count as ahead (`ahead_of_target`'s rule): one comparison
    and a min over the scores instead of `ahead_of_target`'s four elementwise passes (the bulk of a large
    catalogue's ranking), the same integers.
    """
    target = scores.gather(1, targets[:, None])  # (U, 1)
    items = scores[:, 1:]  # (U, N)
    ranks = items.shape[1] - (items < target).sum(1)  # (U,) int64
    if items.numel() and not bool(items.min() > -math.inf):  # a -inf, or a NaN (min is NaN): count the -inf
        ranks += (items == -math.inf).sum(1)
    ranks = torch.where(torch.isfinite(target[:, 0]), ranks.float(), math.inf)
    return ranks if exclude is None else exclude_history(ranks, scores, targets, exclude)


def exclude_history(ranks: Tensor, scores: Tensor, targets: Tensor, exclude: Tensor) -> Tensor:
    """Unmasked ranks -> ranks with the (U, H) 0-padded `exclude` ids removed: subtract the distinct
    excluded items that were counted as ahead (same rule: `ahead_of_target`); a target among them is a
    miss (inf), and an inf rank stays inf."""
    h = exclude.sort(1).values  # (U, H)
    distinct = torch.ones_like(h, dtype=torch.bool)
    distinct[:, 1:] = h[:, 1:] != h[:, :-1]
    real = distinct & (h != 0)
    is_target = h == targets[:, None]
    ahead = (real & ~is_target & ahead_of_target(scores.gather(1, h), scores.gather(1, targets[:, None]))).sum(1)
    return torch.where((real & is_target).any(1), math.inf, ranks - ahead)


def hit_ndcg(ranks: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """(U,) ranks -> per-user HR@k and nDCG@k (0/1 and 1/log2(rank+1) or 0)."""
    hit = (ranks <= k).float()
    return hit, hit / torch.log2(ranks.clamp(max=1e9) + 1)


def summarize(hit: Tensor, ndcg: Tensor, buckets: Tensor, k: int, n_buckets: int) -> dict[str, Any]:
    """Per-user hits, nDCGs and target buckets -> overall, per group and per bucket means in %."""

    def mean(sel: Tensor) -> dict[str, float]:
        n = int(sel.sum())
        return {"users": n, f"hr_{k}": _pct(hit[sel], n), f"ndcg_{k}": _pct(ndcg[sel], n)}

    out = mean(torch.ones_like(hit, dtype=torch.bool))
    for group, members in bucket_groups(n_buckets).items():
        out[group] = mean(torch.isin(buckets, torch.tensor(list(members))))
    out["buckets"] = {str(b): mean(buckets == b) for b in range(1, n_buckets + 1)}
    return out


def _pct(x: Tensor, n: int) -> float:
    return round(100.0 * float(x.sum()) / n, 4) if n else 0.0


# At most this many scores per user chunk (2**26 fp32 = 256 MB per score matrix, whatever the catalogue):
# `evaluate.user_chunk` users at a time, fewer when the catalogue is large (Prime Pantry: 2,048 users x
# 8,348 items fit; 423k items: 158 users a chunk).
EVAL_CHUNK_SCORES = 2**26


def users_per_chunk(user_chunk: int, n_rows: int) -> int:
    """`user_chunk`, capped so that a chunk's (users × n_rows) scores stay within EVAL_CHUNK_SCORES."""
    return max(1, min(user_chunk, EVAL_CHUNK_SCORES // max(n_rows, 1)))


def _shard(n: int) -> tuple[int, int, int]:
    """(start, stop, world): this rank's contiguous block of n users under torchrun (all of them otherwise)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0, n, 1
    rank, world = dist.get_rank(), dist.get_world_size()
    return rank * n // world, (rank + 1) * n // world, world


def last_state(states: Tensor) -> Tensor:
    """(C, L, ...) states -> (C, 1, ...) of the last position, as a contiguous copy: a strided (C, 1, d) slice
    times a table that needs no gradient (a text or aligned item module's, computed under no_grad) made
    torch.matmul run one (1, d) x (d, N) product per user instead of one matrix product for the chunk:
    0.9 s instead of 0.18 s a 634 x 105,799 chunk (benchmarks/scale.md, stop 25)."""
    return states[:, -1:].contiguous()


@torch.no_grad()
def split_ranks(scorer: Any, split: RankingSplit, user_chunk: int) -> tuple[Tensor, Tensor]:
    """Ranks of every user's target, history excluded and unmasked; scores users in chunks of at most
    `user_chunk` (callers cap it with `users_per_chunk`). Under torchrun each rank scores its own block of
    users and every rank gets all ranks back (in user order), so the metrics are those of one process."""

    def score_chunk(inputs: Tensor) -> Iterator[tuple[str, Tensor]]:
        query = tree_map(last_state, scorer.encode(inputs))  # leaves (C, 1, ...)
        yield "scorer", scorer.score(query, None)[:, 0]  # (C, N+1)

    return chunked_ranks(score_chunk, ["scorer"], split, user_chunk)["scorer"]


ChunkScorer = Callable[[Tensor], Iterable[tuple[str, Tensor]]]


@torch.no_grad()
def chunked_ranks(score_chunk: ChunkScorer, names: Sequence[str], split: RankingSplit,
                  user_chunk: int) -> dict[str, tuple[Tensor, Tensor]]:
    """{name: (history-excluded ranks, unmasked ranks)} of every user's target for several scorers at once:
    `score_chunk` maps a chunk's (C, L) inputs to (name, (C, N+1) scores) pairs, one per name in `names`
    (yielded lazily, so one scorer's scores at a time need be held). Users in chunks of `user_chunk`;
    under torchrun each rank scores its own block of users and every rank gets all ranks back in user
    order, so the metrics are those of one process."""
    first, last, world = _shard(len(split.targets))
    # every rank is written into these (users,) tensors, allocated before the first chunk: a chunk leaves
    # nothing behind, so its large temporaries free into one hole the next chunk reuses (small per-chunk
    # results kept alive between them would pin the heap: 21 GiB at 1/4 of Electronics with pad.memory's kept
    # heap, benchmarks/scale.md)
    mine = {name: (torch.empty(last - first), torch.empty(last - first)) for name in names}
    with kept_heap():  # the chunks' blocks reused, not faulted in afresh; given back after (pad.memory)
        for start in range(first, last, user_chunk):
            sl = slice(start, min(start + user_chunk, last))
            out = slice(sl.start - first, sl.stop - first)
            targets, history = split.targets[sl], split.history[sl]
            for name, scores in score_chunk(split.inputs[sl]):
                targets, history = targets.to(scores.device), history.to(scores.device)  # moved once
                ranks = target_ranks(scores, targets)
                masked, unmasked = mine[name]
                unmasked[out] = ranks.cpu()
                masked[out] = exclude_history(ranks, scores, targets, history).cpu()
                del ranks, scores
    if world == 1:
        return mine
    blocks: list[Any] = [None] * world
    dist.all_gather_object(blocks, mine)  # rank order = user order
    return {name: (torch.cat([b[name][0] for b in blocks]), torch.cat([b[name][1] for b in blocks]))
            for name in names}


def sample_users(split: RankingSplit, n: int, seed: int) -> RankingSplit:
    """A fixed, seeded sample of `n` of the split's users (in their original order); all when n is 0 or
    not below the split's size. Early stopping ranks it every epoch (`evaluate.valid_users`)."""
    if n <= 0 or n >= len(split.targets):
        return split
    keep = torch.randperm(len(split.targets), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return RankingSplit(split.inputs[keep], split.targets[keep], split.history[keep])


def rank_split(scorer: Any, split: RankingSplit, item_buckets: Tensor, user_chunk: int) -> tuple[Tensor, Tensor]:
    """(U,) ranks of every user's target, history excluded and unmasked (`split_ranks`), with the scorer in
    eval mode and its item tables computed once (`one_table`), not once per chunk."""
    device = next(scorer.parameters()).device if isinstance(scorer, nn.Module) else "cpu"
    moved = RankingSplit(split.inputs.to(device), split.targets, split.history)
    was_training = getattr(scorer, "training", False)
    if isinstance(scorer, nn.Module):
        scorer.eval()
    try:
        with torch.no_grad(), (scorer.one_table() if hasattr(scorer, "one_table") else nullcontext()):
            return split_ranks(scorer, moved, users_per_chunk(user_chunk, len(item_buckets)))
    finally:
        if isinstance(scorer, nn.Module):
            scorer.train(was_training)


def split_metrics(masked: Tensor, unmasked: Tensor, split: RankingSplit, item_buckets: Tensor, k: int, *,
                  n_buckets: int) -> dict[str, Any]:
    """A split's metrics from its users' ranks (`rank_split`): primary, `repeat_targets`, `unmasked`."""
    buckets = item_buckets[split.targets]
    out = summarize(*hit_ndcg(masked, k), buckets, k, n_buckets)
    out["repeat_targets"] = int((split.history == split.targets[:, None]).any(1).sum())
    out["unmasked"] = summarize(*hit_ndcg(unmasked, k), buckets, k, n_buckets)
    return out


def evaluate_split(scorer: Any, split: RankingSplit, item_buckets: Tensor, k: int, user_chunk: int, *,
                   n_buckets: int) -> dict[str, Any]:
    """Metrics of one split: primary (history excluded), `repeat_targets`, and `unmasked`; per bucket
    1..`n_buckets` (the data's B, not the largest bucket present) and per group."""
    if int(item_buckets.max()) > n_buckets:
        raise ValueError(f"item buckets go up to {int(item_buckets.max())}, but n_buckets is {n_buckets}")
    masked, unmasked = rank_split(scorer, split, item_buckets, user_chunk)
    return split_metrics(masked, unmasked, split, item_buckets, k, n_buckets=n_buckets)


def evaluate(scorer: Any, splits: dict[str, RankingSplit], item_buckets: Tensor, k: int, user_chunk: int, *,
             n_buckets: int) -> dict[str, Any]:
    """{"valid": ..., "test": ...} metrics for a scorer (anything with `encode`/`score`)."""
    return {name: evaluate_split(scorer, split, item_buckets, k, user_chunk, n_buckets=n_buckets)
            for name, split in splits.items()}


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Nested metrics -> {"test.hr_10": ..., "test.buckets.10.ndcg_10": ...} (DVC's own key style)."""
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat
