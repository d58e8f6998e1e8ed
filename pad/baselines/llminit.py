"""LLMInit: the ID table initialised from the text embeddings, then trained as a plain ID model (SASRec).

Zhang et al., "LLMInit: A Free Lunch from Large Language Models for Selective Initialization of
Recommendation" (public code DavidZWZ/LLMInit, on RecBole); the semantic-initialisation ("SI") variant of
AlphaFuse's code (Hugo-Chinn/AlphaFuse, `Item_Embedding.init_ID_embedding(..., "language_embeddings")`).
The table starts as the items' whitened principal coordinates of the text (`pad.baselines.whiten`, as
AlphaFuse's code), scaled to `baselines.text_std` per coordinate; afterwards everything trains and the text is
not used again. Departures: LLMInit selects `d` of the raw LLM dimensions (randomly, uniformly spaced or by
variance); the principal directions used here are the rotation-aware form of its variance selection.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pad.baselines.whiten import whitened_pca
from pad.config import BaselinesConfig, ModelConfig
from pad.models import Expert, IdEmbedding, build_backbone


def build(text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig) -> Expert:
    ids = IdEmbedding(text_emb.shape[0] - 1, model_cfg.dim, sparse=model_cfg.item_updates == "rows")
    with torch.no_grad():
        ids.embedding.weight.copy_(whitened_pca(text_emb, model_cfg.dim, cfg.text_std))  # row 0 stays zero
    return Expert(ids, build_backbone(model_cfg))
