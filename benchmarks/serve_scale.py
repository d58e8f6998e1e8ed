"""Serving at Electronics size (issue 13 item 7): PAD vs SASRec top-k latency and item-table memory at N items.

Latency and memory depend on sizes, not on trained weight values (except how often the int8 shortlist's
certificate fails and falls back to fp32, printed at the end; trained models: serve_latency.py), so this builds (in --work) a workspace
of the paper's Electronics catalogue size without training: items.parquet (synthetic Zipf popularity ->
train_freq -> buckets, `pad.data.buckets`), seeded random unit text vectors of --text-dim written by
`pad.embed.store.write_embeddings`, --users random histories of 5-18 popular-weighted items, and the three
checkpoints of freshly initialised (seeded) models saved by the training code itself:
`build_id_expert` + `save_expert` (pretrain), `build_align_expert` + `save_align_expert` (align),
`build_pad` from those two files + `save_pad` (finetune), as stages/*.py do; params.yaml is the project's.
The build runs in a child process so this process's peak RSS is the serving side only.

Then, as benchmarks/serve_latency.py (its functions, imported): load times with and without the item
cache, the first request, memory, and p50/p99 of interleaved top-k requests for PAD and SASRec alone, each
scored both ways (fp32 matmul, int8 shortlist with exact rescoring: pad/serve/shortlist.py); last, where a
request's time goes (backbone pass, scoring matmul fp32 and int8, top-k).

    python benchmarks/serve_scale.py --work /tmp/serve-scale --repeats 3 --requests 300 --threads 1,default
"""
from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import resource
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from pad.config import load_section
from pad.data.buckets import assign_buckets, write_items
from pad.embed.store import write_embeddings
from pad.models import build_id_expert
from pad.serve import Recommender, default_cache_path, load_baseline, load_recommender
from pad.serve.shortlist import ShortlistScorer
from pad.train.align import build_align_expert, save_align_expert
from pad.train.checkpoint import save_expert
from pad.train.finetune import build_pad, save_pad
from serve_latency import measure, print_table, sample_histories, thread_counts, variant

ROOT = Path(__file__).resolve().parents[1]
ELECTRONICS_ITEMS = 423_191
INTERACTIONS_PER_ITEM = 5_137_265 / 423_191  # Electronics' interactions per item (DESIGN §9)


