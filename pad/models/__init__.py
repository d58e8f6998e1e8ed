"""Sequence backbones (SASRec, GRU4Rec, Caser) and the expert = item table + backbone (DESIGN §4)."""
from __future__ import annotations

from torch import nn

from pad.config import ModelConfig
from pad.models.caser import Caser
from pad.models.expert import Expert, IdEmbedding
from pad.models.gru4rec import GRU4Rec
from pad.models.sasrec import SASRec

CASER_WINDOW = 5  # Caser's L: the items each convolution sees (Tang & Wang 2018 use 5)

__all__ = ["Caser", "Expert", "GRU4Rec", "IdEmbedding", "SASRec", "build_backbone", "build_id_expert"]


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """The backbone named by `model.backbone`, sized by `model.*`."""
    if cfg.backbone == "sasrec":
        return SASRec(cfg.dim, cfg.blocks, cfg.heads, cfg.dropout, cfg.max_len)
    if cfg.backbone == "gru4rec":
        return GRU4Rec(cfg.dim, cfg.blocks, cfg.dropout)
    if cfg.backbone == "caser":
        return Caser(cfg.dim, cfg.dropout, window=min(CASER_WINDOW, cfg.max_len))
    raise ValueError(f"unknown backbone {cfg.backbone!r}")


def build_id_expert(cfg: ModelConfig, n_items: int) -> Expert:
    """Phase 1's ID expert: an ID table of `n_items` (+ padding row) and a fresh backbone."""
    return Expert(IdEmbedding(n_items, cfg.dim, sparse=cfg.item_updates == "rows"), build_backbone(cfg))
