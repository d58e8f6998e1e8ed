"""DisCo: item vectors split into an ID-only, a shared and a text-only chunk, with a sufficiency loss (each
chunk alone must predict the next item) and a disentanglement loss (the chunks must not duplicate each other).

Du et al., "DisCo: Towards Harmonious Disentanglement and Collaboration between Tabular and Semantic Space for
Recommendation", KDD 2024 (arXiv 2406.00011); no public code found. DisCo encodes the behaviours in the tabular
(ID) space and in the semantic (LLM) space, extracts intra-domain patterns (unique to one space) and inter-domain
patterns (shared) with a dual-side attentive network, and regularises them with 1) a sufficiency constraint that
keeps each representation's task-relevant information (mutual information with the label, maximised by a
DIM-style discriminator) and 2) a disentanglement constraint that stops the model from discarding what is unique
to each space. The PAD paper (SIGIR 2025, Table 2) and DESIGN §12: "embeddings split into chunks, with
sufficiency and disentanglement losses that keep task-related and modality-unique information". Here:
  - item vector (d = `model.dim`) = [ u_id | s | u_text ], the chunks of widths (c, d - 2c, c), c =
    `baselines.disco_unique`: u_id from an ID table alone, u_text = a Linear of the frozen text embedding alone,
    s = an ID part + a Linear of the text (the space both modalities write to); one `model.backbone` reads the
    whole vector, and its user state splits the same way, so score = Σ_chunks <h_chunk, e_chunk>;
  - sufficiency: L_suf = mean over the 3 chunks of `model.loss` computed with that chunk of the user state and of
    the item vectors alone (each part alone must predict the target);
  - disentanglement: L_dis = mean over the chunk pairs (u_id, s), (u_text, s), (u_id, u_text) of the mean squared
    cross-correlation between their coordinates over the batch's target items (`decorrelation`);
  - L = L_rec + β · L_suf + γ · L_dis (β = `baselines.disco_sufficiency`, γ = `baselines.disco_disentangle`).
Departures: a sequential recommender with one backbone instead of a CTR model with the dual-side attentive
network; the sufficiency term is the recommendation loss of each chunk (a direct, supervised form of "keeps the
task-relevant information") instead of a mutual-information estimator; the disentanglement term is linear
decorrelation (a cross-correlation penalty) instead of the paper's constraint; the chunk layout is fixed by
construction (which modality may write to which coordinates) rather than by attention.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pad.baselines.scorer import KnownStates
from pad.config import BaselinesConfig, ModelConfig
from pad.errors import PadError
from pad.losses.recommendation import recommendation_loss
from pad.models import Expert, IdEmbedding, build_backbone
from pad.models.text import TextItems
from pad.train.data import Batch
from pad.train.loop import LossFn

CHUNKS = ("id", "shared", "text")


class ChunkedItems(nn.Module):
    """[u_id | s | u_text] (N+1, d) or (*ids.shape, d), row 0 zero: an ID table writes to the first two chunks, a
    Linear of the frozen text to the last two; `chunks` names each chunk's coordinates."""

    def __init__(self, text_emb: Tensor, dim: int, unique: int, sparse: bool = False) -> None:
        super().__init__()
        if not 1 <= unique or dim - 2 * unique < 1:
            raise PadError(f"'baselines.disco_unique' is {unique}; must be in 1..{(dim - 1) // 2} so that model.dim "
                           f"({dim}) holds two unique chunks and a shared one")
        self.unique = unique
        self.ids = IdEmbedding(text_emb.shape[0] - 1, dim - unique, sparse=sparse)  # u_id and its part of s
        self.text = TextItems(text_emb, dim - unique, 0.0, tower="linear")  # its part of s and u_text
        self.chunks = {"id": slice(0, unique), "shared": slice(unique, dim - unique), "text": slice(dim - unique, dim)}

    def forward(self, ids: Tensor | None = None) -> Tensor:
        return F.pad(self.ids(ids), (0, self.unique)) + F.pad(self.text(ids), (self.unique, 0))  # (..., d)


def build(text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig) -> Expert:
    items = ChunkedItems(text_emb, model_cfg.dim, cfg.disco_unique, sparse=model_cfg.item_updates == "rows")
    return Expert(items, build_backbone(model_cfg))


def decorrelation(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared cross-correlation of two chunks over M items: a (M, c_a), b (M, c_b) -> scalar in [0, 1].

    C = Z_aᵀ Z_b with Z the columns centred and scaled to unit norm (C_jk = Pearson correlation of coordinate j
    of a and k of b); L = mean(C²); 0 iff no coordinate of one chunk is linearly correlated with one of the other."""
    if a.shape[0] < 2:
        return a.new_zeros(())
    za = F.normalize(a - a.mean(0), dim=0, eps=1e-8)  # (M, c_a)
    zb = F.normalize(b - b.mean(0), dim=0, eps=1e-8)  # (M, c_b)
    return (za.T @ zb).pow(2).mean()


def disentanglement_loss(vectors: Tensor, chunks: dict[str, slice]) -> Tensor:
    """L_dis over item vectors (M, d): mean decorrelation of (id, shared), (text, shared) and (id, text)."""
    parts = {name: vectors[:, part] for name, part in chunks.items()}
    pairs = [("id", "shared"), ("text", "shared"), ("id", "text")]
    return torch.stack([decorrelation(parts[x], parts[y]) for x, y in pairs]).mean()


def objective(sequences: Sequence[np.ndarray], text_emb: Tensor | np.ndarray, model_cfg: ModelConfig,
              cfg: BaselinesConfig) -> LossFn:
    """loss_fn for `fit`: (L_rec + β · L_suf + γ · L_dis, {"sufficiency_loss", "disentangle_loss"})."""

    def loss_fn(model: Expert, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        chunks = model.items.chunks
        with model.one_table() if model_cfg.loss == "ce" else nullcontext():  # ce: the item table once per step
            states = model.encode(batch.inputs)  # (B, L, d)
            rec = recommendation_loss(KnownStates(model, states), batch, model_cfg.loss)
            suf = torch.stack([recommendation_loss(KnownStates(model, states, chunks[c]), batch, model_cfg.loss)
                               for c in CHUNKS]).mean()
        targets = torch.unique(batch.targets[batch.targets != 0])  # (M,) the step's target items
        dis = disentanglement_loss(model.items(targets), chunks)
        loss = rec + cfg.disco_sufficiency * suf + cfg.disco_disentangle * dis
        return loss, {"sufficiency_loss": suf, "disentangle_loss": dis}

    return loss_fn