def build_workspace(work: Path, n_items: int = ELECTRONICS_ITEMS, users: int = 2000, text_dim: int = 384,
                    seed: int = 0) -> None:
    """Write a servable workspace of `n_items` items into `work` (layout of the project's params.yaml)."""
    work.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "params.yaml", work / "params.yaml")
    params = work / "params.yaml"
    paths, model_cfg = load_section("paths", params), load_section("model", params)
    p = lambda s: work / s  # noqa: E731
    data = load_section("data", params)
    rng = np.random.default_rng(seed)
    popularity = np.empty(n_items)  # Zipf over a random order of the items: item i+1 has popularity[i]
    popularity[rng.permutation(n_items)] = np.arange(1, n_items + 1) ** -data.synthetic.popularity_exponent
    popularity /= popularity.sum()
    freq = rng.multinomial(round(INTERACTIONS_PER_ITEM * n_items), popularity)  # (N,) training interactions
    n_buckets = data.n_buckets
    buckets, _ = assign_buckets(freq, n_buckets)
    write_items(pl.DataFrame({"item_idx": np.arange(1, n_items + 1, dtype=np.int32),
                              "item_id": [f"E{i:07d}" for i in range(1, n_items + 1)],
                              "text": [f"synthetic item {i}" for i in range(1, n_items + 1)],
                              "train_freq": freq.astype(np.int32), "bucket": buckets}), p(paths.items), n_buckets)
    cdf = np.cumsum(popularity)
    seqs = []
    for _ in range(users):  # 5-18 distinct items each, drawn by popularity
        draws = np.searchsorted(cdf, rng.random(64) * cdf[-1]) + 1
        seqs.append(list(dict.fromkeys(draws.tolist()))[:rng.integers(5, 19)])
    pl.DataFrame({"user_idx": np.arange(users, dtype=np.int32), "user_id": [f"U{u}" for u in range(users)],
                  "items": seqs}, schema_overrides={"items": pl.List(pl.Int32)}).write_parquet(p(paths.sequences))
    text = rng.standard_normal((n_items, text_dim), dtype=np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)  # unit vectors, as MiniLM's
    write_embeddings(np.arange(1, n_items + 1, dtype=np.int32), text, {"encoder": "synthetic"}, p(paths.embeddings))
    text_emb = np.concatenate([np.zeros((1, text_dim), np.float32), text])  # (N+1, D), as load_embeddings
    del text
    torch.manual_seed(load_section("pretrain", params).seed)
    expert = build_id_expert(model_cfg, n_items)
    save_expert(expert, model_cfg, n_items, p(paths.pretrain_model), best_epoch=0, valid={})
    align_cfg = load_section("align", params)
    torch.manual_seed(align_cfg.seed)
    aligned = build_align_expert(expert, model_cfg, text_emb, align_cfg.mode, align_cfg.fusion, align_cfg.id_scale)
    save_align_expert(aligned, model_cfg, align_cfg, p(paths.align_model), best_epoch=0, valid={}, train={})
    del expert, aligned
    ft = load_section("finetune", params)
    torch.manual_seed(ft.seed)
    model = build_pad(ft.experts, ft.gate, model_cfg, text_emb, torch.tensor([0, *buckets.tolist()]),
                      n_buckets=n_buckets, pretrain_path=p(paths.pretrain_model), align_path=p(paths.align_model))
    save_pad(model, model_cfg, ft, p(paths.finetune_model), best_epoch=0, valid={})


