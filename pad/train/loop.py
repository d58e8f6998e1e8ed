"""The training loop every phase reuses: AdamW, seeded, early stopping on validation nDCG@10,
best-validation weights kept, time budget, per-epoch log (DVCLive, `pad.train.live`), resume after a kill, DDP.

A non-finite training loss stops the stage with a one-line PadError (nothing is saved from such a
run). The resume state (`resume_dir/last.pt`) is read with `weights_only=True`; an unreadable one (a
truncated file) is reported on one line and the phase starts from scratch. The stage deletes the folder
once its outputs are written (`clear_resume`).

The caller supplies the loss (`loss_fn(model, batch) -> loss` or `(loss, {"name": value})`; the
extra values are averaged per epoch and logged under their names) and the validation
(`valid_fn(model) -> {"ndcg_10": ..., "hr_10": ...}`, logged as `valid_<key>`). Frozen parameters
are those with `requires_grad=False`: they never reach the optimizer. Under `torchrun`
(torch.distributed initialised) users are sharded over ranks, gradients all-reduced by
DistributedDataParallel; every rank validates its share of the users (`pad.evaluation.ranking`), rank 0
logs and checkpoints.
"""
from __future__ import annotations

import copy
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pad.config import TrainConfig
from pad.errors import PadError
from pad.io import load_torch, save_torch
from pad.train.data import Batch, TrainData
from pad.train.live import TIMING_KEYS, EpochLog

LossOutput = Tensor | tuple[Tensor, dict[str, Tensor | float]]
LossFn = Callable[[nn.Module, Batch], LossOutput]
ValidFn = Callable[[nn.Module], dict[str, float]]


@dataclass
class FitResult:
    """What `fit` leaves: the model holds the best-validation weights when it returns."""

    best_epoch: int
    best_valid: dict[str, float]
    epochs_run: int
    train_s: float
    stop_reason: str  # "patience", "time_budget" or "epochs"
    rows: list[dict[str, float]] = field(default_factory=list)
    resume_dir: Path | None = None  # the run's resume state, to delete once the outputs are written

    def timings(self) -> dict[str, Any]:
        """Training wall time and throughput, in total and per epoch (`epochs`: epoch, epoch_s, samples_per_s,
        eval_s, epoch_cpu_s): kept out of the DVC metrics and the training log (they differ run to run)."""
        rows = self.rows
        return {"seconds": round(self.train_s, 1),
                "samples_per_s": round(sum(r["samples_per_s"] for r in rows) / max(len(rows), 1), 1),
                "epochs": [{k: r[k] for k in ("epoch", *TIMING_KEYS) if k in r} for r in rows]}


def clear_resume(result: FitResult) -> None:
    """Delete a finished run's resume folder (call after the stage's outputs are written): a later run,
    e.g. `dvc repro -f`, trains anew instead of returning these weights."""
    if result.resume_dir is not None:
        shutil.rmtree(result.resume_dir, ignore_errors=True)


