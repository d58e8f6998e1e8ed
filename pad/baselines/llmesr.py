"""LLM-ESR: dual-view sequence modelling (a frozen LLM view and a collaborative view) with retrieval-augmented
self-distillation from similar users.

Liu et al., "LLM-ESR: Large Language Models Enhancement for Long-tailed Sequential Recommendation", NeurIPS 2024
(public code liuqidong07/LLM-ESR: models/DualLLMSRS.py, models/LLMESR.py, data/retrieval_users.ipynb). As there:
  - LLM view: the frozen LLM item embedding through an adapter Linear(D → D/2) → Linear(D/2 → d);
  - collaborative view: an ID table initialised from the text's principal components (their `pca64` table);
  - one backbone shared by both views; the user state is [h_id ; h_llm], the item vector [e_id ; adapter(e_text)],
    so a score is the sum of the two views' dot products;
  - self-distillation ("kd", their scripts' choice): L = L_rec + α · MSE(h_u, mean_j sg(h_{u_j})), h the user
    state at the last position, u_j the user's retrieved similar users (α = `baselines.llmesr_alpha`, 0.1 in
    their scripts).
Departures: the users are retrieved by cosine similarity of the mean text embedding of their TRAINING items
(the code embeds a text prompt of the user's history with the LLM); the retrieval and the similar users'
sequences read each user's training part only (`seq[:-2]`), never a validation or test target; the
`llmesr_neighbours` most similar users are all averaged every step (the code samples from the top 100); no
cross-attention between the views (`--use_cross_att`), no item-level regulariser (`item_reg`, off by default
there); the ID table starts whitened (`pad.baselines.whiten`, scaled by `baselines.text_std`); `model.loss`
instead of the code's BCE. Cost: each distinct similar user of a batch is encoded once a step and the batch's
own encoding serves both the recommendation loss and the student (the code encodes one copy per (user, similar
user) pair, so a similar user two users of the batch share draws one dropout mask here, two there; on Prime
Pantry a batch of 256 users has about 1,900 distinct similar users, not 2,560); `baselines.llmesr_teacher`
encodes the teachers with dropout as the code does (`train`) or without (`eval`, about 40% cheaper a step).
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pad.baselines.scorer import KnownStates
from pad.baselines.whiten import whitened_pca
from pad.config import BaselinesConfig, ModelConfig
from pad.errors import PadError
from pad.losses.recommendation import recommendation_loss
from pad.models import Expert, IdEmbedding, build_backbone
from pad.train.data import Batch, left_pad
from pad.train.loop import LossFn

HELD_OUT = 2  # the validation and test targets at the end of every sequence (never read here)
USER_CHUNK = 1024  # users whose similarities are computed at once: (chunk, U) floats, never (U, U)


class DualViewItems(nn.Module):
    """[e_id ; adapter(e_text)]: `forward()` -> (N+1, 2d), `forward(ids)` -> (*ids.shape, 2d); row 0 zero."""

    def __init__(self, text_emb: Tensor, id_init: Tensor, sparse: bool = False) -> None:
        super().__init__()
        n_rows, d_text = text_emb.shape
        dim = id_init.shape[1]
        self.register_buffer("text_emb", text_emb.detach().float().clone(), persistent=False)  # frozen, not saved
        self.ids = IdEmbedding(n_rows - 1, dim, sparse=sparse)
        with torch.no_grad():
            self.ids.embedding.weight.copy_(id_init)
        self.adapter = nn.Sequential(nn.Linear(d_text, max(1, d_text // 2)), nn.Linear(max(1, d_text // 2), dim))

    def llm_view(self, ids: Tensor | None = None) -> Tensor:
        text = self.text_emb if ids is None else self.text_emb[ids]  # (..., D)
        pad = torch.zeros(text.shape[:-1], dtype=torch.bool, device=text.device) if ids is None else ids == 0
        if ids is None:
            pad[0] = True
        return self.adapter(text).masked_fill(pad.unsqueeze(-1), 0.0)  # (..., d)

    def forward(self, ids: Tensor | None = None) -> Tensor:
        return torch.cat([self.ids(ids), self.llm_view(ids)], -1)  # (..., 2d)


class SharedDualBackbone(nn.Module):
    """One backbone run on each view: (B, L, 2d) = [id rows ; llm rows] -> (B, L, 2d) = [h_id ; h_llm]."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, x: Tensor, pad_mask: Tensor) -> Tensor:
        id_rows, llm_rows = x.chunk(2, dim=-1)  # (B, L, d) each
        return torch.cat([self.backbone(id_rows, pad_mask), self.backbone(llm_rows, pad_mask)], -1)


