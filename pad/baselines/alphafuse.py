"""AlphaFuse: ID embeddings learned only in the null space of the language embeddings.

Hu et al., "AlphaFuse: Learn ID Embeddings for Sequential Recommendation in Null Space of Language
Embeddings", SIGIR 2025 (public code Hugo-Chinn/AlphaFuse, `AlphaFuse_embs` in models/embedding.py, defaults
ID_space = inject_space = "singular", standardization on, cover off). The text embeddings' covariance is
decomposed (SVD); an item's frozen semantic vector is its whitened coordinates on the top d = `model.dim`
principal directions (`pad.baselines.whiten`). The last `baselines.null_dim` of those coordinates (the
lowest-variance directions kept: the "null space") also get a learnable ID embedding added:

    item = [ s_1 .. s_{d-n} , s_{d-n+1} + id_1 .. s_d + id_n ]     (n = null_dim)

so the ID part is zero on the top d-n semantic directions, which therefore stay exactly the text's, before and
after training. Departures: scaled by `baselines.text_std` (the code's `emb_std`/`language_embs_scale` scale
the raw embeddings, which whitening cancels); the ID part starts normal with std `text_std` (the code: std 1,
its whitened scale); the code's null space may also be chosen by a singular-value threshold (`null_thres`),
here by count only; trained with `model.loss` instead of the code's InfoNCE default.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pad.baselines.whiten import whitened_pca
from pad.config import BaselinesConfig, ModelConfig
from pad.errors import PadError
from pad.models import Expert, build_backbone


class AlphaFuseItems(nn.Module):
    """Frozen (N+1, d) semantic table + (N+1, n) learnable ID part in its last n coordinates."""

    def __init__(self, semantic: Tensor, null_dim: int, init_std: float = 1.0, sparse: bool = False) -> None:
        super().__init__()
        n_rows, dim = semantic.shape
        if not 1 <= null_dim < dim:
            raise PadError(f"'baselines.null_dim' is {null_dim}; must be in 1..model.dim - 1 ({dim - 1}) so that "
                           "some semantic directions stay free of ID")
        self.register_buffer("semantic", semantic.detach().float().clone())  # (N+1, d), row 0 zero
        self.null_dim = null_dim
        self.ids = nn.Embedding(n_rows, null_dim, padding_idx=0, sparse=sparse)
        nn.init.normal_(self.ids.weight, std=init_std)
        with torch.no_grad():
            self.ids.weight[0].zero_()

    def id_part(self, ids: Tensor | None = None) -> Tensor:
        """The ID embedding placed in the null-space coordinates: (N+1, d) or (*ids.shape, d), zero elsewhere."""
        rows = self.ids.weight if ids is None else self.ids(ids)  # (..., n)
        return F.pad(rows, (self.semantic.shape[1] - self.null_dim, 0))  # (..., d)

    def forward(self, ids: Tensor | None = None) -> Tensor:
        semantic = self.semantic if ids is None else self.semantic[ids]
        return semantic + self.id_part(ids)


def build(text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig) -> Expert:
    semantic = whitened_pca(text_emb, model_cfg.dim, cfg.text_std)  # (N+1, d)
    items = AlphaFuseItems(semantic, cfg.null_dim, cfg.text_std, sparse=model_cfg.item_updates == "rows")
    return Expert(items, build_backbone(model_cfg))