def rss_mib() -> float:
    """This process's resident memory now (MiB)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux: KiB


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t0


def load_both(ws: Path) -> dict[str, dict]:
    """Each model loaded twice (item cache built, then reused), and its first request; keeps the second."""
    paths = load_section("paths", ws / "params.yaml")
    p = lambda s: ws / s  # noqa: E731
    loaders = {"PAD": (paths.finetune_model, lambda: load_recommender(p(paths.finetune_model), p(paths.embeddings),
                                                                      p(paths.items))),
               "SASRec": (paths.pretrain_model, lambda: load_baseline(p(paths.pretrain_model), p(paths.items)))}
    out = {}
    for name, (model_path, load) in loaders.items():
        default_cache_path(p(model_path)).unlink(missing_ok=True)
        rss0 = rss_mib()
        rec, cold_s = timed(load)
        del rec
        gc.collect()
        rec, warm_s = timed(load)
        _, first_s = timed(rec.top_k, [1, 2, 3], 10)
        cache = default_cache_path(p(model_path))
        out[name] = {"rec": rec, "cache build s": cold_s, "cache reuse s": warm_s, "first request ms": first_s * 1e3,
                     "RSS added MiB": rss_mib() - rss0, "checkpoint MB": p(model_path).stat().st_size / 1e6,
                     "item cache MB": cache.stat().st_size / 1e6,
                     "scoring table MB": rec.folded.numel() * rec.folded.element_size() / 1e6}
    return out


def breakdown(rec: Recommender, histories: list[list[int]], k: int) -> dict[str, float]:
    """Median ms per request of each step of `Recommender.top_k` (stacked path, folded gate)."""
    steps: dict[str, list[float]] = {"backbone": [], "matmul": [], "top-k": [], "matmul, (N, E·d) layout": [],
                                     "int8 matmul (shortlist.approx)": []}
    rows = rec.folded.T.contiguous()  # (M+1, E·d): the same table item-major
    int8 = rec.shortlist or ShortlistScorer(rec.folded)
    with torch.no_grad():
        for history in histories:
            recent = torch.as_tensor(history[-rec.max_len:], dtype=torch.long)
            t0 = time.perf_counter()
            states = rec.stacked(torch.stack([t[recent] for t in rec.tables]))  # (E, d)
            t1 = time.perf_counter()
            scores = (states.reshape(1, -1) @ rec.folded)[0]  # (M+1,)
            t2 = time.perf_counter()
            scores[0] = -float("inf")
            scores[list(set(history))] = -float("inf")
            torch.topk(scores, k)
            t3 = time.perf_counter()
            rows @ states.reshape(-1)
            t4 = time.perf_counter()
            int8.approx(states.reshape(1, -1))
            t5 = time.perf_counter()
            for name, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                steps[name].append(dt * 1e3)
    return {name: statistics.median(v) for name, v in steps.items()}


def with_scoring_variants(recs: dict[str, Recommender]) -> dict[str, Recommender]:
    """`recs` plus each one scored the other way: fp32 matmul where it serves through the int8 shortlist
    (pad/serve/shortlist.py, the default from INT8_FROM items), the int8 shortlist where it does not."""
    return {**recs, **{f"{name} ({'fp32' if rec.shortlist else 'int8'} scoring)":
                       variant(rec, shortlist=None if rec.shortlist else ShortlistScorer(rec.folded))
                       for name, rec in recs.items()}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="Folder of the built workspace (made if missing).")
    ap.add_argument("--items", type=int, default=ELECTRONICS_ITEMS)
    ap.add_argument("--users", type=int, default=2000, help="Users with histories in the built workspace.")
    ap.add_argument("--text-dim", type=int, default=384)
    ap.add_argument("--rebuild", action="store_true", help="Build the workspace again even if --work has one.")
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", default="1,default", help="Comma-separated torch thread counts ('default' = torch's).")
    args = ap.parse_args()
    counts = thread_counts(args.threads)
    print(f"torch {torch.__version__}; {os.cpu_count()} CPUs; affinity {len(os.sched_getaffinity(0))}; "
          f"default threads {torch.get_num_threads()}; load {os.getloadavg()}")
    if args.rebuild or not (args.work / "params.yaml").is_file():
        child = multiprocessing.get_context("spawn").Process(
            target=build_workspace, args=(args.work, args.items, args.users, args.text_dim, args.seed))
        t0 = time.perf_counter()
        child.start()
        child.join()
        if child.exitcode:
            raise SystemExit(f"building the workspace failed (exit code {child.exitcode})")
        print(f"built {args.work} ({args.items} items, {args.users} users) in {time.perf_counter() - t0:.1f}s, "
              f"peak RSS {peak_rss_mib(resource.RUSAGE_CHILDREN):.0f} MiB")
    loaded = load_both(args.work)
    recs = {name: info.pop("rec") for name, info in loaded.items()}
    print(f"\ncatalogue {recs['PAD'].n_items} items; serving process RSS {rss_mib():.0f} MiB, "
          f"peak {peak_rss_mib():.0f} MiB (both models loaded; each loaded twice)\n")
    cols = list(loaded["PAD"])
    print("| model | " + " | ".join(cols) + " |\n" + "|---" * (len(cols) + 1) + "|")
    for name, info in loaded.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in info.values()) + " |")
    histories = sample_histories(args.work, args.requests, args.seed)
    recs = with_scoring_variants(recs)
    for threads in counts:
        print_table(measure(recs, histories, args.k, args.repeats, threads), threads, args.requests, args.k)
        parts = {name: breakdown(recs[name], histories, args.k) for name in ("PAD", "SASRec")}
        print(f"\nwhere a request's time goes ({threads} thread(s), median ms over {args.requests} requests):\n")
        print("| step | " + " | ".join(parts) + " |\n|---|---|---|")
        for step in parts["PAD"]:
            print(f"| {step} | " + " | ".join(f"{p[step]:.3f}" for p in parts.values()) + " |")
    for name, rec in recs.items():
        if rec.shortlist is not None:
            print(f"{name}: int8 certificate failed (fp32 fallback) on {rec.shortlist.fallbacks} of "
                  f"{rec.shortlist.requests} requests")
    print(f"\npeak RSS {peak_rss_mib():.0f} MiB; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
