"""Embed a whole catalogue in cached shards, optionally across `torchrun` ranks, and assemble it.

Shard `s` holds the items at positions [s*shard_size, (s+1)*shard_size) in item_idx order. Its cache
file is named by a hash of the encoder settings and the shard's texts, so a killed run resumes from
the finished shards, a rerun with the same texts loads nothing, and a changed text re-embeds only
its own shard. Under torchrun, rank r embeds shards r, r+W, r+2W, ...; rank 0 assembles after a
barrier (the cache folder must be shared by the ranks, e.g. one machine or a shared disk).
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from pad.config import EmbedConfig
from pad.embed.encoders import TextEncoder, load_encoder, resolve_spec
from pad.embed.pooling import encode_texts
from pad.errors import PadError
from pad.io import atomic_path

EMPTY_TEXT_RULE = "zero vector"
TIMING_KEYS = ("items_per_s", "wall_s", "cached_items")


@dataclass(frozen=True)
class EmbedResult:
    vectors: np.ndarray  # (N, D) float32, row i = item_idx[i]
    meta: dict[str, str]  # Parquet schema metadata (encoder, model, adapters, revision, pooling, dim, ...)
    stats: dict[str, float]  # items, dim, empty_texts, items_per_s, wall_s, cached_items

    @property
    def metrics(self) -> dict[str, float]:
        """What the same texts and settings always give (metrics/embed.json)."""
        return {k: v for k, v in self.stats.items() if k not in TIMING_KEYS}

    @property
    def timings(self) -> dict[str, float]:
        """What differs run to run (speed, cache hits): kept out of the DVC metrics."""
        return {k: v for k, v in self.stats.items() if k in TIMING_KEYS}


def shard_key(meta: dict[str, str], texts: list[str]) -> str:
    return hashlib.sha256(json.dumps([meta, texts], sort_keys=True).encode()).hexdigest()[:32]


def embed_catalogue(
    item_idx: np.ndarray,
    texts: list[str],
    cfg: EmbedConfig,
    cache_dir: str | Path,
    on_shard: Callable[[int], None] | None = None,
) -> EmbedResult | None:
    """Vectors for every item (blank text: zero vector); None on ranks other than 0."""
    start = time.perf_counter()
    if len(texts) == 0:
        raise PadError("the item catalogue is empty: nothing to embed (check the prepare stage's items file)")
    rank, world = _distributed()
    spec = resolve_spec(cfg)
    cache_dir = Path(cache_dir)
    bounds = [(s, min(s + cfg.shard_size, len(texts))) for s in range(0, len(texts), cfg.shard_size)]
    keys = [shard_key(spec.meta, texts[a:b]) for a, b in bounds]
    mine = [s for s in range(rank, len(bounds), world) if not (cache_dir / f"{keys[s]}.npy").is_file()]
    todo = sum(bounds[s][1] - bounds[s][0] for s in mine)
    encoder: TextEncoder | None = None
    encode_s = 0.0
    with tqdm(total=todo, unit="item", desc=f"embed rank {rank}" if world > 1 else "embed", disable=todo == 0) as bar:
        for s in mine:
            encoder = encoder or load_encoder(spec)
            (a, b), t0 = bounds[s], time.perf_counter()
            vectors = encode_texts(encoder, texts[a:b], cfg.batch_size, on_batch=bar.update)
            encode_s += time.perf_counter() - t0
            _check_finite(vectors, item_idx[a:b])
            _save_shard(vectors, cache_dir / f"{keys[s]}.npy")
            if on_shard is not None:
                on_shard(s)
    stats = _gather({"encoded": todo, "encode_s": encode_s}, world)
    if rank != 0:
        return None
    vectors = np.concatenate([_load_shard(cache_dir / f"{k}.npy", k) for k in keys])
    dim = int(vectors.shape[1])
    encoded = sum(x["encoded"] for x in stats)
    busy = max(x["encode_s"] for x in stats)
    meta = {**spec.meta, "dim": str(dim), "empty_text": EMPTY_TEXT_RULE}
    return EmbedResult(
        vectors,
        meta,
        {
            "items": len(texts),
            "dim": dim,
            "empty_texts": sum(1 for t in texts if not t.strip()),
            "items_per_s": round(encoded / busy, 1) if busy > 0 else 0.0,
            "wall_s": round(time.perf_counter() - start, 2),
            "cached_items": len(texts) - encoded,
        },
    )


def _check_finite(vectors: np.ndarray, item_idx: np.ndarray) -> None:
    bad = ~np.isfinite(vectors).all(axis=1)
    if bad.any():
        items = ", ".join(str(int(i)) for i in item_idx[bad][:5])
        raise PadError(
            f"the encoder produced NaN/inf vectors for {int(bad.sum())} items (item_idx {items}...): "
            "try embed.dtype float32, or check the model weights"
        )


def _save_shard(vectors: np.ndarray, path: Path) -> None:
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.save(f, vectors)


def _load_shard(path: Path, key: str) -> np.ndarray:
    if not path.is_file():
        raise PadError(f"{path}: shard {key} missing after all ranks finished (did a rank fail?); rerun to resume")
    return np.load(path)


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins the torchrun process group (gloo: a barrier is all that is needed)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group("gloo", timeout=timedelta(hours=12))
    return dist.get_rank(), dist.get_world_size()


def _gather(stats: dict[str, float], world: int) -> list[dict[str, float]]:
    """Every rank's stats on every rank; doubles as the barrier before rank 0 assembles."""
    if world == 1:
        return [stats]
    out: list = [None] * world
    dist.all_gather_object(out, stats)
    return out
