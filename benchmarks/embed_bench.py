"""Items/s of the MiniLM default on Prime Pantry titles: file-order vs length-sorted batches, per shard;
with --dtypes, float32 against other `embed.dtype` values (items/s and each vector's cosine to float32).

    python benchmarks/embed_bench.py [--limit N]
    python benchmarks/embed_bench.py --dtypes int8,bfloat16 [--batch-size 64]
"""
import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from pad.config import EmbedConfig
from pad.embed.encoders import load_encoder, resolve_spec
from pad.embed.pooling import embed_batch, encode_texts

DATA = Path(__file__).resolve().parents[1] / "../shared/datasets/prime_pantry/metadata_Prime_Pantry.csv"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dtypes", default="", help="Comma-separated embed.dtype values to compare with float32.")
    args = parser.parse_args()
    texts = [t or "" for t in pl.read_csv(DATA)["title"].to_list()]
    texts = texts[: args.limit] if args.limit else texts
    cfg = EmbedConfig(encoder="hf", model="all-MiniLM-L6-v2", mntp_adapter="", adapter="", instruction="",
                      pooling="mean", max_length=64, batch_size=args.batch_size, shard_size=2048, device="cpu",
                      dtype="float32")
    if args.dtypes:
        return compare_dtypes(cfg, texts, ["float32", *args.dtypes.split(",")])
    enc = load_encoder(resolve_spec(cfg))
    encode_texts(enc, texts[:64], args.batch_size)  # warm-up
    naive = ours = 0.0
    for a in range(0, len(texts), cfg.shard_size):  # alternate per shard: load changes hit both alike
        chunk = texts[a : a + cfg.shard_size]
        t0 = time.perf_counter()
        pieces = enc.tokenize(chunk)
        for start in range(0, len(pieces), args.batch_size):  # naive: file order, padded per batch
            embed_batch(enc, pieces[start : start + args.batch_size])
        t1 = time.perf_counter()
        encode_texts(enc, chunk, args.batch_size)  # what the stage does: length-sorted within the shard
        naive, ours = naive + t1 - t0, ours + time.perf_counter() - t1
    print(f"{len(texts)} titles, batch {args.batch_size}: file order {len(texts) / naive:.0f} items/s "
          f"({naive:.1f} s), length-sorted {len(texts) / ours:.0f} items/s ({ours:.1f} s)")


def compare_dtypes(cfg: EmbedConfig, texts: list[str], dtypes: list[str]) -> None:
    """Encode every shard with each dtype in turn (so load changes hit all alike); float32 is the reference."""
    encs = {d: load_encoder(resolve_spec(replace(cfg, dtype=d))) for d in dtypes}
    seconds = dict.fromkeys(dtypes, 0.0)
    vectors: dict[str, list[np.ndarray]] = {d: [] for d in dtypes}
    for enc in encs.values():
        encode_texts(enc, texts[:64], cfg.batch_size)  # warm-up
    for a in range(0, len(texts), cfg.shard_size):
        for d, enc in encs.items():
            t0 = time.perf_counter()
            vectors[d].append(encode_texts(enc, texts[a : a + cfg.shard_size], cfg.batch_size))
            seconds[d] += time.perf_counter() - t0
    ref = np.concatenate(vectors["float32"])
    keep = np.linalg.norm(ref, axis=1) > 0  # blank titles are zero vectors in every dtype
    print(f"{len(texts)} titles, batch {cfg.batch_size}, {torch.get_num_threads()} threads\n")
    print("| embed.dtype | items/s | speed-up | cosine to float32: mean | min |")
    print("|---|---|---|---|---|")
    for d in dtypes:
        v = np.concatenate(vectors[d])[keep]
        cos = (v * ref[keep]).sum(1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(ref[keep], axis=1))
        print(f"| {d} | {len(texts) / seconds[d]:.0f} | {seconds['float32'] / seconds[d]:.2f}x | {cos.mean():.5f} | "
              f"{cos.min():.5f} |")


if __name__ == "__main__":
    main()
