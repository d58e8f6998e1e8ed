"""SMEM: shared plus modality-specific item embeddings, one expert per modality, no alignment loss.

The PAD paper's own baseline (PAD, SIGIR 2025, §5.1, Table 2; no script for it in Applied-Machine-Learning-Lab/PAD),
after STEM (Su et al., "STEM: Unleashing the Power of Embeddings for Multi-task Recommendation", AAAI 2024),
with the modalities in the role of STEM's tasks. Here:
  - a shared ID table s, an ID-specific ID table e_id and a text-specific Linear(D → d) of the frozen text;
  - the ID expert's item vector is s + e_id, the text expert's is s + Linear(e_text), each read by its own
    `model.*` backbone (h_id, h_text);
  - a score is the gate-free sum of the two experts' scores: h_id·(s + e_id) + h_text·(s + Linear(e_text)),
    i.e. the `Expert` of item vector [s + e_id ; s + Linear(e_text)] and user state [h_id ; h_text];
  - trained jointly, from scratch, with `model.loss` on that summed score and nothing else (no alignment or
    other auxiliary term: the harness's plain recommendation loss).
s gets the gradients of both experts, each specific part only its own expert's. Departures: STEM embeds the
(user and item) features of one sample for several tasks (CTR, etc.); a task's tower reads the shared
embeddings and ALL tasks' specific ones, with the other tasks' specific ones behind a stop-gradient (its
"all forward, task-specific backward"), concatenated, and every task has its own loss. Here there is one task
(the next item) and two modalities; an expert reads the shared part and its own modality's part only, added
(not concatenated, so every vector is d-dim like the other baselines'), and one loss on the summed score.
All tables start like phase 1's (normal, std 0.02); the text tower is one Linear, as Hybrid's.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pad.baselines.pair import PairBackbone
from pad.config import BaselinesConfig, ModelConfig
from pad.models import Expert, IdEmbedding, build_backbone
from pad.models.text import TextItems


class SharedSpecificItems(nn.Module):
    """[s + e_id ; s + Linear(e_text)]: `forward()` -> (N+1, 2d), `forward(ids)` -> (*ids.shape, 2d); row 0 zero."""

    def __init__(self, text_emb: Tensor, dim: int, dropout: float, sparse: bool = False) -> None:
        super().__init__()
        n_items = text_emb.shape[0] - 1
        self.shared = IdEmbedding(n_items, dim, sparse=sparse)
        self.id_specific = IdEmbedding(n_items, dim, sparse=sparse)
        self.text_specific = TextItems(text_emb, dim, dropout, tower="linear")  # zero on padding

    def id_view(self, ids: Tensor | None = None) -> Tensor:
        return self.shared(ids) + self.id_specific(ids)  # (..., d)

    def text_view(self, ids: Tensor | None = None) -> Tensor:
        return self.shared(ids) + self.text_specific(ids)  # (..., d)

    def forward(self, ids: Tensor | None = None) -> Tensor:
        return torch.cat([self.id_view(ids), self.text_view(ids)], -1)  # (..., 2d)


def build(text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig) -> Expert:
    items = SharedSpecificItems(text_emb, model_cfg.dim, model_cfg.dropout, sparse=model_cfg.item_updates == "rows")
    return Expert(items, PairBackbone(build_backbone(model_cfg), build_backbone(model_cfg)))
