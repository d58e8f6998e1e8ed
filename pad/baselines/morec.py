"""MoRec: a text-only item encoder, no ID table: item vector = tower(frozen text embedding).

Yuan et al., "Where to Go Next for Recommender Systems? ID- vs. Modality-based Recommender Models Revisited",
SIGIR 2023 (public code westlake-repl/IDvs.MoRec). Like PAD's LLM expert (DESIGN §6), trained from scratch.
Departures: MoRec's best variant fine-tunes the text encoder end to end (BERT/RoBERTa); here the encoder is
the pipeline's frozen one (their two-stage "TS" setting, which they report as weaker) and only the tower
(`baselines.morec_tower`: one Linear by default, or the deep TextMLP) and the backbone train. The Linear tower was
chosen on validation: on Prime Pantry (MiniLM, SASRec, `ce`, lr 0.002) the deep, dropped-out TextMLP learns too
slowly for early stopping (valid nDCG@10 0.38 at its best epoch 3, stopped at 6, the training loss still
falling), one Linear reaches 2.86.
"""
from __future__ import annotations

from torch import Tensor

from pad.config import BaselinesConfig, ModelConfig
from pad.models import Expert, build_backbone
from pad.models.text import TextItems


def build(text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig) -> Expert:
    return Expert(TextItems(text_emb, model_cfg.dim, model_cfg.dropout, tower=cfg.morec_tower),
                  build_backbone(model_cfg))
