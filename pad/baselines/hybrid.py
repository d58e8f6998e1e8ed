"""Hybrid: item vector = ID embedding + Linear(frozen text embedding), trained from scratch end to end.

The common "ID + modality feature" baseline of the PAD paper's Table 2 (PAD, SIGIR 2025, §5.1; its public code
Applied-Machine-Learning-Lab/PAD has no separate script for it). DESIGN §12 and §4 (the prototype measured on
Prime Pantry: ID + Linear(MiniLM), +36% HR@10 on cold items, -5% on warm). Departures: none known beyond the
shared protocol; the text tower is one Linear (no dropout, as the alignment expert's `sum` fusion), the text
embeddings stay frozen (a buffer, never a parameter) and the ID table starts like phase 1's (normal, std 0.02).
"""
from __future__ import annotations

from torch import Tensor, nn

from pad.config import BaselinesConfig, ModelConfig
from pad.models import Expert, IdEmbedding, build_backbone
from pad.models.text import TextItems


class HybridItems(nn.Module):
    """e_id + Linear(e_text): `forward()` -> (N+1, d) with row 0 zero; `forward(ids)` -> (*ids.shape, d)."""

    def __init__(self, text_emb: Tensor, dim: int, dropout: float, sparse: bool = False) -> None:
        super().__init__()
        self.ids = IdEmbedding(text_emb.shape[0] - 1, dim, sparse=sparse)
        self.text = TextItems(text_emb, dim, dropout, tower="linear")

    def forward(self, ids: Tensor | None = None) -> Tensor:
        return self.ids(ids) + self.text(ids)  # both zero on padding


def build(text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig) -> Expert:
    return Expert(HybridItems(text_emb, model_cfg.dim, model_cfg.dropout, sparse=model_cfg.item_updates == "rows"),
                  build_backbone(model_cfg))
