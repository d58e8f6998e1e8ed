"""Item tables built on frozen LLM text embeddings: the alignment expert's and the LLM expert's (DESIGN §5, §6).

Shared convention with the ID expert: an item module's `forward()` returns the (N+1, d) item table with
row 0 (padding) all zeros; `forward(ids)` returns just the rows `ids` (any shape) for sampled losses.
The frozen (N+1, D) text matrix is a non-persistent buffer: it follows `.to(device)` but is not saved in
checkpoints (it can be GiBs); rebuild the module from the embeddings Parquet before `load_state_dict`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
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
    """Store the frozen (N+1, D) text embedding matrix (row 0 = padding) as a non-persistent buffer. A float32
    matrix is shared, not copied: PAD's alignment and LLM experts read the same one (at 423k items × 384
    that is 620 MiB held once instead of twice); nothing writes to it."""
    if text_emb.dim() != 2 or text_emb.shape[0] < 2:
        raise ValueError(f"text embeddings must be (N+1, D) with N >= 1, got {tuple(text_emb.shape)}")
    module.register_buffer("text_emb", text_emb.detach().float(), persistent=False)


def _rows(table: Tensor, ids: Tensor | None) -> Tensor:
    return table if ids is None else table[ids]  # (N+1, D) or (*ids.shape, D)


TOWERS = ("linear", "mlp")
FUSIONS = ("sum", "residual", "reference")


def text_tower(kind: str, text_dim: int, dim: int, dropout: float) -> nn.Module:
    """The text side's reduction D → d: `linear` (one Linear: keeps the encoder's geometry, the `sum`
    fusion's tower) or `mlp` (the reference code's deep TextMLP)."""
    if kind == "linear":
        return nn.Linear(text_dim, dim)
    if kind == "mlp":
        return TextMLP(text_dim, dim, dropout)
    raise ValueError(f"unknown text tower {kind!r}: use one of {TOWERS}")


def fusion_tower(fusion: str) -> str:
    """The text tower an alignment fusion uses: `sum` a Linear, `residual` / `reference` the TextMLP."""
    if fusion not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    return "linear" if fusion == "sum" else "mlp"


class TextItems(nn.Module):
    """The LLM expert's items (DESIGN §6): frozen text embedding → its own text tower → (N+1, d)."""

    def __init__(self, text_emb: Tensor, dim: int, dropout: float, tower: str = "mlp"):
        super().__init__()
        _register_text(self, text_emb)
        self.mlp = text_tower(tower, text_emb.shape[1], dim, dropout)

    def forward(self, ids: Tensor | None = None) -> Tensor:
        return _zero_padding(self.mlp(_rows(self.text_emb, ids)), ids)


class AlignedItems(nn.Module):
    """The alignment expert's items (DESIGN §5): own ID table + a text tower over the frozen text.

    fusion `sum` (default): item vector = e_id + Linear(e_text) (D → d, no dropout): the text carries the
        item and the ID vector learns what the text misses. On Prime Pantry (RESULTS.md) this is by far the
        strongest way to put MiniLM text into SASRec; the deep, dropped-out TextMLP learns several times slower.
    fusion `reference`: item vector = GELU(Linear(2d→d)(Dropout([e_id ; MLP(e_text)]))) (the paper's code).
    fusion `residual`: e_id + GELU(Linear(2d→d)(Dropout([e_id ; MLP(e_text)]))) with the Linear zero-initialised,
        so training starts exactly at the pre-trained table and learns a text correction.
    `residual` and `reference` use the TextMLP tower; checkpoints record the fusion (loaders need it to build
    the module). `text_side()` and `id_side()` are the two rows the alignment loss compares. `freeze_ids()`
    (align.mode = frozen) stops every gradient into the ID table: it gets requires_grad False and is read
    detached, so no optimizer step (weight decay included) can change it. In train mode dropout is drawn
    once per table row, not per occurrence. With `sparse` (`model.item_updates: rows`) a lookup's gradient
    into the ID table is sparse: just the looked-up rows.
    """

    def __init__(self, text_emb: Tensor, dim: int, dropout: float, id_init: Tensor | None = None,
                 fusion: str = "sum", sparse: bool = False):
        super().__init__()
        self.fusion = fusion
        self.tower = fusion_tower(fusion)
        _register_text(self, text_emb)
        self.id_emb = nn.Embedding(self.text_emb.shape[0], dim, padding_idx=0, sparse=sparse)
        if id_init is None:
            nn.init.xavier_normal_(self.id_emb.weight)
        else:
            if tuple(id_init.shape) != tuple(self.id_emb.weight.shape):
                raise ValueError(f"id_init must be {tuple(self.id_emb.weight.shape)}, got {tuple(id_init.shape)}")
            with torch.no_grad():
                self.id_emb.weight.copy_(id_init)
        self.mlp = text_tower(self.tower, text_emb.shape[1], dim, dropout)
        if fusion == "sum":
            return
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
        if self.id_emb.sparse and ids is not None:
            return F.embedding(ids, weight, sparse=True)  # (*ids, d), sparse gradient
        return _rows(weight, ids)

    def text_side(self, ids: Tensor | None = None) -> Tensor:
        """tower(e_text): (N+1, d) table or (*ids, d) rows."""
        return self.mlp(_rows(self.text_emb, ids))

    def combine(self, e_id: Tensor, text_side: Tensor) -> Tensor:
        """Item vectors (..., d) from the two sides (..., d) by the fusion (e_id = 0: a new, text-only item)."""
        if self.fusion == "sum":
            return e_id + text_side
        fused = self.fuse(torch.cat([e_id, text_side], dim=-1))  # (..., 2d) -> (..., d)
        return e_id + fused if self.fusion == "residual" else fused

    def forward(self, ids: Tensor | None = None) -> Tensor:
        return _zero_padding(self.combine(self.id_side(ids), self.text_side(ids)), ids)
