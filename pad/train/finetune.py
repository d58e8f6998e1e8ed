"""Phase 3 (DESIGN §6): the PAD model = ID + alignment + LLM experts fused by a frequency-aware gate.

1. The ID expert comes from phase 1 (`models/pretrain.pt`), the alignment expert from phase 2
   (`models/align.pt`); both were early-stopped on validation nDCG in their phase and are kept as they are.
2. The LLM expert (frozen text embedding → its own text tower → its own `model.backbone`) starts as the
   alignment expert's text-only view (its tower and backbone, no ID vectors) and is fine-tuned alone with
   the recommendation loss `model.loss` (no MMD), early-stopped on validation nDCG.
3. The gate is fitted on the validation split (held-out targets), with the experts fixed: `pad.train.gate`.
   With `finetune.gate_check` it is first cross-fitted on two halves of the validation users; if on the
   held-out halves it does not beat the best expert alone, it is pinned to that expert instead.

Why not train the gate on the training sequences as the paper does: there the phase-1 ID expert has
memorised the targets, so a gate fitted on them trusts it far too much. Measured on Prime Pantry
(RESULTS.md, benchmarks/gate_fit_data.py): the same three trained experts with a gate fitted on the last
training targets reach test HR@10 5.74 / nDCG@10 3.47, with the gate fitted on the validation targets
7.40 / 4.36. The gate has 3 × 10 numbers (bucket) to fit on ~13k targets; the test split stays untouched,
but PAD's validation metrics are in-sample for the gate.

Checkpoint (format `pad.pad/3`): {"model": asdict(ModelConfig), "finetune": asdict(FinetuneConfig),
"experts": [names], "gate": kind, "fusion": the alignment fusion (sets the text towers), "n_items",
"n_buckets" (the data's B, which sizes the gate even when the coldest buckets are empty; new in /3),
"text_dim", "state_dict", ...}; the text matrix is not stored: `load_pad_model(path, text_emb)` rebuilds the
modules over it and loads the weights.
"""
from __future__ import annotations

import dataclasses
import functools
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pad.config import EvaluateConfig, FinetuneConfig, ModelConfig, train_config
from pad.errors import PadError
from pad.evaluation.ranking import sample_users
from pad.io import save_torch
from pad.losses.recommendation import recommendation_loss
from pad.models import Expert, build_backbone, build_id_expert
from pad.models.gate import build_gate, pin_gate
from pad.models.pad import EXPERTS, PAD
from pad.models.text import AlignedItems, TextItems, fusion_tower
from pad.train.checkpoint import checkpoint_contents, load_checkpoint, load_pretrained, resume_folder
from pad.train.fused_llm import only_trainable
from pad.train.gate import GateCheck, check_gate, fit_gate
from pad.train.live import EpochLog
from pad.train.loop import FitResult, fit, seed_everything
from pad.train.pretrain import Prepared, final_metrics, valid_headline

FORMAT = "pad.pad/3"
_ARCH = ("backbone", "dim", "blocks", "heads", "max_len")  # ModelConfig fields that shape the weights


def llm_expert(text_emb: Tensor, cfg: ModelConfig, tower: str = "linear") -> Expert:
    """The LLM expert: frozen (N+1, D) text → text tower → (N+1, d), and a fresh `model.backbone`."""
    return Expert(TextItems(text_emb, cfg.dim, cfg.dropout, tower), build_backbone(cfg))


def _fresh_experts(names: Sequence[str], cfg: ModelConfig, text_emb: Tensor, fusion: str) -> dict[str, Expert]:
    """Untrained experts of the right shapes (the modules a checkpoint's weights are loaded into)."""
    n_items = text_emb.shape[0] - 1
    make = {"id": lambda: build_id_expert(cfg, n_items),
            "align": lambda: Expert(AlignedItems(text_emb, cfg.dim, cfg.dropout, fusion=fusion), build_backbone(cfg)),
            "llm": lambda: llm_expert(text_emb, cfg, fusion_tower(fusion))}
    return {name: make[name]() for name in names}


def text_view(aligned: Expert, llm: Expert) -> None:
    """Start the LLM expert as the alignment expert's text-only view: copy its text tower and backbone."""
    llm.items.mlp.load_state_dict(aligned.items.mlp.state_dict())
    llm.backbone.load_state_dict(aligned.backbone.state_dict())


