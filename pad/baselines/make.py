"""MAKE: an LLM-specific (text) expert pre-trained for recommendation on its own, then fused with an ID expert
and the two trained together.

Sheng et al., "Enhancing Taobao Display Advertising with Multimodal Representations: Challenges, Approaches and
Insights", CIKM 2024 (arXiv 2407.19467), its Multimodal Knowledge Extractor (MAKE); no public code. Their reading:
ID embeddings overfit after one epoch while the parameters that read multimodal representations need many, so
MAKE decouples the two: the module over the multimodal representations is first trained on the recommendation
task for several epochs on its own, then its knowledge joins the ID-based model, which trains as usual. The PAD
paper (SIGIR 2025, Table 2) uses it as "an LLM-specific expert pre-trained MoRec-style, fused with the ID expert"
(DESIGN §12). Here, two steps (`pretrain`, the harness's PRETRAINS hook, runs the first):
  1. pre-training: the text expert = tower(frozen text embedding) (`baselines.make_tower`: one Linear by default,
     or MoRec's deep TextMLP) + its own `model.backbone`, trained alone with `model.loss` under the baselines'
     training settings (early stopping on validation nDCG, best weights kept): MoRec, from scratch
     (`text_expert`);
  2. fusion: an ID expert (ID table + its own backbone, from scratch, as phase 1's SASRec) joins, and the two
     train jointly; score(u, i) = <h_id(u), e_id(i)> + <h_text(u), tower(e_text(i))>, i.e. one `Expert` whose
     item vector is [e_id ; tower(e_text)] and whose backbone runs each half through its own backbone.
Departures: the paper ranks with an MLP CTR model into which MAKE's output enters as a feature (and the ID model
trains one epoch); here both parts are sequence experts fused by the plain sum of their scores, with no learned
weight (a per-expert scale is the experts' own norm; a per-item, frequency-aware weight is PAD's contribution,
not MAKE's); the text expert keeps training in the fusion step, at the same learning rate; the text
representation is the pipeline's frozen encoder (the paper first pre-trains its image/text representations by
semantic-aware contrastive learning). The Linear tower is the default because on Prime Pantry (MiniLM, SASRec,
`ce`) the text expert pre-trained with it reached validation nDCG@10 2.59 after 2 epochs against 0.37 with the
TextMLP (which, as MoRec's tower, fails to learn there: RESULTS.md, Table 2).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from typing import Callable

from pad.baselines.pair import PairBackbone
from pad.config import BaselinesConfig, ModelConfig
from pad.models import Expert, IdEmbedding, build_backbone
from pad.models.text import TextItems


class PairItems(nn.Module):
    """[e_id ; tower(e_text)]: `forward()` -> (N+1, 2d), `forward(ids)` -> (*ids.shape, 2d); row 0 zero."""

    def __init__(self, ids: IdEmbedding, text: TextItems) -> None:
        super().__init__()
        self.ids = ids
        self.text = text

    def forward(self, ids: Tensor | None = None) -> Tensor:
        return torch.cat([self.ids(ids), self.text(ids)], -1)  # both zero on padding


def build(text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig) -> Expert:
    items = PairItems(IdEmbedding(text_emb.shape[0] - 1, model_cfg.dim, sparse=model_cfg.item_updates == "rows"),
                      TextItems(text_emb, model_cfg.dim, model_cfg.dropout, tower=cfg.make_tower))
    return Expert(items, PairBackbone(build_backbone(model_cfg), build_backbone(model_cfg)))


def text_expert(expert: Expert) -> Expert:
    """The fused expert's text half as an expert of its own (its modules, shared, not copied): what the
    pre-training step trains; training it trains the fused expert's text tower and text backbone in place."""
    return Expert(expert.items.text, expert.backbone.text)


def pretrain(expert: Expert, text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig,
             fit_alone: Callable[[Expert], None]) -> None:
    """The harness's pre-training hook: step 1, the text expert trained alone for recommendation (in place)."""
    fit_alone(text_expert(expert))