def seed_everything(seed: int) -> None:
    """Seed every generator and ask torch for deterministic kernels: with several threads some CPU
    kernels (e.g. the embedding gradient's scatter-add) otherwise sum in a different order run to run,
    and the same params gave training losses 1e-6 apart (warn_only: ops without a deterministic
    version, mostly on CUDA, warn instead of failing)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's condition for determinism
    torch.use_deterministic_algorithms(True, warn_only=True)


class _Step(nn.Module):
    """Wraps model + loss so DistributedDataParallel sees the whole loss as one forward."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Batch) -> LossOutput:
        return self.loss_fn(self.model, batch)


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def fit(model: nn.Module, data: TrainData, loss_fn: LossFn, valid_fn: ValidFn, cfg: TrainConfig, *,
        live_dir: str | Path | None = None, resume_dir: str | Path | None = None, monitor: str = "ndcg_10",
        desc: str = "train", find_unused_parameters: bool = False,
        lr_by_prefix: dict[str, float] | None = None) -> FitResult:
    """Train `model` on `data` until patience, `cfg.epochs` or the time budget; keep the best weights.

    `lr_by_prefix` gives parameters whose name starts with a prefix their own learning rate
    (e.g. {"gate.": 0.05}); the others use `cfg.lr`.

    `resume_dir/last.pt` (written atomically after every epoch) lets a killed run continue where
    it stopped (a run killed after its last epoch returns its result without training again). Epochs
    are seeded by (cfg.seed, epoch), so a resumed run follows the same path as an uninterrupted one.
    `live_dir` gets the per-epoch log (`pad.train.live.EpochLog`, rank 0), rebuilt from the resume state's
    rows on start and complete whenever `fit` returns.
    """
    rank, world = _world()
    device = next(model.parameters()).device
    opt = Optimizer(model, cfg, lr_by_prefix or {})
    st: dict[str, Any] = {"epoch": 0, "best_epoch": 0, "best_valid": {}, "best_state": None,
                          "bad_epochs": 0, "rows": [], "train_s": 0.0, "stop_reason": ""}
    last = Path(resume_dir) / "last.pt" if resume_dir else None
    saved = _resume_state(last, device)
    if saved is not None:
        model.load_state_dict(saved.pop("model"))
        opt.load_state_dict(saved.pop("optimizer"))
        st.update(saved)
    log = EpochLog(live_dir, st["rows"]) if rank == 0 and live_dir is not None else None
    step = _Step(model, loss_fn)
    if world > 1:
        step = DistributedDataParallel(step, find_unused_parameters=find_unused_parameters)
    while not st["stop_reason"]:
        epoch = st["epoch"] + 1
        torch.manual_seed(cfg.seed * 1_000 + epoch * 10 + rank)  # dropout stream of this epoch
        model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        sums = _train_epoch(step, opt, data, cfg, epoch, rank, world, device, desc)
        epoch_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        st["train_s"] += epoch_s
        t1 = time.perf_counter()
        valid = valid_fn(model)  # on every rank: the evaluation shards the users among them
        decision: list[Any] = [None]
        if rank == 0:
            row = {"epoch": epoch, "train_loss": sums.pop("loss"), **{f"valid_{k}": v for k, v in valid.items()},
                   "epoch_s": round(epoch_s, 3), "samples_per_s": round(data.n_positions / epoch_s, 1),
                   "eval_s": round(time.perf_counter() - t1, 3), "epoch_cpu_s": round(cpu_s, 3), **sums}
            decision = [_update(st, model, valid, row, epoch, cfg, monitor)]
        if world > 1:
            dist.broadcast_object_list(decision, src=0)
        st.update(decision[0] if rank else {})
        st["epoch"] = epoch
        if rank == 0:
            if log is not None:
                log.add(row)
            if last is not None:
                save_torch({**st, "model": model.state_dict(), "optimizer": opt.state_dict()}, last)
            print(f"{desc} epoch {epoch}: loss {row['train_loss']:.4f} valid {monitor} {valid[monitor]:.4f} "
                  f"({epoch_s:.1f}s, {row['samples_per_s']:.0f} samples/s)", flush=True)
    if log is not None:
        log.close()
    if st["best_state"] is not None:
        model.load_state_dict(st["best_state"])
    if world > 1:  # rank 0 holds the best weights; every rank returns the same model
        for t in model.state_dict().values():
            dist.broadcast(t, src=0)
    return FitResult(st["best_epoch"], st["best_valid"], st["epoch"], st["train_s"], st["stop_reason"], st["rows"],
                     Path(resume_dir) if resume_dir else None)


def _resume_state(last: Path | None, device: torch.device) -> dict[str, Any] | None:
    """The saved state of a killed run, or None; an unreadable file is reported on one line and removed."""
    if last is None or not last.is_file():
        return None
    try:
        return load_torch(last, what="resume state", map_location=device)
    except PadError as exc:
        print(f"warning: {exc}; starting this phase from scratch", file=sys.stderr, flush=True)
        last.unlink(missing_ok=True)
        return None


