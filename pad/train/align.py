"""Phase 2 (DESIGN §5): train the alignment expert, anchored by the recommendation loss.

The alignment expert is a copy of the phase-1 expert whose ID table, scaled by `align.id_scale`, becomes
the ID side of an `AlignedItems` module (default fusion `sum`: item vector = e_id + Linear(e_text)), with the
phase-1 backbone. Why the scale: a full-size phase-1 table has already memorised the training items, so the
text term adds little (valid nDCG@10 4.52 after 4 epochs on Prime Pantry); at 0.1 the text carries the items
and the ID vectors keep their directions as a head start (5.02 after 6 epochs, vs 4.31 from scratch). Its loss (PAD, SIGIR 2025, phase 2):  L = L_rec + λ · L_align(MLP(e_text), e_id),  where L_rec
is the shared recommendation loss (`model.loss`) and L_align the `align.kernel` term over the batch's
distinct non-padding items. `align.mode` (paper RQ2):
  anchored      L_rec + λ·L_align, everything trains (default).
  frozen        L_rec + λ·L_align, the ID table gets no gradient (`AlignedItems.freeze_ids`).
  none          L_rec only (the SMEM-like baseline: text fused in, no alignment term).
  non_anchored  L_align only (the paper's "MMD only"). That loss reaches only the ID table and the text
                MLP, so the backbone and the fusion layer are frozen (they keep phase-1 / initial
                weights) and learn only in phase 3; the expert alone is then a weak recommender, which
                is exactly what its metrics are meant to show. λ only rescales this loss, so it is unused.
"""
from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pad.config import AlignConfig, EvaluateConfig, ModelConfig, train_config
from pad.errors import PadError
from pad.io import save_torch
from pad.losses.alignment import alignment_loss, distinct_batch_items
from pad.losses.recommendation import LossKind, recommendation_loss
from pad.models import Expert, build_backbone
from pad.models.text import AlignedItems
from pad.train.checkpoint import checkpoint_contents, load_checkpoint, resume_folder
from pad.train.data import Batch
from pad.train.loop import FitResult, LossFn, fit, seed_everything
from pad.train.pretrain import Prepared, final_metrics, valid_headline

FORMAT = "pad.align/1"
# MK-MMD costs O(M²) in the batch's M distinct items (~1100 per 256 Prime Pantry users, ~0.1 s a step on 2
# cores, half the step): it is estimated on a uniform random subset of at most this many (the same MMD, more
# variance; 256 items cost ~3 ms a step forward and backward, 512 items ~18 ms).
MMD_MAX_ITEMS = 256


def build_align_expert(pretrained: Expert, model_cfg: ModelConfig, text_emb: Tensor | np.ndarray,
                       mode: str = "anchored", fusion: str = "sum", id_scale: float = 1.0) -> Expert:
    """The alignment expert: ID table (× id_scale) and backbone copied from `pretrained`, a fresh text tower.

    text_emb is the frozen (N+1, D) text matrix (row 0 = padding), any D; `mode` sets what may train.
    """
    id_table = pretrained.item_vectors().detach()  # (N+1, d)
    text_emb = torch.as_tensor(text_emb, dtype=torch.float32)
    if text_emb.shape[0] != id_table.shape[0]:
        raise PadError(f"the embeddings have {text_emb.shape[0] - 1} items but the pretrained model has "
                       f"{id_table.shape[0] - 1}; rerun the embed and pretrain stages on the same items file")
    items = AlignedItems(text_emb, model_cfg.dim, model_cfg.dropout, id_init=id_scale * id_table.cpu(), fusion=fusion,
                         sparse=model_cfg.item_updates == "rows")
    expert = Expert(items, copy.deepcopy(pretrained.backbone).cpu())
    if mode == "frozen":
        items.freeze_ids()
    elif mode == "non_anchored":  # the alignment loss alone never reaches these
        expert.backbone.requires_grad_(False)
        if fusion != "sum":
            items.fuse.requires_grad_(False)
    return expert


