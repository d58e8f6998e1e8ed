"""An expert = an item-vector module + a sequence backbone, scored by dot product (DESIGN §4, §6).

The item module is anything whose `forward(ids=None)` returns the (N+1, d) item table (row 0 =
padding, all zeros), or with `ids` just those rows (shape ids.shape + (d,)); the backbone reads the
same vectors that score the items (shared input/output embeddings). Phase 2 swaps in a text-fused
item module; phase 3 composes three experts and a gate. An expert is a *scorer*:
`encode(seqs) -> query` and `score(query, candidates) -> logits`, the interface that the losses,
the training loop and the evaluation use.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import Tensor, nn


class IdEmbedding(nn.Module):
    """The collaborative (ID) item table: `forward() -> (N+1, d)`, row 0 = padding (kept zero);
    `forward(ids)` -> the rows of `ids`. With `sparse`, a lookup's gradient is sparse (just the rows of
    `ids`: `model.item_updates: rows`), for an optimizer that updates only those rows."""

    def __init__(self, n_items: int, dim: int, sparse: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_items + 1, dim, padding_idx=0, sparse=sparse)
        nn.init.normal_(self.embedding.weight, std=0.02)
        with torch.no_grad():
            self.embedding.weight[0].zero_()

    def forward(self, ids: Tensor | None = None) -> Tensor:
        return self.embedding.weight if ids is None else self.embedding(ids)


class Expert(nn.Module):
    """Item table + backbone. Sequences are left-padded with 0 (position L-1 = current state)."""

    def __init__(self, items: nn.Module, backbone: nn.Module) -> None:
        super().__init__()
        self.items = items
        self.backbone = backbone
        self._table: Tensor | None = None

    def item_vectors(self) -> Tensor:
        """(N+1, d) item table (row 0 = padding)."""
        return self.items() if self._table is None else self._table

    def user_states(self, seqs: Tensor) -> Tensor:
        """(B, L) long item ids, left-padded with 0 -> (B, L, d) user states."""
        rows = self.items(seqs) if self._table is None else self._table[seqs]  # (B, L, d)
        return self.backbone(rows, seqs != 0)

    @contextmanager
    def one_table(self) -> Iterator["Expert"]:
        """A training step that needs the whole table (full-softmax loss) computes it once, with
        gradients, and reads both the input rows and the scores from it: for text item modules this
        halves the MLP work (the input rows would otherwise run the MLP again, padding included)."""
        self._table = self.items()
        try:
            yield self
        finally:
            self._table = None

    def encode(self, seqs: Tensor) -> Tensor:
        """Scorer interface: the query is the (B, L, d) user states."""
        return self.user_states(seqs)

    def score(self, query: Tensor, candidates: Tensor | None = None) -> Tensor:
        """(B, L, d) query x (B, L, K) candidate ids -> (B, L, K) logits; None -> (B, L, N+1) all items."""
        if candidates is None:
            return query @ self.item_vectors().T  # (B, L, N+1)
        return (query.unsqueeze(-2) * self.items(candidates)).sum(-1)  # (B, L, K)

    def shared_scores(self, query: Tensor, items: Tensor) -> Tensor:
        """(B, L, d) query x (K,) item ids shared by every position -> (B, L, K) logits (one matmul, and only
        the K rows are computed: a text item module runs its tower on K items, not the catalogue)."""
        return query @ self.items(items).T  # (B, L, d) x (d, K)

    def catalogue_table(self) -> Tensor:
        """(N, d) vectors of the real items 1..N (the rows every catalogue score is a dot product with)."""
        return self.item_vectors()[1:]

    def catalogue_scores(self, query: Tensor) -> Tensor:
        """(B, L, d) query -> (B, L, N) logits of the real items 1..N (the padding row left out of the
        matmul, so a full-softmax loss needs no masked copy of its (B, L, N+1) logits)."""
        return query @ self.item_vectors()[1:].T  # (B, L, N)
