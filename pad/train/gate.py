"""Fit PAD's gate on held-out targets with the experts fixed (DESIGN §6, phase 3, last step).

The gate is a handful of numbers (bucket: E × B scalars) that decides how much each expert's logit counts
for an item of each frequency bucket. Fitted on the training sequences it learns which expert remembers
the training targets best (the phase-1 ID expert, which has memorised them), not which generalises; fitted
on the validation targets it learns the latter. Loss: softmax cross-entropy of the fused logits over the
whole catalogue at each user's last position, the user's history excluded as in the evaluation (users
whose target is in their history are skipped: the protocol can never rank them).

A gate fitted on few validation targets can overfit and make PAD worse than its best expert (issue 14:
one seed of a ~1,000-user data set). `check_gate` cross-fits it over two halves of the validation users and
keeps it only where it beats every expert on the held-out half; otherwise the gate is pinned to the best
expert (`pad.models.gate.pin_gate`), so PAD is that expert (`finetune.gate_check`).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_map

from pad.evaluation.ranking import RankingSplit, hit_ndcg, last_state, rank_split
from pad.memory import kept_heap
from pad.models.expert import Expert
from pad.models.pad import PAD


def _last_queries(model: PAD, inputs: Tensor, chunk: int) -> dict[str, Tensor]:
    """{expert: (U, 1, d)} user states at the last position (the model must hold its cached tables)."""
    parts = [tree_map(last_state, model.encode(inputs[i:i + chunk])) for i in range(0, len(inputs), chunk)]
    return {name: torch.cat([p[name] for p in parts]) for name in model.names}


def gate_loss(model: PAD, query: dict[str, Tensor], targets: Tensor, history: Tensor) -> Tensor:
    """Cross-entropy of the fused (U, N+1) logits; history items (0-padded (U, H)) and padding masked."""
    logits = model.score(query)[:, 0]  # (U, 1, N+1) -> (U, N+1)
    masked = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, history, True)
    masked[:, 0] = True
    return F.cross_entropy(logits.masked_fill(masked, float("-inf")), targets)


def fit_gate(model: PAD, split: RankingSplit, *, lr: float, epochs: int, batch_size: int, seed: int,
             user_chunk: int = 2048) -> list[float]:
    """Fit `model.gate` (in place) on `split` with Adam; returns the mean loss of each epoch."""
    device = model.item_buckets.device
    keep = ~(split.history == split.targets[:, None]).any(1)  # (U,) target not already in the history
    inputs, targets, history = (t[keep].to(device) for t in (split.inputs, split.targets, split.history))
    opt = torch.optim.Adam(model.gate.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    with model.cached_items(), kept_heap():  # batches of one size: their blocks reused (pad.memory)
        with torch.no_grad():
            query = _last_queries(model, inputs, user_chunk)
        for _ in range(epochs):
            order = torch.randperm(len(targets), generator=gen).to(device)
            total = 0.0
            for i in range(0, len(order), batch_size):
                rows = order[i:i + batch_size]
                loss = gate_loss(model, {n: q[rows] for n, q in query.items()}, targets[rows], history[rows])
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item() * len(rows)
            losses.append(total / max(len(order), 1))
    return losses


@dataclass(frozen=True)
class GateCheck:
    """The held-out check of a gate (DESIGN §6: the gate must never make PAD worse than its best expert).

    `valid_ndcg`: mean nDCG@k (%) over the validation users of the cross-fitted gate (each user scored by
    a gate fitted on the other fold) and of each expert alone; `choice`: "gate" when the cross-fitted gate
    beats every expert, else the best expert, to which the final gate is pinned (weight 1 for every item)."""

    valid_ndcg: dict[str, float]
    choice: str
    folds: int


def check_gate(model: PAD, split: RankingSplit, fit: Callable[[PAD, RankingSplit], object], *, k: int,
               user_chunk: int, seed: int, folds: int = 2) -> GateCheck:
    """Cross-fit the gate over `folds` seeded folds of the validation users (fit on the others, score the
    held-out fold) and compare with each expert alone on the same users; validation data only. The gate
    is left as it was (its starting weights): the caller fits it on every user or pins it (`pin_gate`)."""
    start = copy.deepcopy(model.gate.state_dict())
    fold = torch.randperm(len(split.targets), generator=torch.Generator().manual_seed(seed)) % folds  # (U,)
    gated = torch.zeros(len(split.targets))
    for f in range(folds):
        model.gate.load_state_dict(start)
        fit(model, _subset(split, fold != f))
        gated[fold == f] = user_ndcg(model, _subset(split, fold == f), model.item_buckets, k, user_chunk)
    model.gate.load_state_dict(start)
    scores = {"gate": gated} | {name: user_ndcg(e, split, model.item_buckets, k, user_chunk)
                                 for name, e in model.experts.items()}
    means = {name: round(100.0 * float(v.mean()), 4) for name, v in scores.items()}
    best = max(model.names, key=lambda name: means[name])  # ties: the first in id, align, llm order
    return GateCheck(means, "gate" if means["gate"] > means[best] else best, folds)


def user_ndcg(scorer: PAD | Expert, split: RankingSplit, item_buckets: Tensor, k: int, user_chunk: int) -> Tensor:
    """(U,) nDCG@k of each user's target, history excluded (the evaluation's `rank_split`, protocol and tie rule)."""
    masked, _ = rank_split(scorer, split, item_buckets, user_chunk)
    return hit_ndcg(masked, k)[1]


def _subset(split: RankingSplit, keep: Tensor) -> RankingSplit:
    return RankingSplit(split.inputs[keep], split.targets[keep], split.history[keep])
