"""An expert = an item-vector module + a sequence backbone, scored by dot product (DESIGN §4, §6).

The item module is anything whose `forward()` returns the (N+1, d) item table with row 0 = padding;
the backbone reads the same table (shared input/output embeddings). Phase 2 swaps in a text-fused
item module; phase 3 composes three experts and a gate. An expert is a *scorer*:
`encode(seqs) -> query` and `score(query, candidates) -> logits`, the interface that the losses,
the training loop and the evaluation use.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class IdEmbedding(nn.Module):
    """The collaborative (ID) item table: `forward() -> (N+1, d)`, row 0 = padding (kept zero)."""

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        nn.init.normal_(self.embedding.weight, std=0.02)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self) -> Tensor:
        return self.embedding.weight


class Expert(nn.Module):
    """Item table + backbone. Sequences are left-padded with 0 (position L-1 = current state)."""

    def __init__(self, items: nn.Module, backbone: nn.Module) -> None:
        super().__init__()
        self.items = items
        self.backbone = backbone

    def item_vectors(self) -> Tensor:
        """(N+1, d) item table (row 0 = padding)."""
        return self.items()

    def user_states(self, seqs: Tensor, table: Tensor | None = None) -> Tensor:
        """(B, L) long item ids, 0 = padding -> (B, L, d); `table` = a precomputed item_vectors()."""
        table = self.item_vectors() if table is None else table
        return self.backbone(table[seqs], seqs != 0)

    def encode(self, seqs: Tensor) -> Tensor:
        """Scorer interface: the query is the (B, L, d) user states."""
        return self.user_states(seqs)

    def score(self, query: Tensor, candidates: Tensor | None = None) -> Tensor:
        """(B, L, d) query x (B, L, K) candidate ids -> (B, L, K) logits; None -> (B, L, N+1) all items."""
        table = self.item_vectors()
        if candidates is None:
            return query @ table.T  # (B, L, N+1)
        return (query.unsqueeze(-2) * table[candidates]).sum(-1)  # (B, L, K)
