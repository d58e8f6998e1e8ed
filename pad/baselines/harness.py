"""Train and evaluate the baselines (DESIGN §12) under PAD's protocol: the same prepared data and split, text
embeddings, `model.*` backbone and loss, training loop (AdamW, early stopping on validation nDCG@k with
patience, best-validation weights kept) and full-ranking evaluation (history excluded and `unmasked`, overall,
per item bucket and group, per user history group).

metrics/baselines.json: {method: {"valid": ..., "test": ..., "train": {"best_epoch", "epochs"}}}, the valid/test
trees laid out as evaluate.json's per model ({hr_10, ndcg_10, warm, median, cold, buckets, history, unmasked,
...}); {} when `baselines.methods` is empty. metrics/baselines_per_user.parquet: every method's per-user rows
(pad.evaluation.per_user's layout, model = the method), so `pad report` tests PAD against each one user by user.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import torch
from torch import Tensor

from pad.baselines import alphafuse, ctrl, disco, hybrid, llmesr, llminit, make, morec, smem
from pad.config import BaselinesConfig, EvaluateConfig, ModelConfig, train_config
from pad.errors import PadError
from pad.evaluation.phases import evaluate_models_per_user
from pad.evaluation.users import HistoryGroups
from pad.losses.recommendation import recommendation_loss
from pad.models import Expert
from pad.train.checkpoint import resume_folder
from pad.train.loop import FitResult, LossFn, clear_resume, fit, seed_everything
from pad.train.pretrain import Prepared, valid_headline

Builder = Callable[[Tensor, ModelConfig, BaselinesConfig], Expert]
Objective = Callable[[list[np.ndarray], Tensor, ModelConfig, BaselinesConfig], LossFn]
FitAlone = Callable[[Expert], None]
Pretrain = Callable[[Expert, Tensor, ModelConfig, BaselinesConfig, FitAlone], Any]

# method name -> its module's `build(text_emb, model_cfg, cfg) -> Expert`
BUILDERS: dict[str, Builder] = {"hybrid": hybrid.build, "morec": morec.build, "llminit": llminit.build,
                                "alphafuse": alphafuse.build, "llmesr": llmesr.build, "ctrl": ctrl.build,
                                "smem": smem.build, "make": make.build, "disco": disco.build}
# methods with a loss of their own: `objective(sequences, text_emb, model_cfg, cfg) -> loss_fn`; the others
# train with the recommendation loss alone
OBJECTIVES: dict[str, Objective] = {"llmesr": llmesr.objective, "disco": disco.objective}
# methods with a pre-training step, run on the freshly built expert (in place) before its recommendation training:
# `pretrain(expert, text_emb, model_cfg, cfg, fit_alone)`. `fit_alone(part)` trains a part of the expert (sharing its
# modules) alone with `model.loss` under the same settings, validation, early stopping and resume (MAKE's text
# expert); CTRL's step reads no interactions and does not use it.
PRETRAINS: dict[str, Pretrain] = {"ctrl": ctrl.pretrain, "make": make.pretrain}


def train_method(method: str, data: Prepared, sequences: list[np.ndarray], text_emb: Tensor | np.ndarray,
                 model_cfg: ModelConfig, cfg: BaselinesConfig, ev: EvaluateConfig, *, device: torch.device,
                 resume_root: str | Path, world: int = 1,
                 files: tuple[str | Path, ...] = ()) -> tuple[Expert, FitResult]:
    """Seed, build `method`'s expert over the frozen (N+1, D) text matrix, run its pre-training step if it has
    one (PRETRAINS) and train it with `model.loss` (plus the method's own terms); returns it with its
    best-validation weights (a resumed run reruns a seeded step that reads no interactions and skips a part's
    training: `fit` restores the saved weights either way). `sequences` are the prepared ones
    (`data` was built from them: batch.users index them)."""
    if method not in BUILDERS:
        raise PadError(f"unknown baseline {method!r}; known: {', '.join(BUILDERS)}")
    text_emb = torch.as_tensor(text_emb, dtype=torch.float32)
    if text_emb.shape[0] != data.n_items + 1:
        raise PadError(f"the text embeddings have {text_emb.shape[0] - 1} items but the prepared data has "
                       f"{data.n_items}; rerun the embed stage on the current items file (dvc repro embed)")
    seed_everything(cfg.seed)
    expert = BUILDERS[method](text_emb, model_cfg, cfg).to(device)
    own = dataclasses.replace(cfg, methods=())  # the run does not depend on which other methods are listed
    resume = resume_folder(resume_root, f"baselines-{method}", model_cfg, own, ev.k, world, files=files)
    rec_loss = functools.partial(recommendation_loss, kind=model_cfg.loss)
    parts: list[FitResult] = []

    def fit_alone(part: Expert) -> None:
        if (resume / "last.pt").is_file():  # a resumed run's state already holds what the part learned
            return
        parts.append(fit(part, data.train, rec_loss, valid_headline(data, ev), train_config(cfg),
                         resume_dir=resume.with_name(f"{resume.name}-pretrain"), monitor=f"ndcg_{ev.k}",
                         desc=f"{method} pretrain"))

    if method in PRETRAINS:
        PRETRAINS[method](expert, text_emb, model_cfg, cfg, fit_alone)
    loss_fn = OBJECTIVES[method](sequences, text_emb, model_cfg, cfg) if method in OBJECTIVES else rec_loss
    result = fit(expert, data.train, loss_fn,
                 valid_headline(data, ev), train_config(cfg), resume_dir=resume, monitor=f"ndcg_{ev.k}",
                 desc=method)
    for part in parts:
        clear_resume(part)
    return expert, result


def run_baselines(data: Prepared, sequences: list[np.ndarray], text_emb: Tensor | np.ndarray,
                  model_cfg: ModelConfig, cfg: BaselinesConfig, ev: EvaluateConfig, *, device: torch.device,
                  resume_root: str | Path, groups: HistoryGroups, user_idx: np.ndarray, world: int = 1,
                  files: tuple[str | Path, ...] = ()) -> tuple[dict[str, Any], dict[str, Any], list[pl.DataFrame]]:
    """(metrics, timings, per-user rows) of every method in `cfg.methods`, trained and evaluated one after the
    other; `groups`: the users' history groups (pad.evaluation.users), `user_idx` (U,): their ids in
    sequences.parquet order (pad.evaluation.per_user.read_user_idx)."""
    metrics: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    rows: list[pl.DataFrame] = []
    for method in cfg.methods:
        start = time.perf_counter()
        expert, result = train_method(method, data, sequences, text_emb, model_cfg, cfg, ev, device=device,
                                      resume_root=resume_root, world=world, files=files)
        scores, users = evaluate_models_per_user({method: expert}, data.splits, data.item_buckets, ev.k, ev.user_chunk,
                                                 n_buckets=data.n_buckets, groups=groups, user_idx=user_idx)
        rows += users
        metrics[method] = {split: scores[split][method] for split in data.splits}
        metrics[method]["train"] = {"best_epoch": result.best_epoch, "epochs": result.epochs_run}
        timings[method] = {**result.timings(), "total_s": round(time.perf_counter() - start, 1)}
        clear_resume(result)
        test = metrics[method]["test"]
        print(f"baseline {method}: test HR@{ev.k} {test[f'hr_{ev.k}']:.4f} nDCG@{ev.k} {test[f'ndcg_{ev.k}']:.4f} "
              f"(best epoch {result.best_epoch})", flush=True)
    return metrics, timings, rows
