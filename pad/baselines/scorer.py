"""A scorer over user states a loss function has already computed for its step (DisCo's chunks, LLM-ESR's
student): the recommendation loss then reuses them instead of encoding the batch a second time."""
from __future__ import annotations

from torch import Tensor

from pad.models import Expert


class KnownStates:
    """`expert` scored with the step's `states` (B, L, d) and its item vectors, both restricted to the
    coordinates `part` (all by default): the recommendation loss of this scorer is that of the part alone."""

    def __init__(self, expert: Expert, states: Tensor, part: slice = slice(None)) -> None:
        self.expert, self.states, self.part = expert, states, part

    def encode(self, seqs: Tensor) -> Tensor:
        return self.states[..., self.part]  # (B, L, c): the states of the step's inputs

    def catalogue_table(self) -> Tensor:
        return self.expert.catalogue_table()[:, self.part]  # (N, c)

    def catalogue_scores(self, query: Tensor) -> Tensor:
        return query @ self.catalogue_table().T  # (B, L, N)

    def score(self, query: Tensor, candidates: Tensor | None = None) -> Tensor:
        if candidates is None:
            return query @ self.expert.item_vectors()[:, self.part].T  # (B, L, N+1)
        return (query.unsqueeze(-2) * self.expert.items(candidates)[..., self.part]).sum(-1)  # (B, L, K)
