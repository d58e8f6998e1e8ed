"""Phase 3 (DESIGN §6): fine-tune the PAD model = ID + alignment + LLM experts fused by the gate.

The ID expert starts from phase 1 (`models/pretrain.pt`), the alignment expert from phase 2
(`models/align.pt`), the LLM expert (frozen text embedding → its own TextMLP → its own backbone of
`model.backbone`) is new. Loss: the recommendation loss `model.loss` only (no MMD in this phase). The
raw text embeddings are frozen buffers; every other parameter (the collaborative tables included) trains.

Checkpoint (format `pad.pad/1`): {"model": asdict(ModelConfig), "finetune": asdict(FinetuneConfig),
"experts": [names], "gate": kind, "n_items", "text_dim", "state_dict", ...}; the text matrix is not stored:
`load_pad_model(path, text_emb)` rebuilds the modules over it and loads the weights.
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from pad.config import EvaluateConfig, FinetuneConfig, ModelConfig, train_config
from pad.errors import PadError
from pad.io import save_torch
from pad.losses.recommendation import recommendation_loss
from pad.models import Expert, build_backbone, build_id_expert
from pad.models.gate import build_gate
from pad.models.pad import EXPERTS, PAD
from pad.models.text import AlignedItems, TextItems
from pad.train.checkpoint import fingerprint, load_checkpoint, load_pretrained
from pad.train.loop import FitResult, ValidFn, fit, seed_everything
from pad.train.pretrain import Prepared, final_metrics, valid_headline

FORMAT = "pad.pad/1"
_ARCH = ("backbone", "dim", "blocks", "heads", "max_len")  # ModelConfig fields that shape the weights


def llm_expert(text_emb: Tensor, cfg: ModelConfig) -> Expert:
    """The LLM expert: frozen (N+1, D) text → TextMLP → (N+1, d), and a fresh `model.backbone`."""
    return Expert(TextItems(text_emb, cfg.dim, cfg.dropout), build_backbone(cfg))


def _fresh_experts(names: Sequence[str], cfg: ModelConfig, text_emb: Tensor) -> dict[str, Expert]:
    """Untrained experts of the right shapes (the modules a checkpoint's weights are loaded into)."""
    n_items = text_emb.shape[0] - 1
    make = {"id": lambda: build_id_expert(cfg, n_items),
            "align": lambda: Expert(AlignedItems(text_emb, cfg.dim, cfg.dropout), build_backbone(cfg)),
            "llm": lambda: llm_expert(text_emb, cfg)}
    return {name: make[name]() for name in names}


def check_experts(names: Sequence[str]) -> tuple[str, ...]:
    """`finetune.experts` in canonical order (id, align, llm); a PadError if empty, unknown or repeated."""
    bad = [n for n in names if n not in EXPERTS]
    if not names or bad or len(set(names)) != len(names):
        raise PadError(f"params.yaml: 'finetune.experts' must be a non-empty subset of {list(EXPERTS)} "
                       f"without repeats, got {list(names)}")
    return tuple(n for n in EXPERTS if n in names)


def build_pad(names: Sequence[str], gate: str, model_cfg: ModelConfig, text_emb: Tensor | np.ndarray,
              item_buckets: Tensor, *, pretrain_path: str | Path | None = None,
              align_path: str | Path | None = None) -> PAD:
    """The PAD model of `finetune.experts`/`finetune.gate`; the ID and alignment experts are loaded
    from their phase checkpoints when a path is given (else freshly built), the LLM expert is new."""
    names = check_experts(names)
    text_emb = torch.as_tensor(text_emb, dtype=torch.float32)
    if text_emb.shape[0] != len(item_buckets):
        raise PadError(f"the embeddings have {text_emb.shape[0] - 1} items but the items file has "
                       f"{len(item_buckets) - 1}; rerun the embed stage (dvc repro embed)")
    experts = _fresh_experts(names, model_cfg, text_emb)
    if "id" in names and pretrain_path is not None:
        experts["id"], ckpt_cfg = load_pretrained(pretrain_path)
        _check_arch(ckpt_cfg, model_cfg, pretrain_path)
    if "align" in names and align_path is not None:
        from pad.train.align import load_align_checkpoint, load_align_expert

        _check_arch(ModelConfig(**load_align_checkpoint(align_path)["model"]), model_cfg, align_path)
        experts["align"] = load_align_expert(align_path, text_emb)
    n_buckets = int(item_buckets.max())
    return PAD(experts, build_gate(gate, len(names), n_buckets, names), item_buckets)


def _check_arch(saved: ModelConfig, cfg: ModelConfig, path: str | Path) -> None:
    diff = [f"model.{f}={getattr(saved, f)!r}" for f in _ARCH if getattr(saved, f) != getattr(cfg, f)]
    if diff:
        raise PadError(f"{path}: trained with {', '.join(diff)}, which differs from params.yaml; "
                       "rerun the earlier stages (dvc repro)")


def cached_valid(data: Prepared, ev: EvaluateConfig) -> ValidFn:
    """valid_fn for `fit`: validation HR/nDCG@k with the experts' item tables computed once."""
    inner = valid_headline(data, ev)

    def valid_fn(model: PAD) -> dict[str, float]:
        with model.cached_items():
            return inner(model)

    return valid_fn


def finetune(data: Prepared, model: PAD, model_cfg: ModelConfig, cfg: FinetuneConfig, ev: EvaluateConfig, *,
             device: torch.device, log_path: str | Path, resume_root: str | Path, world: int = 1,
             files: tuple[str | Path, ...] = ()) -> FitResult:
    """Train `model` (in place) with the recommendation loss; it keeps the best-validation weights."""
    seed_everything(cfg.seed)
    model.to(device)
    resume = Path(resume_root) / f"finetune-{fingerprint(model_cfg, cfg, ev.k, world, files=files)}"
    return fit(model, data.train, functools.partial(recommendation_loss, kind=model_cfg.loss),
               cached_valid(data, ev), train_config(cfg), log_path=log_path, resume_dir=resume,
               monitor=f"ndcg_{ev.k}", desc="finetune", lr_by_prefix={"gate.": cfg.gate_lr, "experts.id.": cfg.pretrained_lr,
                                                                 "experts.align.": cfg.pretrained_lr})


def finetune_metrics(model: PAD, data: Prepared, result: FitResult, ev: EvaluateConfig) -> dict[str, Any]:
    """metrics/finetune.json: pretrain.json's layout (valid, test, train) plus the gate's weights."""
    with model.cached_items():
        metrics = final_metrics(model, data, result, ev)
    table = model.gate_weights()  # (B, E)
    metrics["gate"] = {name: {str(b + 1): round(float(table[b, e]), 4) for b in range(len(table))}
                       for e, name in enumerate(model.names)}
    return metrics


def save_pad(model: PAD, model_cfg: ModelConfig, cfg: FinetuneConfig, path: str | Path, **info: Any) -> None:
    """Write the PAD model atomically (format `pad.pad/1`; the text matrix is not stored)."""
    text_dim = next((e.items.text_emb.shape[1] for e in model.experts.values() if hasattr(e.items, "text_emb")), 0)
    save_torch({"format": FORMAT, "model": dataclasses.asdict(model_cfg), "finetune": dataclasses.asdict(cfg),
                "experts": model.names, "gate": cfg.gate, "n_items": len(model.item_buckets) - 1,
                "text_dim": text_dim, "state_dict": model.cpu().state_dict(), **info}, path)


def load_pad_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict of `save_pad` (checked format), on CPU."""
    return load_checkpoint(path, FORMAT, "PAD model", "finetune")


def load_pad_model(path: str | Path, text_emb: Tensor | np.ndarray) -> PAD:
    """The fine-tuned PAD model on CPU in eval mode, rebuilt over the frozen (N+1, D) `text_emb`."""
    ckpt = load_pad_checkpoint(path)
    text_emb = torch.as_tensor(text_emb, dtype=torch.float32)
    if ckpt["text_dim"] and tuple(text_emb.shape) != (ckpt["n_items"] + 1, ckpt["text_dim"]):
        raise PadError(f"{path}: trained on text embeddings of shape ({ckpt['n_items'] + 1}, {ckpt['text_dim']}), "
                       f"got {tuple(text_emb.shape)}; rerun the finetune stage on the current embeddings")
    cfg = ModelConfig(**ckpt["model"])
    buckets = ckpt["state_dict"]["item_buckets"]
    model = build_pad(ckpt["experts"], ckpt["gate"], cfg, text_emb, buckets)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