def build(text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig) -> Expert:
    items = DualViewItems(text_emb, whitened_pca(text_emb, model_cfg.dim, cfg.text_std),
                          sparse=model_cfg.item_updates == "rows")
    return Expert(items, SharedDualBackbone(build_backbone(model_cfg)))


def training_parts(sequences: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each user's training part: the sequence without its validation and test targets."""
    return [np.asarray(s[:-HELD_OUT], dtype=np.int64) for s in sequences]


def similar_users(sequences: Sequence[np.ndarray], text_emb: Tensor | np.ndarray, k: int) -> Tensor:
    """(U, k) long: each user's k most similar other users, by cosine similarity of the mean text embedding of
    their training items (most similar first; ties to the lower user index). Reads training parts only."""
    parts = training_parts(sequences)
    if len(parts) < 2:
        raise PadError("LLM-ESR retrieves similar users: the data needs at least 2 users")
    k = min(k, len(parts) - 1)
    text = torch.as_tensor(np.asarray(text_emb), dtype=torch.float64)
    users = torch.stack([text[torch.as_tensor(p)].mean(0) for p in parts])  # (U, D)
    users = F.normalize(users, dim=1)
    out = []
    for start in range(0, len(users), USER_CHUNK):
        sims = users[start:start + USER_CHUNK] @ users.T  # (C, U)
        rows = torch.arange(sims.shape[0])
        sims[rows, rows + start] = -torch.inf  # never oneself
        out.append(torch.sort(sims, dim=1, descending=True, stable=True).indices[:, :k])  # stable: ties by index
    return torch.cat(out)


def teacher_states(model: Expert, neighbours: Tensor, inputs: Tensor, mode: str, device: torch.device) -> Tensor:
    """(B, 2d) stop-gradient teachers: each row's mean last user state over its neighbours (B, k) (users indexing
    `inputs` (U, L)). Every distinct neighbour of the batch is encoded once; `mode` "train" keeps dropout on, as
    the code's teachers, "eval" encodes them without it."""
    distinct, slot = torch.unique(neighbours, return_inverse=True)  # (n,) users, (B, k) their rows in it
    was_training = model.training
    model.train(mode == "train" and was_training)
    try:
        with torch.no_grad():  # the teachers: stop-gradient, as the code's .detach()
            last = model.encode(inputs[distinct].to(device))[:, -1]  # (n, 2d)
    finally:
        model.train(was_training)
    return last[slot.to(device)].mean(1)  # (B, k, 2d) -> (B, 2d)


def objective(sequences: Sequence[np.ndarray], text_emb: Tensor | np.ndarray, model_cfg: ModelConfig,
              cfg: BaselinesConfig) -> LossFn:
    """loss_fn for `fit`: (L_rec + α · L_distill, {"distill_loss": L_distill}); batch.users index `sequences`.
    One encoding of the batch serves the recommendation loss and the student (its last position), and with
    `ce` the item table is computed once for the step (student, teachers and scores)."""
    neighbours = similar_users(sequences, text_emb, cfg.llmesr_neighbours)  # (U, k)
    inputs = left_pad(training_parts(sequences), model_cfg.max_len)  # (U, L): training parts only

    def loss_fn(model: Expert, batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        with model.one_table() if model_cfg.loss == "ce" else nullcontext():
            states = model.encode(batch.inputs)  # (B, L, 2d)
            rec = recommendation_loss(KnownStates(model, states), batch, model_cfg.loss)
            teacher = teacher_states(model, neighbours[batch.users.cpu()], inputs, cfg.llmesr_teacher,
                                     states.device)
        distill = F.mse_loss(states[:, -1], teacher)  # the student: the user state after their training input
        return rec + cfg.llmesr_alpha * distill, {"distill_loss": distill}

    return loss_fn
