"""Item tables built on frozen LLM text embeddings: the alignment expert's and the LLM expert's (DESIGN §5, §6).

Shared convention with the ID expert: an item module's `forward()` returns the (N+1, d) item table with
row 0 (padding) all zeros; `forward(ids)` returns just the rows `ids` (any shape) for sampled losses.
The frozen (N+1, D) text matrix is a non-persistent buffer: it follows `.to(device)` but is not saved in
checkpoints (it can be GiBs); rebuild the module from the embeddings Parquet before `load_state_dict`.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn


class TextMLP(nn.Sequential):
    """MLP(e_text): Linear(D→d)+GELU, then 4 × [Dropout, Linear(d→d), GELU] (the reference code's tower)."""

    def __init__(self, text_dim: int, dim: int, dropout: float, layers: int = 4):
        blocks: list[nn.Module] = [nn.Linear(text_dim, dim), nn.GELU()]
        for _ in range(layers):
            blocks += [nn.Dropout(dropout), nn.Linear(dim, dim), nn.GELU()]
        super().__init__(*blocks)


def _zero_padding(vecs: Tensor, ids: Tensor | None) -> Tensor:
    """Set the padding item's vectors to zero: row 0 of a table, or the positions where ids == 0."""
    pad = torch.zeros(vecs.shape[:-1], dtype=torch.bool, device=vecs.device) if ids is None else ids == 0
    if ids is None:
        pad[0] = True
    return vecs.masked_fill(pad.unsqueeze(-1), 0.0)


def _register_text(module: nn.Module, text_emb: Tensor) -> None:
    """Store the frozen (N+1, D) text embedding matrix (row 0 = padding) as a non-persistent buffer."""
    if text_emb.dim() != 2 or text_emb.shape[0] < 2:
        raise ValueError(f"text embeddings must be (N+1, D) with N >= 1, got {tuple(text_emb.shape)}")
    module.register_buffer("text_emb", text_emb.detach().float().clone(), persistent=False)


def _rows(table: Tensor, ids: Tensor | None) -> Tensor:
    return table if ids is None else table[ids]  # (N+1, D) or (*ids.shape, D)


class TextItems(nn.Module):
    """The LLM expert's items (DESIGN §6): frozen text embedding → its own TextMLP → (N+1, d)."""

    def __init__(self, text_emb: Tensor, dim: int, dropout: float):
        super().__init__()
        _register_text(self, text_emb)
        self.mlp = TextMLP(text_emb.shape[1], dim, dropout)

    def forward(self, ids: Tensor | None = None) -> Tensor:
        return _zero_padding(self.mlp(_rows(self.text_emb, ids)), ids)


class AlignedItems(nn.Module):
    """The alignment expert's items (DESIGN §5): own ID table + TextMLP over the frozen text.

    fusion `reference`: item vector = GELU(Linear(2d→d)(Dropout([e_id ; MLP(e_text)]))) (the paper's code).
    fusion `residual`: item vector = e_id + GELU(Linear(2d→d)(Dropout([e_id ; MLP(e_text)]))) with the Linear
    zero-initialised, so training starts exactly at the pre-trained table (a random fusion layer scrambles
    it and costs several epochs to recover) and learns the text correction. The choice is a persistent
    buffer, so a checkpoint rebuilds the fusion it was trained with. `text_side()` and `id_side()` are the
    two rows the MK-MMD compares. `freeze_ids()` (align.mode = frozen) stops every gradient into the ID
    table: it gets requires_grad False and is read detached, so no optimizer step (weight decay
    included) can change it. In train mode dropout is drawn once per table row, not per occurrence.
    """

    def __init__(self, text_emb: Tensor, dim: int, dropout: float, id_init: Tensor | None = None,
                 fusion: str = "residual"):
        super().__init__()
        if fusion not in ("residual", "reference"):
            raise ValueError(f"fusion must be 'residual' or 'reference', got {fusion!r}")
        _register_text(self, text_emb)
        self.register_buffer("residual", torch.tensor(fusion == "residual"))
        self.id_emb = nn.Embedding(self.text_emb.shape[0], dim, padding_idx=0)
        if id_init is None:
            nn.init.xavier_normal_(self.id_emb.weight)
        else:
            if tuple(id_init.shape) != tuple(self.id_emb.weight.shape):
                raise ValueError(f"id_init must be {tuple(self.id_emb.weight.shape)}, got {tuple(id_init.shape)}")
            with torch.no_grad():
                self.id_emb.weight.copy_(id_init)
        self.mlp = TextMLP(text_emb.shape[1], dim, dropout)
        self.fuse = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * dim, dim), nn.GELU())
        if fusion == "residual":
            nn.init.zeros_(self.fuse[1].weight)
            nn.init.zeros_(self.fuse[1].bias)

    @property
    def frozen(self) -> bool:
        return not self.id_emb.weight.requires_grad

    def freeze_ids(self, frozen: bool = True) -> None:
        """Stop (or restore) gradients into the ID table (the paper's `frozen` alignment mode)."""
        self.id_emb.weight.requires_grad_(not frozen)

    def id_side(self, ids: Tensor | None = None) -> Tensor:
        """e_id: (N+1, d) table or (*ids, d) rows; detached when frozen."""
        weight = self.id_emb.weight.detach() if self.frozen else self.id_emb.weight
        return _rows(weight, ids)

    def text_side(self, ids: Tensor | None = None) -> Tensor:
        """MLP(e_text): (N+1, d) table or (*ids, d) rows."""
        return self.mlp(_rows(self.text_emb, ids))

    @property
    def fusion(self) -> str:
        return "residual" if bool(self.residual) else "reference"

    def forward(self, ids: Tensor | None = None) -> Tensor:
        e_id = self.id_side(ids)
        fused = self.fuse(torch.cat([e_id, self.text_side(ids)], dim=-1))  # (..., 2d) -> (..., d)
        return _zero_padding(e_id + fused if bool(self.residual) else fused, ids)
