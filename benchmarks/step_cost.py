"""Cost of one phase-1 training step as the catalogue grows: dense AdamW vs row-wise updates (issue 13).

One SASRec step (params.yaml's `model.*` and `pretrain.*`, loss `sampled_ce`, `shared_ce` or `bce`) on a batch of random users,
split into forward + loss, backward and optimizer step, at each catalogue size, for
`model.item_updates: dense` (AdamW over the whole ID table) and `rows` (sparse gradient + lazy Adam over
the rows the batch touched). Median milliseconds over --steps steps after --warmup. Prints a Markdown table.

    python benchmarks/step_cost.py --items 8347,26449,105798,423191
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import statistics
import time

import numpy as np
import torch

from pad.config import load_section
from pad.losses.recommendation import negatives_per_position, recommendation_loss, shares_negatives
from pad.models import build_id_expert
from pad.train.data import TrainData
from pad.train.loop import Optimizer, seed_everything


def step_ms(n_items: int, updates: str, args: argparse.Namespace) -> dict[str, float]:
    model_cfg = dataclasses.replace(load_section("model"), loss=args.loss, item_updates=updates)
    train_cfg = load_section("pretrain")
    train_cfg = dataclasses.replace(train_cfg, batch_size=args.batch_size or train_cfg.batch_size)
    seed_everything(0)
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, n_items + 1, size=int(rng.integers(7, 20))) for _ in range(train_cfg.batch_size * 4)]
    negatives = args.negatives or model_cfg.negatives
    data = TrainData(seqs, n_items, model_cfg.max_len, negatives_per_position(args.loss, negatives),
                     shared=shares_negatives(args.loss))
    model = build_id_expert(model_cfg, n_items)
    opt = Optimizer(model, train_cfg, {})
    loss_fn = functools.partial(recommendation_loss, kind=args.loss)
    parts: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": []}
    batches = [b for epoch in range(1, 4) for b in data.batches(epoch, train_cfg.batch_size, 0)]
    for i in range(args.warmup + args.steps):
        batch = batches[i % len(batches)]
        t0 = time.perf_counter()
        loss = loss_fn(model, batch)
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= args.warmup:
            for name, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[name].append(dt * 1e3)
    out = {name: statistics.median(v) for name, v in parts.items()}
    out["step"] = sum(out.values())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", default="8347,26449,105798,423191", help="Comma-separated catalogue sizes.")
    ap.add_argument("--loss", default="sampled_ce", choices=("bce", "sampled_ce", "shared_ce"))
    ap.add_argument("--negatives", type=int, default=0, help="model.negatives (0 = params.yaml's)")
    ap.add_argument("--batch-size", type=int, default=0, help="pretrain.batch_size (0 = params.yaml's)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, loss {args.loss}\n")
    print("| items | item_updates | forward + loss ms | backward ms | optimizer ms | step ms |")
    print("|---|---|---|---|---|---|")
    for n in map(int, args.items.split(",")):
        for updates in ("dense", "rows"):
            r = step_ms(n, updates, args)
            print(f"| {n:,} | {updates} | {r['forward']:.1f} | {r['backward']:.1f} | {r['optimizer']:.1f} | "
                  f"{r['step']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
