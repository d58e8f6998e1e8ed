"""GRU4Rec (Hidasi et al., ICLR 2016) as a sequential backbone: GRU over the item vectors.

Inputs follow the left-padding convention (pad/models/sasrec.py). The GRU runs on the sequence
shifted so that real items come first, so leading padding never enters the recurrence.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def shift_rows(x: Tensor, shift: Tensor) -> Tensor:
    """Roll each row of (B, L, d) `x` left by `shift[b]` positions (negative = right)."""
    l = x.shape[1]
    idx = (torch.arange(l, device=x.device)[None, :] + shift[:, None]) % l  # (B, L)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


class GRU4Rec(nn.Module):
    """(B, L, d) item vectors + (B, L) mask -> (B, L, d) user states."""

    def __init__(self, dim: int, blocks: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, num_layers=blocks, batch_first=True)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        keep = pad_mask.unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        lead = x.shape[1] - pad_mask.sum(1)  # (B,) number of leading pads
        h = shift_rows(self.dropout(x) * keep, lead)  # (B, L, d), real items first
        h, _ = self.gru(h)
        return self.out(shift_rows(h, -lead)) * keep