def align_objective(cfg: AlignConfig, rec_kind: LossKind) -> LossFn:
    """loss_fn for `fit`: (loss, {"align_loss": L_align}) per `align.mode`; `none` returns L_rec alone."""

    def loss_fn(model: Expert, batch: Batch) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
        if cfg.mode == "none":
            return recommendation_loss(model, batch, rec_kind)
        ids = distinct_batch_items(torch.cat([batch.inputs, batch.targets], 1), limit=MMD_MAX_ITEMS)  # (M,)
        items: AlignedItems = model.items
        if len(ids) < 2:  # a one-item batch has no distribution to compare
            align = items.text_side(ids).sum() * 0.0
        else:
            align = alignment_loss(cfg.kernel, items.text_side(ids), items.id_side(ids), cfg.temperature)
        if cfg.mode == "non_anchored":
            return align, {"align_loss": align}
        return recommendation_loss(model, batch, rec_kind) + cfg.lambda_ * align, {"align_loss": align}

    return loss_fn


def align(data: Prepared, pretrained: Expert, text_emb: Tensor | np.ndarray, model_cfg: ModelConfig,
          cfg: AlignConfig, ev: EvaluateConfig, *, device: torch.device, live_dir: str | Path,
          resume_root: str | Path, world: int = 1, files: tuple[str | Path, ...] = ()) -> tuple[Expert, FitResult]:
    """Train the alignment expert; returns it with the best-validation weights (monitor: valid nDCG@k)."""
    seed_everything(cfg.seed)
    expert = build_align_expert(pretrained, model_cfg, text_emb, cfg.mode, cfg.fusion, cfg.id_scale).to(device)
    resume = resume_folder(resume_root, "align", model_cfg, cfg, ev.k, world, files=files)
    result = fit(expert, data.train, align_objective(cfg, model_cfg.loss), valid_headline(data, ev),
                 train_config(cfg), live_dir=live_dir, resume_dir=resume, monitor=f"ndcg_{ev.k}", desc="align")
    return expert, result


def align_metrics(expert: Expert, data: Prepared, result: FitResult, ev: EvaluateConfig) -> dict[str, Any]:
    """metrics/align.json: pretrain.json's layout, plus the alignment loss of the kept (best) epoch
    (`train.align_loss`) and of the last epoch (`train.align_loss_last`); absent for mode `none`."""
    metrics = final_metrics(expert, data, result, ev)
    rows = result.rows
    if rows and "align_loss" in rows[-1]:
        best = next(r for r in rows if r["epoch"] == result.best_epoch)
        metrics["train"].update(align_loss=best["align_loss"], align_loss_last=rows[-1]["align_loss"])
    return metrics


def save_align_expert(expert: Expert, model_cfg: ModelConfig, cfg: AlignConfig, path: str | Path,
                      **info: Any) -> None:
    """Write the alignment expert atomically (format `pad.align/1`; the text matrix is not stored)."""
    items: AlignedItems = expert.items
    n_rows, text_dim = items.text_emb.shape
    save_torch({"format": FORMAT, "model": dataclasses.asdict(model_cfg), "align": dataclasses.asdict(cfg),
                "n_items": n_rows - 1, "text_dim": text_dim, "state_dict": expert.state_dict(), **info}, path)


def load_align_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict of `save_align_expert` (checked format), on CPU."""
    return load_checkpoint(path, FORMAT, "PAD alignment-expert", "align")


def load_align_expert(path: str | Path, text_emb: Tensor | np.ndarray) -> Expert:
    """The trained alignment expert on CPU, rebuilt over `text_emb` ((N+1, D), e.g. from
    `pad.embed.store.load_embeddings`) and loaded from `path`; eval mode, every parameter trainable."""
    return align_expert_from_checkpoint(load_align_checkpoint(path), text_emb, path)


def align_expert_from_checkpoint(ckpt: dict[str, Any], text_emb: Tensor | np.ndarray, path: str | Path) -> Expert:
    """`load_align_expert` for a checkpoint dict already read (`path` names it in errors)."""
    text_emb = torch.as_tensor(text_emb, dtype=torch.float32)
    with checkpoint_contents(path, "align"):
        want = (ckpt["n_items"] + 1, ckpt["text_dim"])
        if tuple(text_emb.shape) != want:
            raise PadError(f"{path}: trained on text embeddings of shape {want}, got {tuple(text_emb.shape)}; "
                           "rerun the align stage on the current embeddings")
        cfg = ModelConfig(**ckpt["model"])
        items = AlignedItems(text_emb, cfg.dim, cfg.dropout, fusion=ckpt["align"]["fusion"])
        expert = Expert(items, build_backbone(cfg))
        expert.load_state_dict(ckpt["state_dict"])
    return expert.eval()
