"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over the item sequence.

Convention used by every backbone: sequences are LEFT-padded, so position L-1 holds the most
recent item and its output is the current user state. Positions are learned and counted from the
right (recency), so adding more left padding changes nothing. Blocks are post-LN as in RecBole's
SASRec (the quality bar of issue 4): h = LN(h + Drop(MHA(h))); h = LN(h + Drop(FFN(h))), FFN =
Linear(d→4d), GELU, Linear(4d→d). Between attentions only the real (non-padding) tokens are kept,
packed as (T, d): on short sequences in a long window this skips most of the work.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def attention_bias(pad_mask: Tensor) -> Tensor:
    """(B, L) bool, True = real item -> (B, 1, L, L) additive bias: 0 = may attend, -inf = may not.

    Causal and key-padding: a real query sees earlier real items and itself; a padding query sees
    only itself (so no softmax row is empty; its output is never used).
    """
    l = pad_mask.shape[1]
    causal = torch.ones(l, l, dtype=torch.bool, device=pad_mask.device).tril()  # (L, L)
    eye = torch.eye(l, dtype=torch.bool, device=pad_mask.device)
    allowed = causal & (pad_mask[:, None, :] | eye)  # (B, L, L): query row, key column
    bias = torch.zeros(allowed.shape, device=pad_mask.device).masked_fill_(~allowed, float("-inf"))
    return bias.unsqueeze(1)  # (B, 1, L, L)


class Block(nn.Module):
    """One post-LN transformer block on packed real tokens (T, d)."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.p = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: Tensor, pad_mask: Tensor, bias: Tensor) -> Tensor:
        b, l = pad_mask.shape
        d = h.shape[-1]
        qkv = h.new_zeros(b, l, 3 * d)
        qkv[pad_mask] = self.qkv(h)  # (B, L, 3d), zeros at padding
        q, k, v = qkv.view(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # each (B, H, L, d/H)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=self.p if self.training else 0.0)
        a = a.transpose(1, 2).reshape(b, l, d)[pad_mask]  # (T, d)
        h = self.norm1(h + self.dropout(self.proj(a)))
        return self.norm2(h + self.dropout(self.ff(h)))


class SASRec(nn.Module):
    """(B, L, d) item vectors + (B, L) mask -> (B, L, d) user states (zeros at padding)."""

    def __init__(self, dim: int, blocks: int, heads: int, dropout: float, max_len: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"model.dim ({dim}) must be divisible by model.heads ({heads})")
        self.positions = nn.Embedding(max_len, dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(Block(dim, heads, dropout) for _ in range(blocks))
        self.apply(_init)

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        l = x.shape[1]
        recency = torch.arange(l - 1, -1, -1, device=x.device).clamp(max=self.positions.num_embeddings - 1)
        h = self.dropout(self.norm((x + self.positions(recency))[pad_mask]))  # (T, d) real tokens
        bias = attention_bias(pad_mask)
        for block in self.blocks:
            h = block(h, pad_mask, bias)
        out = x.new_zeros(x.shape)
        out[pad_mask] = h
        return out  # (B, L, d)


def _init(module: nn.Module) -> None:
    """RecBole's initialisation: N(0, 0.02) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