class Optimizer:
    """AdamW over the trainable parameters, except the item tables with sparse gradients
    (`model.item_updates: rows`): those get SparseAdam, lazy Adam that reads and updates only the rows a
    batch touched, so a step's cost follows the batch, not the catalogue. Stepped, zeroed and saved as one."""

    def __init__(self, model: nn.Module, cfg: TrainConfig, lr_by_prefix: dict[str, float]) -> None:
        sparse = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding) and m.sparse}
        dense_groups = _param_groups(model, cfg.lr, lr_by_prefix, lambda p: id(p) not in sparse)
        sparse_groups = _param_groups(model, cfg.lr, lr_by_prefix, lambda p: id(p) in sparse)
        if sparse_groups and cfg.weight_decay > 0:
            raise PadError(f"weight_decay is {cfg.weight_decay}, but with 'model.item_updates' rows the item table "
                           "gets lazy Adam, which has no weight decay; set the phase's weight_decay to 0 or "
                           "'model.item_updates' to dense")
        # fused: one multi-threaded kernel for the whole update; on a 423k x 64 table 17 ms a step instead
        # of 158 ms for the default per-tensor loop (benchmarks/scale.md, step cost)
        fused = all(p.device.type in ("cpu", "cuda") for g in dense_groups for p in g["params"])
        self.parts = [torch.optim.AdamW(dense_groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)]
        if sparse_groups:
            self.parts.append(torch.optim.SparseAdam(sparse_groups, lr=cfg.lr))

    def zero_grad(self) -> None:
        for part in self.parts:
            part.zero_grad(set_to_none=True)

    def step(self) -> None:
        for part in self.parts:
            part.step()

    def state_dict(self) -> list[dict[str, Any]]:
        return [part.state_dict() for part in self.parts]

    def load_state_dict(self, states: list[dict[str, Any]]) -> None:
        for part, state in zip(self.parts, states, strict=True):
            part.load_state_dict(state)


def _param_groups(model: nn.Module, lr: float, lr_by_prefix: dict[str, float],
                  keep: Callable[[nn.Parameter], bool]) -> list[dict[str, Any]]:
    """Optimizer groups of the trainable parameters that `keep`, each with the lr of the first matching name
    prefix (else `lr`)."""
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad and keep(p):
            own = next((v for prefix, v in lr_by_prefix.items() if name.startswith(prefix)), lr)
            groups.setdefault(own, []).append(p)
    return [{"params": ps, "lr": group_lr} for group_lr, ps in groups.items()]


def _train_epoch(step: nn.Module, opt: Optimizer, data: TrainData, cfg: TrainConfig, epoch: int,
                 rank: int, world: int, device: torch.device, desc: str) -> dict[str, float]:
    """One pass over the users; returns the epoch's mean loss and mean extra values (all ranks)."""
    totals: dict[str, float] = {}
    n = 0
    bar = tqdm(data.batches(epoch, cfg.batch_size, cfg.seed, rank, world), total=data.n_batches(cfg.batch_size, world),
               desc=f"{desc} {epoch}", disable=rank != 0, leave=False, unit="batch")
    t0, seen = time.perf_counter(), 0
    for batch in bar:
        out = step(batch.to(device))
        loss, extra = out if isinstance(out, tuple) else (out, {})
        if not math.isfinite(value := loss.item()):
            raise PadError(f"{desc} epoch {epoch}, batch {n + 1}: the training loss is {value}; check the params "
                           "(learning rate, loss weights) and the inputs (e.g. non-finite text embeddings); "
                           "nothing was saved from this run")
        opt.zero_grad()
        loss.backward()
        opt.step()
        for k, v in {"loss": loss, **extra}.items():
            totals[k] = totals.get(k, 0.0) + float(v.detach() if isinstance(v, Tensor) else v)
        n += 1
        seen += int((batch.targets != 0).sum()) * world
        bar.set_postfix(loss=f"{value:.4f}", samples_s=f"{seen / (time.perf_counter() - t0):.0f}")
    means = torch.tensor([totals[k] for k in totals] + [n], dtype=torch.float64)
    if world > 1:
        dist.all_reduce(means)
    return {k: round(float(v / means[-1]), 6) for k, v in zip(totals, means[:-1])}


def _update(st: dict[str, Any], model: nn.Module, valid: dict[str, float], row: dict[str, float], epoch: int,
            cfg: TrainConfig, monitor: str) -> dict[str, Any]:
    """Early-stopping bookkeeping after an epoch (rank 0); returns the fields every rank must share."""
    st["rows"].append(row)
    if epoch == 1 or valid[monitor] > st["best_valid"][monitor]:
        st.update(best_epoch=epoch, best_valid=dict(valid), bad_epochs=0,
                  best_state=copy.deepcopy(model.state_dict()))
    else:
        st["bad_epochs"] += 1
    if cfg.patience > 0 and st["bad_epochs"] >= cfg.patience:
        st["stop_reason"] = "patience"
    elif cfg.time_budget_s > 0 and st["train_s"] >= cfg.time_budget_s:
        st["stop_reason"] = "time_budget"
    elif epoch >= cfg.epochs:
        st["stop_reason"] = "epochs"
    return {k: st[k] for k in ("best_epoch", "best_valid", "bad_epochs", "stop_reason", "train_s")}

