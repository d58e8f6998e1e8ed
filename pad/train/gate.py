"""Fit PAD's gate on held-out targets with the experts fixed (DESIGN §6, phase 3, last step).

The gate is a handful of numbers (bucket: E × B scalars) that decides how much each expert's logit counts
for an item of each frequency bucket. Fitted on the training sequences it learns which expert remembers
the training targets best (the phase-1 ID expert, which has memorised them), not which generalises; fitted
on the validation targets it learns the latter. Loss: softmax cross-entropy of the fused logits over the
whole catalogue at each user's last position, the user's history excluded as in the evaluation (users
whose target is in their history are skipped: the protocol can never rank them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_map

from pad.evaluation.ranking import RankingSplit
from pad.models.pad import PAD


def _last_queries(model: PAD, inputs: Tensor, chunk: int) -> dict[str, Tensor]:
    """{expert: (U, 1, d)} user states at the last position (the model must hold its cached tables)."""
    parts = [tree_map(lambda t: t[:, -1:], model.encode(inputs[i:i + chunk])) for i in range(0, len(inputs), chunk)]
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
    with model.cached_items():
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
