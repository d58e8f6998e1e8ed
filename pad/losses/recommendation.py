"""The recommendation loss shared by every phase (DESIGN §4): `bce`, `ce`, `sampled_ce` or `shared_ce`.

The pure functions take logits; `recommendation_loss` computes them from any *scorer*
(`encode(seqs) -> query`, `score(query, candidates | None) -> logits`, see pad/models/expert.py),
so the same code trains one expert, the alignment expert or the gated mixture of phase 3.
"""
from __future__ import annotations

from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_leaves, tree_map

from pad.train.data import Batch

LossKind = Literal["bce", "ce", "sampled_ce", "shared_ce"]


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


def shared_ce_loss(positive: Tensor, negative: Tensor, hits: Tensor, n_items: int) -> Tensor:
    """Sampled softmax with negatives shared by the batch (Jean et al. 2015; Covington et al. 2016): softmax
    cross-entropy over each position's target and the K items drawn once, uniformly, for the whole batch.
    positive (M,) target logits, negative (M, K) logits of the shared items, hits (M, K) True where a shared
    item is that position's target (an accidental hit: left out of its softmax), n_items N the catalogue.
    The K' = K - hits drawn non-targets stand for all N - 1: their logits get log((N - 1) / K') (the log-Q
    correction of uniform draws), so the sampled partition function estimates the full one, and with every
    item drawn the loss is `ce`'s.

    L = -log(exp(s⁺) / (exp(s⁺) + (N - 1) / K' · Σ_{k: not a hit} exp(s_k))), averaged over positions.
    """
    kept = negative.shape[1] - hits.sum(1, keepdim=True)  # (M, 1) K'
    correction = torch.log((n_items - 1) / kept.clamp(min=1).to(negative.dtype))  # (M, 1)
    logits = torch.cat([positive[:, None], (negative + correction).masked_fill(hits, -torch.inf)], 1)  # (M, 1+K)
    return sampled_ce_loss(logits)


def ce_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Softmax cross-entropy over the whole catalogue; logits (M, N) of the real items 1..N (no padding
    column), targets (M,) item ids in 1..N.

    L = -log(exp(s_target) / Σ_{i=1..N} exp(s_i)), averaged over positions.
    """
    return F.cross_entropy(logits, targets - 1)


# Above this many (positions × items) logits, `ce` runs item chunk by item chunk (`chunked_ce_loss`):
# 2**26 fp32 logits = 256 MB, whatever the catalogue. Below it (Prime Pantry: ~2,000 positions × 8,347 items)
# the one-matmul path is kept, which is faster and gives today's numbers to the bit.
CE_CHUNK_LOGITS = 2**26


class _ChunkedCE(torch.autograd.Function):
    """Full-softmax cross-entropy without holding the (M, N) logits: the forward pass keeps a running
    log-sum-exp over item chunks, the backward pass recomputes each chunk's logits. Memory: (M, chunk)
    logits at a time plus the inputs and their gradients. Gradients (L = mean_m [lse_m - s_m,t]):
    dL/dh_m = (Σ_i p_mi e_i - e_t) / M,  dL/de_i = (Σ_m p_mi h_m - Σ_{m: t_m = i} h_m) / M."""

    @staticmethod
    def forward(ctx, h: Tensor, table: Tensor, targets: Tensor, chunk: int) -> Tensor:
        lse = torch.full((len(h),), -torch.inf, dtype=h.dtype, device=h.device)  # (M,)
        for start in range(0, len(table), chunk):
            lse = torch.logaddexp(lse, torch.logsumexp(h @ table[start:start + chunk].T, 1))  # (M, C) -> (M,)
        target_logit = (h * table[targets]).sum(1)  # (M,)
        ctx.save_for_backward(h, table, targets, lse)
        ctx.chunk = chunk
        return (lse - target_logit).mean()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        h, table, targets, lse = ctx.saved_tensors
        scale = grad / len(h)
        grad_h = -table[targets]  # (M, d)
        grad_table = torch.zeros_like(table).index_add_(0, targets, -h)  # (N, d)
        for start in range(0, len(table), ctx.chunk):
            rows = table[start:start + ctx.chunk]  # (C, d)
            p = torch.exp(h @ rows.T - lse[:, None])  # (M, C) softmax probabilities
            grad_h += p @ rows
            grad_table[start:start + ctx.chunk] += p.T @ h
        return grad_h * scale, grad_table * scale, None, None


def chunked_ce_loss(h: Tensor, table: Tensor, targets: Tensor, chunk: int) -> Tensor:
    """`ce_loss` of the logits h @ table.T, computed `chunk` items at a time: h (M, d) position states,
    table (N, d) the real items' vectors, targets (M,) item ids in 1..N. Same value and gradients as
    `ce_loss(h @ table.T, targets)` up to float rounding; memory (M, chunk) instead of (M, N)."""
    return _ChunkedCE.apply(h, table, targets - 1, chunk)


def catalogue_logits(scorer: Scorer, query: object) -> Tensor:
    """(B', L', N) logits over the real items. A scorer with `catalogue_scores` (an `Expert`) leaves the
    padding row out of its matmul; for others column 0 of `score(query, None)` is dropped (a copy)."""
    if hasattr(scorer, "catalogue_scores"):
        return scorer.catalogue_scores(query)
    return scorer.score(query, None)[..., 1:]


def shared_scores(scorer: Scorer, query: object, items: Tensor) -> Tensor:
    """(1, M, K) logits of every selected position against the same K `items`. A scorer with `shared_scores`
    (an `Expert`: one (M, d) x (d, K) matmul) computes them directly; others get the K ids per position."""
    if hasattr(scorer, "shared_scores"):
        return scorer.shared_scores(query, items)
    m = tree_leaves(query)[0].shape[1]
    return scorer.score(query, items.expand(1, m, -1))  # (1, M, K)


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
        if hasattr(scorer, "catalogue_table"):
            table = scorer.catalogue_table()  # (N, d); computed once per step under one_table()
            if len(targets) * len(table) > CE_CHUNK_LOGITS:  # never (M, N) logits at once
                return chunked_ce_loss(query[0], table, targets, max(1, CE_CHUNK_LOGITS // len(targets)))
        return ce_loss(catalogue_logits(scorer, query)[0], targets)  # (M, N)
    if batch.negatives is None:
        raise ValueError(f"loss {kind!r} needs a batch with sampled negatives")
    if kind == "shared_ce":
        shared = batch.negatives  # (K,) drawn once for the batch
        positive = scorer.score(query, targets[None, :, None])[0, :, 0]  # (M,)
        return shared_ce_loss(positive, shared_scores(scorer, query, shared)[0], targets[:, None] == shared,
                              batch.n_items)
    candidates = torch.cat([targets[:, None], batch.negatives[mask]], -1)  # (M, 1+K)
    logits = scorer.score(query, candidates.unsqueeze(0))[0]  # (M, 1+K)
    return bce_loss(logits) if kind == "bce" else sampled_ce_loss(logits)


def negatives_per_position(kind: LossKind, negatives: int) -> int:
    """How many negatives the batches must carry: bce 1, sampled_ce and shared_ce `model.negatives` (per
    position, or per batch for shared_ce: `shares_negatives`), ce 0."""
    return {"bce": 1, "sampled_ce": negatives, "shared_ce": negatives, "ce": 0}[kind]


def shares_negatives(kind: LossKind) -> bool:
    """True when one draw of negatives serves the whole batch (`shared_ce`)."""
    return kind == "shared_ce"
