"""Caser (Tang & Wang, WSDM 2018): horizontal and vertical convolutions over the last L items.

Applied causally at every position: the state at position t sees the window of items t-L+1..t
(L = 5 as in the Caser paper); items before the sequence start are zero vectors, exactly like left
padding, so padding changes nothing. Horizontal filters of every height h = 1..L are max-pooled over the window; vertical
filters are weighted sums over the window's rows. No user embedding (sequence-only setting).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Caser(nn.Module):
    """(B, L, d) item vectors + (B, L) mask -> (B, L, d) user states."""

    def __init__(self, dim: int, dropout: float, window: int, n_h: int = 16, n_v: int = 4) -> None:
        super().__init__()
        self.window = window
        self.horizontal = nn.ModuleList(nn.Conv1d(dim, n_h, h) for h in range(1, window + 1))
        self.vertical = nn.Conv2d(1, n_v, (window, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Sequential(nn.Linear(n_v * dim + n_h * window, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        b, l, d = x.shape
        w = self.window
        keep = pad_mask.unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        xp = F.pad(x * keep, (0, 0, w - 1, 0))  # (B, w-1+L, d): zero rows before the start
        vert = self.vertical(xp.unsqueeze(1))  # (B, n_v, L, d)
        vert = vert.permute(0, 2, 1, 3).reshape(b, l, -1)  # (B, L, n_v*d)
        seq = xp.transpose(1, 2)  # (B, d, w-1+L)
        horiz = []
        for h, conv in enumerate(self.horizontal, start=1):
            c = F.relu(conv(seq))  # (B, n_h, w+L-h): outputs ending at times -w+h .. L-1
            horiz.append(F.max_pool1d(c, w - h + 1, stride=1))  # (B, n_h, L): max over the window
        horiz = torch.cat(horiz, 1).transpose(1, 2)  # (B, L, n_h*w)
        z = self.dropout(torch.cat([vert, horiz], -1))  # (B, L, n_v*d + n_h*w)
        return self.fc(z) * keep
