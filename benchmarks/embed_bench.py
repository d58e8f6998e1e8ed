"""Items/s of the MiniLM default on Prime Pantry titles: file-order vs length-sorted batches, per shard.

    python benchmarks/embed_bench.py [--limit N]
"""
import argparse
import time
from pathlib import Path

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
    args = parser.parse_args()
    torch.set_num_threads(2)
    texts = [t or "" for t in pl.read_csv(DATA)["title"].to_list()]
    texts = texts[: args.limit] if args.limit else texts
    cfg = EmbedConfig(encoder="hf", model="all-MiniLM-L6-v2", mntp_adapter="", adapter="", instruction="",
                      pooling="mean", max_length=64, batch_size=args.batch_size, shard_size=2048, device="cpu",
                      dtype="float32")
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


if __name__ == "__main__":
    main()