def check_experts(names: Sequence[str]) -> tuple[str, ...]:
    """`finetune.experts` in canonical order (id, align, llm); a PadError if empty, unknown or repeated."""
    bad = [n for n in names if n not in EXPERTS]
    if not names or bad or len(set(names)) != len(names):
        raise PadError(f"params.yaml: 'finetune.experts' must be a non-empty subset of {list(EXPERTS)} "
                       f"without repeats, got {list(names)}")
    return tuple(n for n in EXPERTS if n in names)


def build_pad(names: Sequence[str], gate: str, model_cfg: ModelConfig, text_emb: Tensor | np.ndarray,
              item_buckets: Tensor, *, n_buckets: int, fusion: str = "sum", pretrain_path: str | Path | None = None,
              align_path: str | Path | None = None) -> PAD:
    """The PAD model of `finetune.experts`/`finetune.gate`, its gate sized for the data's `n_buckets`
    (not the largest bucket present: the coldest may be empty). With paths, the ID and alignment experts are
    loaded from their phase checkpoints and the LLM expert starts as the alignment expert's text view (the
    fusion, which sets the text towers, then comes from the alignment checkpoint); else all are fresh."""
    names = check_experts(names)
    text_emb = torch.as_tensor(text_emb, dtype=torch.float32)
    if text_emb.shape[0] != len(item_buckets):
        raise PadError(f"the embeddings have {text_emb.shape[0] - 1} items but the items file has "
                       f"{len(item_buckets) - 1}; rerun the embed stage (dvc repro embed)")
    aligned = None
    if align_path is not None:
        from pad.train.align import align_expert_from_checkpoint, load_align_checkpoint

        ckpt = load_align_checkpoint(align_path)
        _check_arch(ModelConfig(**ckpt["model"]), model_cfg, align_path)
        fusion = ckpt["align"]["fusion"]
        aligned = align_expert_from_checkpoint(ckpt, text_emb, align_path)
    experts = _fresh_experts(names, model_cfg, text_emb, fusion)
    if "id" in names and pretrain_path is not None:
        experts["id"], ckpt_cfg = load_pretrained(pretrain_path)
        _check_arch(ckpt_cfg, model_cfg, pretrain_path)
    if aligned is not None and "align" in names:
        experts["align"] = aligned
    if aligned is not None and "llm" in names:
        text_view(aligned, experts["llm"])
    return PAD(experts, build_gate(gate, len(names), n_buckets, names), item_buckets, fusion)


def _check_arch(saved: ModelConfig, cfg: ModelConfig, path: str | Path) -> None:
    diff = [f"model.{f}={getattr(saved, f)!r}" for f in _ARCH if getattr(saved, f) != getattr(cfg, f)]
    if diff:
        raise PadError(f"{path}: trained with {', '.join(diff)}, which differs from params.yaml; "
                       "rerun the earlier stages (dvc repro)")


def finetune(data: Prepared, model: PAD, model_cfg: ModelConfig, cfg: FinetuneConfig, ev: EvaluateConfig, *,
             device: torch.device, live_dir: str | Path, resume_root: str | Path, world: int = 1,
             files: tuple[str | Path, ...] = ()) -> tuple[FitResult, list[float], GateCheck | None]:
    """Fine-tune the LLM expert alone (in place; best-validation weights kept), then fit the gate on the
    validation split, or on early stopping's seeded sample of `evaluate.valid_users` of its users (checked
    first with `finetune.gate_check`: pinned to the best expert where it loses).
    Returns the LLM expert's fit (epochs 0 without one), the gate's epoch losses (none when pinned) and
    the check (None without one)."""
    seed_everything(cfg.seed)
    model.to(device)
    result = FitResult(best_epoch=0, best_valid={}, epochs_run=0, train_s=0.0, stop_reason="no llm expert")
    if "llm" in model.experts:
        resume = resume_folder(resume_root, "finetune", model_cfg, cfg, ev.k, world, files=files)
        with trained_scorer(model, cfg.llm_objective) as scorer:
            result = fit(scorer, data.train, functools.partial(recommendation_loss, kind=model_cfg.loss),
                         valid_headline(data, ev), train_config(cfg), live_dir=live_dir, resume_dir=resume,
                         monitor=f"ndcg_{ev.k}", desc="finetune llm")
    elif not (torch.distributed.is_initialized() and torch.distributed.get_rank()):
        EpochLog(live_dir).close()  # no LLM expert to train: an empty log, so the stage's outputs exist
    valid = sample_users(data.splits["valid"], ev.valid_users, ev.seed)  # early stopping's users (all by default)
    fit_on = functools.partial(fit_gate, lr=cfg.gate_lr, epochs=cfg.gate_epochs, batch_size=cfg.batch_size, seed=cfg.seed,
                            user_chunk=ev.user_chunk)
    check = None
    if cfg.gate_check and len(model.names) > 1:
        check = check_gate(model, valid, fit_on, k=ev.k, user_chunk=ev.user_chunk, seed=cfg.seed)
    if check is not None and check.choice != "gate":
        pin_gate(model.gate, model.names.index(check.choice))
        return result, [], check
    return result, fit_on(model, valid), check


