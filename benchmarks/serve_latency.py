"""Latency of one top-k request over the whole catalogue: PAD vs the SASRec expert alone (issue 7).

Same requests for every variant (seeded random users, each user's whole sequence as history), run
interleaved request by request so that background load hits every variant alike; each variant has its
item tables precomputed (the cache next to its checkpoint). Prints a Markdown table per thread setting:
p50/p99 in ms (median over --repeats runs) and PAD / SASRec.

    python benchmarks/serve_latency.py --workspace /work/pp-serve --users 500 --repeats 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pad.config import load_section
from pad.serve import Recommender, load_baseline, load_recommender
from pad.train.data import read_sequences


def variants(ws: Path) -> dict[str, Recommender]:
    paths = load_section("paths", ws / "params.yaml")
    p = lambda s: ws / s  # noqa: E731
    pad = load_recommender(p(paths.finetune_model), p(paths.embeddings), p(paths.items))
    sasrec = load_baseline(p(paths.pretrain_model), p(paths.items))
    return with_module_variants({"PAD": pad, "SASRec": sasrec})


def variant(rec: Recommender, **changes: object) -> Recommender:
    """A copy of `rec` sharing its model and tables, with some attributes replaced (e.g. stacked=None)."""
    out = Recommender.__new__(Recommender)
    out.__dict__.update(rec.__dict__, **changes)
    return out


def with_module_variants(recs: dict[str, Recommender]) -> dict[str, Recommender]:
    """`recs` plus each one through the per-expert module calls (same tables, no stacked pass)."""
    return {**recs, **{f"{name} (module per expert)": variant(rec, stacked=None) for name, rec in recs.items()}}


def run(recs: dict[str, Recommender], histories: list[list[int]], k: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in recs}
    names = list(recs)
    for i, history in enumerate(histories):
        for name in names[i % len(names):] + names[:i % len(names)]:  # rotate the order per request
            t0 = time.perf_counter()
            recs[name].top_k(history, k)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


def sample_histories(ws: Path, users: int, seed: int) -> list[list[int]]:
    """`users` seeded random users' whole sequences (item_idx) from the workspace's sequences file."""
    seqs = read_sequences(ws / load_section("paths", ws / "params.yaml").sequences)
    picked = np.random.default_rng(seed).choice(len(seqs), size=users, replace=False)
    return [seqs[u].tolist() for u in picked]


def measure(recs: dict[str, Recommender], histories: list[list[int]], k: int, repeats: int,
            threads: int) -> dict[str, dict[str, list[float]]]:
    """{variant: {p50: [ms per run], p99: [...]}} over `repeats` interleaved runs (after a warm-up)."""
    torch.set_num_threads(threads)
    run(recs, histories[:50], k)  # warm-up
    stats = {name: {"p50": [], "p99": []} for name in recs}
    for _ in range(repeats):
        for name, t in run(recs, histories, k).items():
            stats[name]["p50"].append(float(np.percentile(t, 50)))
            stats[name]["p99"].append(float(np.percentile(t, 99)))
    return stats


def print_table(stats: dict[str, dict[str, list[float]]], threads: int, requests: int,
                k: int) -> dict[str, dict[str, float]]:
    """The Markdown table of the median run and the PAD / SASRec ratios; returns the medians."""
    med = {n: {q: statistics.median(v) for q, v in s.items()} for n, s in stats.items()}
    print(f"\n{threads} thread(s), {requests} requests x {len(stats['PAD']['p50'])} runs (median run), top-{k}:\n")
    print("| variant | p50 ms | p99 ms | p50 runs |\n|---|---|---|---|")
    for name, m in med.items():
        runs = ", ".join(f"{x:.2f}" for x in stats[name]["p50"])
        print(f"| {name} | {m['p50']:.3f} | {m['p99']:.3f} | {runs} |")
    pairs = [(n, f"SASRec{n[3:]}") for n in med if n.startswith("PAD") and f"SASRec{n[3:]}" in med]
    pairs += [("PAD", n) for n in med if n.startswith("SASRec (") and "module" not in n]  # PAD vs SASRec scored otherwise
    for a, b in pairs:
        print(f"\n{a} / {b}: p50 {med[a]['p50'] / med[b]['p50']:.2f}x, p99 {med[a]['p99'] / med[b]['p99']:.2f}x")
    return med


def thread_counts(spec: str) -> list[int]:
    """'1,default' -> [1, torch's default thread count]."""
    default = torch.get_num_threads()
    return [default if t == "default" else int(t) for t in spec.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workspace", type=Path, default=Path("/work/pp-serve"))
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", default="1,default", help="Comma-separated torch thread counts ('default' = torch's).")
    args = ap.parse_args()
    counts = thread_counts(args.threads)
    t0 = time.perf_counter()
    recs = variants(args.workspace)
    print(f"loaded in {time.perf_counter() - t0:.2f}s; catalogue {recs['PAD'].n_items} items; "
          f"torch {torch.__version__}; {os.cpu_count()} CPUs; default threads {torch.get_num_threads()}")
    histories = sample_histories(args.workspace, args.users, args.seed)
    for threads in counts:
        print_table(measure(recs, histories, args.k, args.repeats, threads), threads, args.users, args.k)

if __name__ == "__main__":
    main()
