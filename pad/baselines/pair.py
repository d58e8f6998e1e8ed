"""A backbone per half of a two-view item vector, shared by the two-expert baselines (MAKE, SMEM)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class PairBackbone(nn.Module):
    """One backbone per half: (B, L, 2d) = [id rows ; text rows] -> (B, L, 2d) = [h_id ; h_text]."""

    def __init__(self, ids: nn.Module, text: nn.Module) -> None:
        super().__init__()
        self.ids = ids
        self.text = text

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        id_rows, text_rows = x.chunk(2, dim=-1)  # (B, L, d) each
        return torch.cat([self.ids(id_rows, pad_mask), self.text(text_rows, pad_mask)], -1)
