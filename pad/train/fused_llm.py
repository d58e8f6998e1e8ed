"""`finetune.llm_objective: fused`: train the LLM expert through PAD's fused score, so it learns what the
fixed ID and alignment experts lack instead of a second copy of what they know.

With `alone` (the default) the LLM expert minimises the recommendation loss of its own logits; it starts as
the alignment expert's text view, so the two end up alike and the gate has little to combine. With
`fused` the loss is that of PAD's fused logits Σ_e w_e(bucket) · logit_e (the paper trains its phase 3
on the fused score too, DESIGN §6), with the ID and alignment experts fixed (no gradients, eval mode: no dropout) and the gate at
its prior (`reference_init`, not trained here): only the LLM expert moves, towards the residual of the
other two (a boosting step). Early stopping ranks PAD's fused scores. The gate is then fitted on the
validation split as before (`pad.train.finetune`).
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

from torch import Tensor, nn

from pad.models.pad import PAD


class FusedTraining(nn.Module):
    """A scorer over `pad` whose trainable part is `pad.experts[trained]` alone: `train()` switches only that
    expert (the others stay in eval mode); `encode`, `score`, `shared_scores` and `one_table` are PAD's."""

    def __init__(self, pad: PAD, trained: str = "llm") -> None:
        super().__init__()
        self.pad = pad
        self.trained = trained

    def train(self, mode: bool = True) -> "FusedTraining":
        self.training = mode
        self.pad.eval()
        self.pad.experts[self.trained].train(mode)
        return self

    def encode(self, seqs: Tensor) -> dict[str, Tensor]:
        return self.pad.encode(seqs)

    def score(self, query: Mapping[str, Tensor], candidates: Tensor | None = None) -> Tensor:
        return self.pad.score(query, candidates)

    def shared_scores(self, query: Mapping[str, Tensor], items: Tensor) -> Tensor:
        return self.pad.shared_scores(query, items)

    @contextmanager
    def one_table(self) -> Iterator["FusedTraining"]:
        with self.pad.one_table():
            yield self


@contextmanager
def only_trainable(pad: PAD, trained: str = "llm") -> Iterator[FusedTraining]:
    """`pad` wrapped for fused training, every parameter outside `pad.experts[trained]` frozen meanwhile
    (restored after: the gate is fitted later)."""
    keep = {p for p in pad.experts[trained].parameters()}
    frozen = [p for p in pad.parameters() if p not in keep and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield FusedTraining(pad, trained)
    finally:
        for p in frozen:
            p.requires_grad_(True)
