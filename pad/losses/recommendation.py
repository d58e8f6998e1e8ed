"""The recommendation loss shared by every phase (DESIGN §4): `bce`, `ce` or `sampled_ce`.

The pure functions take logits; `recommendation_loss` computes them from any *scorer*
(`encode(seqs) -> query`, `score(query, candidates | None) -> logits`, see pad/models/expert.py),
so the same code trains one expert, the alignment expert or the gated mixture of phase 3.
"""
from __future__ import annotations

from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_map

from pad.train.data import Batch

LossKind = Literal["bce", "ce", "sampled_ce"]


class Scorer(Protocol):
    """What losses, the training loop and evaluation need from a model.

    `encode` returns a query: a tensor or a (nested) tuple/list/dict of tensors whose first two
    dimensions are (B, L), one entry per sequence position; `score` turns a query with leading
    (B', L') and candidates (B', L', K) into (B', L', K) logits, or with `candidates=None` into
    (B', L', N+1) logits over every item (column 0 = padding, ignored by callers).
    """

    def encode(self, seqs: Tensor) -> object: ...

    def score(self, query: object, candidates: Tensor | None = None) -> Tensor: ...


def bce_loss(logits: Tensor) -> Tensor:
    """Binary cross-entropy, positive at column 0, sampled negatives after it (paper's BCE loss).

    L = -log σ(s⁺) - Σ_k log(1 - σ(s⁻_k)), averaged over positions; logits (M, 1+K).
    """
    return (F.softplus(-logits[:, 0]) + F.softplus(logits[:, 1:]).sum(-1)).mean()


def sampled_ce_loss(logits: Tensor) -> Tensor:
    """Softmax cross-entropy over the positive (column 0) and K sampled negatives; logits (M, 1+K)."""
    return F.cross_entropy(logits, torch.zeros(len(logits), dtype=torch.long, device=logits.device))


def ce_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Softmax cross-entropy over the whole catalogue; logits (M, N) of the real items 1..N (no padding
    column), targets (M,) item ids in 1..N.

    L = -log(exp(s_target) / Σ_{i=1..N} exp(s_i)), averaged over positions.
    """
    return F.cross_entropy(logits, targets - 1)


def catalogue_logits(scorer: Scorer, query: object) -> Tensor:
    """(B', L', N) logits over the real items. A scorer with `catalogue_scores` (an `Expert`) leaves the
    padding row out of its matmul; for others column 0 of `score(query, None)` is dropped (a copy)."""
    if hasattr(scorer, "catalogue_scores"):
        return scorer.catalogue_scores(query)
    return scorer.score(query, None)[..., 1:]


def select_positions(query: object, mask: Tensor) -> object:
    """Keep the query rows where `mask` (B, L) is True: every leaf (B, L, ...) -> (1, M, ...)."""
    return tree_map(lambda t: t[mask].unsqueeze(0), query)


def recommendation_loss(scorer: Scorer, batch: Batch, kind: LossKind) -> Tensor:
    """The loss of `batch` (every non-padding target position) under `scorer`.

    With `ce` every item is scored anyway, so a scorer with `one_table()` computes its item table(s)
    once for the step."""
    if kind == "ce" and hasattr(scorer, "one_table"):
        with scorer.one_table():
            return _recommendation_loss(scorer, batch, kind)
    return _recommendation_loss(scorer, batch, kind)


def _recommendation_loss(scorer: Scorer, batch: Batch, kind: LossKind) -> Tensor:
    mask = batch.targets != 0  # (B, L)
    query = select_positions(scorer.encode(batch.inputs), mask)  # leaves (1, M, ...)
    targets = batch.targets[mask]  # (M,)
    if kind == "ce":
        return ce_loss(catalogue_logits(scorer, query)[0], targets)  # (M, N)
    if batch.negatives is None:
        raise ValueError(f"loss {kind!r} needs a batch with sampled negatives")
    candidates = torch.cat([targets[:, None], batch.negatives[mask]], -1)  # (M, 1+K)
    logits = scorer.score(query, candidates.unsqueeze(0))[0]  # (M, 1+K)
    return bce_loss(logits) if kind == "bce" else sampled_ce_loss(logits)


def negatives_per_position(kind: LossKind, negatives: int) -> int:
    """How many negatives the batches must carry: bce 1, sampled_ce `model.negatives`, ce 0."""
    return {"bce": 1, "sampled_ce": negatives, "ce": 0}[kind]
