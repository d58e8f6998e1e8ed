"""The PAD model (DESIGN §6): a few experts fused per candidate item by a frequency-aware gate.

    score(user, item) = Σ_e w_e(bucket(item)) · <user state_e, item vector_e>

Composed, not inherited: a ModuleDict of experts (any subset of id / align / llm, each an `Expert` =
item module + backbone) and a gate from pad/models/gate.py. It is a *scorer* like one expert:
`encode(seqs)` returns a dict {expert name: (B, L, d) user states} (a query the losses and the
evaluation slice with tree_map), `score(query, candidates | None)` the fused logits.

Inference: inside `with model.cached_items():` (the gate fit; evaluation uses `one_table`, the same tables)
every expert's (N+1, d) item table is computed once (eval mode, no grad) and reused by `encode` (table
lookups) and `score` (one matmul per expert), so a full-ranking pass costs one backbone pass per expert per
user chunk plus the matmuls. The experts' (B, L, N+1) logits are fused one expert at a time: no (B, L, N+1, E)
tensor (except inside the `network` gate, whose hidden layer is computed in row chunks).
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Iterator, Mapping

import torch
from torch import Tensor, nn

from pad.models.expert import Expert
from pad.models.gate import Gate, GlobalGate, NetworkGate

EXPERTS = ("id", "align", "llm")
_NETWORK_CHUNK = 1 << 24  # floats of the network gate's (rows, N+1, hidden) activation per chunk


class PAD(nn.Module):
    """Experts + gate; `item_buckets` (N+1,) long holds each item's frequency bucket (0 = padding);
    `fusion` names the alignment fusion whose text towers the text experts use (saved with the model)."""

    def __init__(self, experts: Mapping[str, Expert], gate: Gate, item_buckets: Tensor, fusion: str = "sum") -> None:
        super().__init__()
        if not experts:
            raise ValueError("PAD needs at least one expert")
        if gate.n_experts != len(experts):
            raise ValueError(f"gate built for {gate.n_experts} experts, got {len(experts)}")
        if len(item_buckets) and int(item_buckets.max()) > gate.n_buckets:
            raise ValueError(f"gate built for {gate.n_buckets} buckets, items go up to bucket {int(item_buckets.max())}")
        self.experts = nn.ModuleDict(dict(experts))
        self.gate = gate
        self.fusion = fusion
        self.register_buffer("item_buckets", item_buckets.detach().long().clone())
        self._tables: dict[str, Tensor] | None = None

    @classmethod
    def single(cls, expert: Expert, item_buckets: Tensor, n_buckets: int, name: str = "id") -> "PAD":
        """One expert with weight 1 for every item: the same scores, plus the cached-table inference."""
        return cls({name: expert}, GlobalGate(1, n_buckets), item_buckets)

    @property
    def names(self) -> list[str]:
        return list(self.experts)

    def encode(self, seqs: Tensor) -> dict[str, Tensor]:
        """(B, L) left-padded item ids -> {expert: (B, L, d) user states}."""
        if self._tables is None:
            return {name: expert.encode(seqs) for name, expert in self.experts.items()}
        return {name: expert.backbone(self._tables[name][seqs], seqs != 0)  # (B, L, d)
                for name, expert in self.experts.items()}

    def expert_logits(self, query: Mapping[str, Tensor], candidates: Tensor | None = None) -> list[Tensor]:
        """Each expert's (B, L, K) logits (candidates (B, L, K)) or (B, L, N+1) (candidates None)."""
        if self._tables is None:
            return [expert.score(query[name], candidates) for name, expert in self.experts.items()]
        out = []
        for name in self.experts:
            table, q = self._tables[name], query[name]  # (N+1, d), (B, L, d)
            out.append(q @ table.T if candidates is None else (q.unsqueeze(-2) * table[candidates]).sum(-1))
        return out

    def score(self, query: Mapping[str, Tensor], candidates: Tensor | None = None) -> Tensor:
        """Fused logits Σ_e w_e(bucket(candidate)) · logit_e: (B, L, K), or (B, L, N+1) for all items."""
        return self.fuse(self.expert_logits(query, candidates), candidates)

    def shared_scores(self, query: Mapping[str, Tensor], items: Tensor) -> Tensor:
        """(B, L, d) queries x (K,) item ids shared by every position -> (B, L, K) fused logits (one matmul per
        expert: `Expert.shared_scores`), for `shared_ce` through the fused score (pad.train.fused_llm)."""
        return self.fuse([expert.shared_scores(query[name], items) for name, expert in self.experts.items()], items)

    def fuse(self, logits: list[Tensor], candidates: Tensor | None = None) -> Tensor:
        """The experts' logits (in `names` order, each (B, L, K) or (B, L, N+1)) -> the gate's fused logits."""
        buckets = self.item_buckets if candidates is None else self.item_buckets[candidates]
        if not isinstance(self.gate, NetworkGate):
            return self.gate(logits, buckets)
        return self._network_fuse(logits, buckets)

    def _network_fuse(self, logits: list[Tensor], buckets: Tensor) -> Tensor:
        """The network gate over row chunks, so its (rows, K, hidden) activation stays bounded."""
        shape, k = logits[0].shape, logits[0].shape[-1]
        flat = [x.reshape(-1, k) for x in logits]  # E × (B·L, K)
        flat_buckets = buckets.expand(shape).reshape(-1, k)  # (B·L, K)
        rows = max(1, _NETWORK_CHUNK // (k * self.gate.from_logits.out_features))
        parts = [self.gate([x[i:i + rows] for x in flat], flat_buckets[i:i + rows])
                 for i in range(0, flat[0].shape[0], rows)]
        return torch.cat(parts).reshape(shape)

    def gate_weights(self) -> Tensor:
        """(B, E) expert weights for buckets 1..B (network gate: with the experts' logits at 0)."""
        with torch.no_grad():
            return self.gate.weights(torch.arange(1, self.gate.n_buckets + 1, device=self.item_buckets.device)).cpu()

    @contextmanager
    def one_table(self) -> Iterator["PAD"]:
        """A full-softmax training step: every expert computes its item table once (with gradients)."""
        with ExitStack() as stack:
            for expert in self.experts.values():
                stack.enter_context(expert.one_table())
            yield self

    @contextmanager
    def cached_items(self) -> Iterator["PAD"]:
        """Inference with every expert's item table computed once (eval mode, no grad); restores the mode."""
        was_training = self.training
        self.eval()
        with torch.no_grad():
            self._tables = {name: expert.item_vectors().detach() for name, expert in self.experts.items()}
        try:
            yield self
        finally:
            self._tables = None
            self.train(was_training)
