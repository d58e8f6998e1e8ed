"""Serving engine: several SASRec backbones run as ONE batched pass over one user's history (DESIGN §8).

PAD's experts all use the same `model.*` architecture, so at request time their weights can be stacked
along a leading expert axis (E, ...) and every layer becomes one batched matmul (`baddbmm`) instead of E
separate module calls: per-request cost is dominated by per-op overhead at these sizes (L <= 50, d = 64).
Two more inference-only shortcuts, both exact:
- one request = one sequence; its real items are a suffix (left padding), so only those T tokens are
  run, with plain causal attention (the module's causal + key-padding mask restricted to real tokens);
- only the last position's state is needed, so the final block computes its query, attention output
  and feed-forward for that position alone (keys/values still cover all T tokens).
The result equals `SASRec.forward(x, mask)[:, -1]` of each expert up to float rounding (tested).

It lives outside pad/models on purpose: it is a read-only view of trained SASRec modules for serving,
not a model to train, and keeping it here leaves the training stages' dependencies unchanged.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pad.models.sasrec import SASRec


def _stack(values: Sequence[Tensor]) -> Tensor:
    return torch.stack([v.detach() for v in values])


class StackedSASRec:
    """E trained SASRec backbones of one architecture -> `stacked(x (E, T, d)) -> (E, d)` last states.

    A snapshot (CPU tensors copied at construction), not a module: rebuild it after changing weights.
    """

    def __init__(self, backbones: Sequence[SASRec]) -> None:
        first = backbones[0]
        self.heads = first.blocks[0].heads
        self.eps = first.norm.eps
        self.act = first.blocks[0].ff[1]  # the blocks' (weightless) activation module
        self.positions = _stack([b.positions.weight for b in backbones])  # (E, P, d)
        self.norm = _stack([torch.stack([b.norm.weight, b.norm.bias]) for b in backbones])  # (E, 2, d)
        self.blocks: list[dict[str, Tensor]] = []
        for i in range(len(first.blocks)):
            blocks = [b.blocks[i] for b in backbones]
            self.blocks.append({
                "qkv_w": _stack([k.qkv.weight.T for k in blocks]), "qkv_b": _stack([k.qkv.bias[None] for k in blocks]),
                "proj_w": _stack([k.proj.weight.T for k in blocks]), "proj_b": _stack([k.proj.bias[None] for k in blocks]),
                "ff1_w": _stack([k.ff[0].weight.T for k in blocks]), "ff1_b": _stack([k.ff[0].bias[None] for k in blocks]),
                "ff2_w": _stack([k.ff[2].weight.T for k in blocks]), "ff2_b": _stack([k.ff[2].bias[None] for k in blocks]),
                "norm1": _stack([torch.stack([k.norm1.weight, k.norm1.bias])[:, None] for k in blocks]),
                "norm2": _stack([torch.stack([k.norm2.weight, k.norm2.bias])[:, None] for k in blocks]),
            })

    @staticmethod
    def supports(backbones: Sequence[nn.Module]) -> bool:
        """True when every backbone is a SASRec of the same shape (then they can be stacked)."""
        if not all(isinstance(b, SASRec) for b in backbones):
            return False
        shapes = {tuple((n, tuple(p.shape)) for n, p in b.named_parameters()) for b in backbones}
        return len(shapes) == 1

    def _ln(self, h: Tensor, wb: Tensor) -> Tensor:
        """LayerNorm with per-expert affine: wb (E, 2, 1, d) or (E, 2, d)."""
        wb = wb if wb.dim() == 4 else wb[:, :, None]
        return F.layer_norm(h, h.shape[-1:], eps=self.eps) * wb[:, 0] + wb[:, 1]

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        """x (E, T, d): each expert's item vectors of the T real history items, oldest first -> (E, d)."""
        e, t, d = x.shape
        h = self._ln(x + self.positions[:, :t].flip(1), self.norm)  # token j has recency t-1-j
        for i, blk in enumerate(self.blocks):
            qkv = torch.baddbmm(blk["qkv_b"], h, blk["qkv_w"])  # (E, T, 3d)
            q, k, v = qkv.view(e, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # each (E, H, T, d/H)
            if i == len(self.blocks) - 1:  # last block: only the last position is needed
                q, h = q[:, :, -1:], h[:, -1:]
                a = F.scaled_dot_product_attention(q, k, v)  # the last token sees every real token
            else:
                a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            a = a.transpose(1, 2).reshape(e, -1, d)  # (E, T', d)
            h = self._ln(h + torch.baddbmm(blk["proj_b"], a, blk["proj_w"]), blk["norm1"])
            f = torch.baddbmm(blk["ff2_b"], self.act(torch.baddbmm(blk["ff1_b"], h, blk["ff1_w"])), blk["ff2_w"])
            h = self._ln(h + f, blk["norm2"])
        return h[:, -1]  # (E, d)
