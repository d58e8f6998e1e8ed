"""Phase 1 (DESIGN §4): train the ID expert on the prepared sequences and evaluate it by full ranking."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from pad.config import EvaluateConfig, ModelConfig, TrainConfig
from pad.errors import PadError
from pad.evaluation.ranking import RankingSplit, evaluate, evaluate_split, sample_users
from pad.losses.recommendation import negatives_per_position, recommendation_loss, shares_negatives
from pad.models import Expert, build_id_expert
from pad.train.checkpoint import resume_folder
from pad.train.data import TrainData, ranking_splits, read_item_buckets, read_sequences
from pad.train.loop import FitResult, ValidFn, fit, seed_everything


@dataclass
class Prepared:
    """Everything a training phase reads from the prepared data."""

    n_items: int
    item_buckets: Tensor  # (N+1,)
    n_buckets: int  # B, from the items file (the coldest buckets may be empty)
    train: TrainData
    splits: dict[str, RankingSplit]


def load_prepared(sequences: str | Path, items: str | Path, model: ModelConfig) -> Prepared:
    seqs = read_sequences(sequences)
    buckets, n_buckets = read_item_buckets(items)
    n_items = len(buckets) - 1
    top = max(int(s.max()) for s in seqs)
    if top > n_items or min(int(s.min()) for s in seqs) < 1:
        raise PadError(f"{sequences}: item ids must lie in 1..{n_items} (the items file), found up to {top}")
    train = TrainData(seqs, n_items, model.max_len, negatives_per_position(model.loss, model.negatives),
                      shared=shares_negatives(model.loss))
    return Prepared(n_items, buckets, n_buckets, train, ranking_splits(seqs, model.max_len))


def valid_headline(data: Prepared, ev: EvaluateConfig) -> ValidFn:
    """valid_fn for `fit`: HR@k / nDCG@k on the validation split (history excluded), or on its seeded
    sample of `evaluate.valid_users` users."""
    split = sample_users(data.splits["valid"], ev.valid_users, ev.seed)

    def valid_fn(model: torch.nn.Module) -> dict[str, float]:
        m = evaluate_split(model, split, data.item_buckets, ev.k, ev.user_chunk, n_buckets=data.n_buckets)
        return {f"ndcg_{ev.k}": m[f"ndcg_{ev.k}"], f"hr_{ev.k}": m[f"hr_{ev.k}"]}

    return valid_fn


def pretrain(data: Prepared, model_cfg: ModelConfig, cfg: TrainConfig, ev: EvaluateConfig, *,
             device: torch.device, live_dir: str | Path, resume_root: str | Path, world: int = 1,
             files: tuple[str | Path, ...] = ()) -> tuple[Expert, FitResult]:
    """Train the ID expert with `model.loss`; returns it with the best-validation weights."""
    seed_everything(cfg.seed)
    expert = build_id_expert(model_cfg, data.n_items).to(device)
    resume = resume_folder(resume_root, "pretrain", model_cfg, cfg, ev.k, world, files=files)
    result = fit(expert, data.train, functools.partial(recommendation_loss, kind=model_cfg.loss),
                 valid_headline(data, ev), cfg, live_dir=live_dir, resume_dir=resume,
                 monitor=f"ndcg_{ev.k}", desc="pretrain")
    return expert, result


def final_metrics(expert: Expert, data: Prepared, result: FitResult, ev: EvaluateConfig) -> dict[str, Any]:
    """metrics/pretrain.json: valid and test of the best-validation weights, plus the epochs (timings are
    not metrics: `FitResult.timings`). With `evaluate.valid_users` set (a large data set) both splits are
    ranked for that seeded sample of users only (`sample_users` in the file): every user is ranked once, by
    the evaluate stage, not again by each training stage."""
    splits = {name: sample_users(split, ev.valid_users, ev.seed) for name, split in data.splits.items()}
    metrics = evaluate(expert, splits, data.item_buckets, ev.k, ev.user_chunk, n_buckets=data.n_buckets)
    if len(splits["valid"].targets) < len(data.splits["valid"].targets):
        metrics["sample_users"] = len(splits["valid"].targets)
    metrics["train"] = {"best_epoch": result.best_epoch, "epochs": result.epochs_run}
    return metrics
