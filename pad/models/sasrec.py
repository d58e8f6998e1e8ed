"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item sequence.

Convention used by every backbone: sequences are LEFT-padded, so position L-1 holds the most
recent item and its output is the current user state. Positions are learned and counted from the
right (recency), so adding more left padding changes nothing. Blocks are post-LN as in RecBole's
SASRec (the quality bar of issue 4): x = LN(x + Drop(MHA(x))); x = LN(x + Drop(FFN(x))).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


def attention_mask(pad_mask: Tensor, heads: int) -> Tensor:
    """(B, L) bool, True = real item -> (B*heads, L, L) bool, True = may NOT attend.

    Causal and key-padding: a real query sees earlier real items and itself; a padding query sees
    only itself (so no softmax row is empty; its output is zeroed afterwards anyway).
    """
    b, l = pad_mask.shape
    causal = torch.ones(l, l, dtype=torch.bool, device=pad_mask.device).tril()  # (L, L)
    eye = torch.eye(l, dtype=torch.bool, device=pad_mask.device)
    allowed = causal & (pad_mask[:, None, :] | eye)  # (B, L, L): query row, key column
    return ~allowed.repeat_interleave(heads, dim=0)  # (B*heads, L, L)


class SASRec(nn.Module):
    """(B, L, d) item vectors + (B, L) mask -> (B, L, d) user states."""

    def __init__(self, dim: int, blocks: int, heads: int, dropout: float, max_len: int) -> None:
        super().__init__()
        self.heads = heads
        self.positions = nn.Embedding(max_len, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=4 * dim, dropout=dropout, activation="gelu", batch_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.apply(_init)

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        b, l, _ = x.shape
        recency = torch.arange(l - 1, -1, -1, device=x.device).clamp(max=self.positions.num_embeddings - 1)
        keep = pad_mask.unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        h = self.dropout(self.norm(x + self.positions(recency))) * keep  # (B, L, d)
        h = self.blocks(h, mask=attention_mask(pad_mask, self.heads))
        return h * keep


def _init(module: nn.Module) -> None:
    """RecBole's initialisation: N(0, 0.02) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
