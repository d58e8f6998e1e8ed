"""Frequency-aware gates that fuse the experts' logits per candidate item (DESIGN §6, paper Eq. of phase 3).

A gate takes the experts' logits for the same candidates, as a sequence of E tensors of shape (..., K)
(or one stacked (E, ..., K) tensor), and the candidates' frequency buckets (..., K) or (K,), values
1..B (warmest = 1; 0 is accepted for the padding item), and returns fused logits (..., K):

    fused = Σ_e w_e(bucket(item)) · logit_e

`weights(bucket_ids)` gives w as (*bucket_ids.shape, E); the weights are positive and sum to 1 over
experts. Memory: `bucket` and `global` never stack the experts: beyond the inputs they hold one (..., K)
accumulator (plus E products when autograd is on), so full-catalogue scoring of (B·L, N+1) logits costs
O(E·B·L·N) floats at most. `network` needs a (..., K, hidden) activation: score it in user chunks.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GateKind = Literal["bucket", "network", "global"]
Logits = Sequence[Tensor] | Tensor


def _fuse(logits: Logits, weights: Tensor) -> Tensor:
    """Σ_e weights[..., e] · logits[e], one expert at a time (no (E, ..., K) stack). Each expert's weights are
    made contiguous first and the sum accumulates in place: the same floats in the same order as
    `fused = fused + logits[e] * w_e`, about 8x faster on a 634 x 105,799 ranking chunk (a strided weight
    column and a fresh (..., K) sum per expert cost most of the time; benchmarks/scale.md, stop 25)."""
    per_expert = weights.movedim(-1, 0).contiguous()  # (E, ...): one contiguous weight block per expert
    fused = logits[0] * per_expert[0]
    for e in range(1, len(logits)):
        fused += logits[e] * per_expert[e]  # fused is this function's own tensor: no caller's data changes
    return fused


def _check(logits: Logits, n_experts: int) -> None:
    if len(logits) != n_experts:
        raise ValueError(f"gate built for {n_experts} experts got logits of {len(logits)}")


class BucketGate(nn.Module):
    """Reference-code gate: per expert a learnable scalar per bucket; w = sigmoid, normalised over experts.

    `init` (E, B+1) sets the raw scalars (column 0 is the padding slot); default zeros = equal weights.
    """

    def __init__(self, n_experts: int, n_buckets: int, init: Tensor | None = None):
        super().__init__()
        self.n_experts, self.n_buckets = n_experts, n_buckets
        raw = torch.zeros(n_experts, n_buckets + 1) if init is None else init.detach().float().clone()
        if raw.shape != (n_experts, n_buckets + 1):
            raise ValueError(f"gate init must be ({n_experts}, {n_buckets + 1}), got {tuple(raw.shape)}")
        self.raw = nn.Parameter(raw)

    def table(self) -> Tensor:
        """(B+1, E) expert weights per bucket (row 0 = padding slot)."""
        w = torch.sigmoid(self.raw)  # (E, B+1)
        return (w / w.sum(0, keepdim=True)).T

    def weights(self, bucket_ids: Tensor) -> Tensor:
        return self.table()[bucket_ids]  # (*bucket_ids.shape, E)

    def forward(self, logits: Logits, bucket_ids: Tensor) -> Tensor:
        _check(logits, self.n_experts)
        return _fuse(logits, self.weights(bucket_ids))


class GlobalGate(nn.Module):
    """Ablation "w/o frequency-aware gating": one learned weight per expert, the same for every item."""

    def __init__(self, n_experts: int, n_buckets: int = 1):
        super().__init__()
        self.n_experts, self.n_buckets = n_experts, n_buckets  # n_buckets only sizes `gate_table`
        self.raw = nn.Parameter(torch.zeros(n_experts))

    def expert_weights(self) -> Tensor:
        w = torch.sigmoid(self.raw)  # same parametrisation as BucketGate, without the bucket axis
        return w / w.sum()  # (E,)

    def weights(self, bucket_ids: Tensor) -> Tensor:
        return self.expert_weights().expand(*bucket_ids.shape, self.n_experts)  # (*bucket_ids.shape, E) view

    def forward(self, logits: Logits, bucket_ids: Tensor) -> Tensor:
        _check(logits, self.n_experts)
        return _fuse(logits, self.expert_weights())  # item-independent: E scalars


class NetworkGate(nn.Module):
    """Paper's gating network: MLP([bucket embedding ; experts' logits]) → softmax over experts.

    The first layer is split as W_b·emb(bucket) + W_l·logits so the bucket half is a (B+1, hidden)
    table; the output layer starts at zero, so the gate starts as a plain average of the experts.
    """

    def __init__(self, n_experts: int, n_buckets: int, hidden: int = 16):
        super().__init__()
        self.n_experts, self.n_buckets = n_experts, n_buckets
        self.bucket_emb = nn.Embedding(n_buckets + 1, hidden)
        self.from_bucket = nn.Linear(hidden, hidden)
        self.from_logits = nn.Linear(n_experts, hidden, bias=False)
        self.out = nn.Linear(hidden, n_experts)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def weights(self, bucket_ids: Tensor, logits: Logits | None = None) -> Tensor:
        """(*shape, E) weights; without logits the experts' outputs count as 0 (the bucket-only part)."""
        h = self.from_bucket(self.bucket_emb(bucket_ids))  # (*bucket_ids.shape, hidden)
        if logits is not None:
            w = self.from_logits.weight  # (hidden, E)
            for e in range(len(logits)):
                h = h + logits[e].unsqueeze(-1) * w[:, e]  # (..., K, hidden)
        return torch.softmax(self.out(F.gelu(h)), dim=-1)

    def forward(self, logits: Logits, bucket_ids: Tensor) -> Tensor:
        _check(logits, self.n_experts)
        return _fuse(logits, self.weights(bucket_ids, logits))


