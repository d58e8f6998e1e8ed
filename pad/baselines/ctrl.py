"""CTRL: contrastive alignment of the ID item table with the text as a pre-training step, then the plain ID model
fine-tuned for recommendation; the text tower is dropped before fine-tuning (only the ID model is served).

Li et al., "CTRL: Connect Collaborative and Language Model for CTR Prediction" (arXiv 2306.02841; ACM TORS
2025). As there: two towers, a collaborative one and a semantic one, are aligned by a symmetric InfoNCE
(collaborative→semantic and semantic→collaborative, cosine similarity / temperature, the other samples of the
batch as negatives); then the collaborative model alone is fine-tuned with the supervised loss and served, the
language side is thrown away. Here:
  - collaborative tower: the ID table `e_id` of the served `Expert` (an `IdEmbedding` + the `model.*` backbone);
  - semantic tower: Linear(D → d) over the frozen text embedding (trained during the pre-training only);
  - pre-training: `baselines.ctrl_epochs` passes over the catalogue's items 1..N, shuffled (seeded by `seed`),
    in batches of `baselines.batch_size` items; L = InfoNCE(Linear(e_text), e_id) with temperature
    `baselines.ctrl_temperature` (`pad.losses.alignment.info_nce`, as PAD's RQ3 alternative); AdamW at
    `baselines.lr` / `weight_decay` (lazy Adam for a `model.item_updates: rows` table, as in training);
  - fine-tuning: the project's training loop and `model.loss`, from the pre-trained ID table (the backbone
    starts fresh), exactly as SASRec's phase 1 otherwise.
Departures: CTRL is for CTR prediction: its collaborative tower is a whole CTR model over the tabular features
of one sample and its semantic tower a language model (fine-tuned during the alignment) over that sample turned
into text, aligned per sample (user, item, context). Here the setting is sequential recommendation and the
alignment is per ITEM: an item's ID row against its text, the text encoder frozen (the pipeline's embed stage)
with a trainable Linear head on top, the ID side without a projection head (its rows are the d-dim vectors the
backbone and scores read), and the items drawn uniformly from the catalogue rather than from interactions (no
interaction is read before fine-tuning). The pre-training reads no validation or test data.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from pad.config import BaselinesConfig, ModelConfig, train_config
from pad.losses.alignment import info_nce
from pad.models import Expert, IdEmbedding, build_backbone
from pad.train.loop import Optimizer


def build(text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig) -> Expert:
    """The served model: a plain ID expert (no text); `pretrain` aligns its table before fine-tuning."""
    return Expert(IdEmbedding(text_emb.shape[0] - 1, model_cfg.dim, sparse=model_cfg.item_updates == "rows"),
                  build_backbone(model_cfg))


def align(ids: IdEmbedding, text_emb: Tensor, cfg: BaselinesConfig) -> tuple[nn.Linear, list[float]]:
    """Contrastive pre-training of `ids` (in place) against a fresh Linear(D → d) of the frozen (N+1, D) text:
    returns the trained text tower and the mean InfoNCE loss of each epoch ([] when `ctrl_epochs` is 0)."""
    device = ids.embedding.weight.device
    text = text_emb.to(device=device, dtype=torch.float32)
    n_items = text.shape[0] - 1
    tower = nn.Linear(text.shape[1], ids.embedding.embedding_dim).to(device)
    towers = nn.ModuleDict({"ids": ids, "text": tower})
    opt = Optimizer(towers, train_config(cfg), {})
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    for _ in range(cfg.ctrl_epochs):
        order = torch.randperm(n_items, generator=gen) + 1  # items 1..N, never the padding row
        total, batches = 0.0, 0
        for start in range(0, n_items, cfg.batch_size):
            items = order[start:start + cfg.batch_size].to(device)  # (B,)
            if items.numel() < 2:
                continue  # InfoNCE needs a negative
            loss = info_nce(tower(text[items]), ids(items), cfg.ctrl_temperature)  # (B, d) vs (B, d)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, batches = total + loss.item(), batches + 1
        losses.append(total / max(batches, 1))
    return tower, losses


def pretrain(expert: Expert, text_emb: Tensor, model_cfg: ModelConfig, cfg: BaselinesConfig,
             fit_alone: Callable[[Expert], None] | None = None) -> list[float]:
    """The harness's pre-training hook: align the expert's ID table with the text, then drop the text tower
    (it reads no interactions: `fit_alone` is not used). Returns the per-epoch InfoNCE losses."""
    _, losses = align(expert.items, text_emb, cfg)
    if losses:
        print(f"ctrl pre-training: InfoNCE {losses[0]:.4f} (epoch 1) -> {losses[-1]:.4f} (epoch {len(losses)})",
              flush=True)
    return losses