@contextmanager
def trained_scorer(model: PAD, objective: str) -> Iterator[nn.Module]:
    """What the LLM expert's fine-tuning trains: the expert alone, or PAD's fused score with the other experts
    and the gate frozen (`finetune.llm_objective`, pad.train.fused_llm)."""
    if objective == "alone" or len(model.names) == 1:
        yield model.experts["llm"]
        return
    with only_trainable(model, "llm") as scorer:
        yield scorer


def finetune_metrics(model: PAD, data: Prepared, result: FitResult, gate_losses: Sequence[float],
                     ev: EvaluateConfig, check: GateCheck | None = None) -> dict[str, Any]:
    """metrics/finetune.json: pretrain.json's layout (valid, test, train: of the LLM expert's fine-tuning, plus
    the gate's last fitting loss), the gate's weights and its check (cross-fitted valid nDCG, choice)."""
    metrics = final_metrics(model, data, result, ev)
    if gate_losses:
        metrics["train"]["gate_loss"] = round(gate_losses[-1], 6)
    table = model.gate_weights()  # (B, E)
    metrics["gate"] = {name: {str(b + 1): round(float(table[b, e]), 4) for b in range(len(table))}
                       for e, name in enumerate(model.names)}
    if check is not None:
        metrics["gate_check"] = {"choice": check.choice, "folds": check.folds,
                                 f"valid_ndcg_{ev.k}": check.valid_ndcg}
    return metrics


def save_pad(model: PAD, model_cfg: ModelConfig, cfg: FinetuneConfig, path: str | Path, **info: Any) -> None:
    """Write the PAD model atomically (format `pad.pad/3`; the text matrix is not stored)."""
    text_dim = next((e.items.text_emb.shape[1] for e in model.experts.values() if hasattr(e.items, "text_emb")), 0)
    save_torch({"format": FORMAT, "model": dataclasses.asdict(model_cfg), "finetune": dataclasses.asdict(cfg),
                "experts": model.names, "gate": cfg.gate, "fusion": model.fusion, "n_items": len(model.item_buckets) - 1,
                "n_buckets": model.gate.n_buckets, "text_dim": text_dim, "state_dict": model.cpu().state_dict(), **info}, path)


def load_pad_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict of `save_pad` (checked format), on CPU."""
    return load_checkpoint(path, FORMAT, "PAD model", "finetune")


def load_pad_model(path: str | Path, text_emb: Tensor | np.ndarray) -> PAD:
    """The fine-tuned PAD model on CPU in eval mode, rebuilt over the frozen (N+1, D) `text_emb`."""
    ckpt = load_pad_checkpoint(path)
    text_emb = torch.as_tensor(text_emb, dtype=torch.float32)
    with checkpoint_contents(path, "finetune"):
        if ckpt["text_dim"] and tuple(text_emb.shape) != (ckpt["n_items"] + 1, ckpt["text_dim"]):
            raise PadError(f"{path}: trained on text embeddings of shape ({ckpt['n_items'] + 1}, {ckpt['text_dim']}), "
                           f"got {tuple(text_emb.shape)}; rerun the finetune stage on the current embeddings")
        cfg = ModelConfig(**ckpt["model"])
        buckets = ckpt["state_dict"]["item_buckets"]
        model = build_pad(ckpt["experts"], ckpt["gate"], cfg, text_emb, buckets, n_buckets=ckpt["n_buckets"],
                          fusion=ckpt["fusion"])
        model.load_state_dict(ckpt["state_dict"])
    return model.eval()