Gate = BucketGate | NetworkGate | GlobalGate


def reference_init(experts: Sequence[str], n_buckets: int) -> Tensor:
    """A (E, B+1) BucketGate prior like the reference code's: the ID expert's raw scalar falls 1 → 0 from
    warm to cold buckets, the LLM expert's rises 0 → 1, the alignment expert's stays at 0.5."""
    ramp = torch.linspace(1.0, 0.0, n_buckets + 1)
    rows = {"id": ramp, "llm": 1.0 - ramp, "align": torch.full((n_buckets + 1,), 0.5)}
    unknown = set(experts) - rows.keys()
    if unknown:
        raise ValueError(f"unknown experts {sorted(unknown)}: use id, align, llm")
    return torch.stack([rows[e] for e in experts])


def build_gate(kind: GateKind, n_experts: int, n_buckets: int, experts: Sequence[str] | None = None) -> Gate:
    """The `finetune.gate` module; `experts` (names in logit order) gives the bucket gate the reference prior."""
    if kind == "bucket":
        return BucketGate(n_experts, n_buckets, None if experts is None else reference_init(experts, n_buckets))
    if kind == "network":
        return NetworkGate(n_experts, n_buckets)
    if kind == "global":
        return GlobalGate(n_experts, n_buckets)
    raise ValueError(f"unknown gate {kind!r}: use bucket, network or global")


PIN = 100.0  # sigmoid(-100) = 3.7e-44, exp(-200) underflows: the other experts' weights vanish in float32


@torch.no_grad()
def pin_gate(gate: Gate, expert: int) -> None:
    """Set the gate to weight 1 for expert number `expert` on every item (0 for the others): PAD then
    ranks exactly as that expert alone (`pad.train.gate.check_gate`'s fallback)."""
    if isinstance(gate, NetworkGate):
        gate.from_logits.weight.zero_()
        gate.out.weight.zero_()
        gate.out.bias.fill_(-PIN)
        gate.out.bias[expert] = PIN
    else:
        gate.raw.fill_(-PIN)  # bucket (E, B+1) or global (E,)
        gate.raw[expert] = PIN


@torch.no_grad()
def gate_table(gate: Gate) -> Tensor:
    """(B, E) expert weights for buckets 1..B, for the evaluate stage's plot (network gate: logits = 0)."""
    return gate.weights(torch.arange(1, gate.n_buckets + 1)).detach().cpu()
