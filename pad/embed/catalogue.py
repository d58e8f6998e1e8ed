"""Embed a whole catalogue in cached shards, optionally across `torchrun` ranks, and assemble it.

Shard `s` holds the items at positions [s*shard_size, (s+1)*shard_size) in item_idx order. Its cache
file is named by a hash of the encoder settings, the code that computes vectors (`encoder_code`) and
the shard's texts, so a killed run resumes from
the finished shards, a rerun with the same texts loads no model, and a changed text re-embeds only
its own shard. A cached shard is checked before use (readable, float32, (shard items, encoder dim),
finite); a bad one is re-encoded, with one line on stderr naming the file and the reason. A freshly
encoded shard with NaN/inf is a PadError and is never cached. Under torchrun, rank r embeds shards r,
r+W, r+2W, ...; rank 0 assembles after a barrier (the cache folder must be shared by the ranks, e.g.
one machine or a shared disk).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable

import numpy as np
import torch.distributed as dist
from tqdm import tqdm

from pad.config import EmbedConfig
from pad.embed import encoders, pooling, resolve
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
    """A shard's cache name: the encoder settings, the code that turns texts into vectors, the texts."""
    return hashlib.sha256(json.dumps([meta, encoder_code(), texts], sort_keys=True).encode()).hexdigest()[:32]


@functools.cache
def encoder_code() -> str:
    """A hash of the modules that compute the vectors (encoders, pooling, resolve), so that an edit there
    re-encodes instead of reusing vectors made by other code (the catalogue's bookkeeping is left out)."""
    h = hashlib.sha256()
    for module in (encoders, pooling, resolve):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:16]


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
    paths = [cache_dir / f"{k}.npy" for k in keys]
    cached = _usable_shards({s: (paths[s], bounds[s][1] - bounds[s][0]) for s in range(rank, len(bounds), world)},
                            _encoder_dim(spec.model.path))
    mine = [s for s in range(rank, len(bounds), world) if s not in cached]
    if rank != 0:  # only rank 0 assembles
        cached = {}
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
            _save_shard(vectors, paths[s])
            if rank == 0:
                cached[s] = vectors
            if on_shard is not None:
                on_shard(s)
    stats = _gather({"encoded": todo, "encode_s": encode_s}, world)
    if rank != 0:
        return None
    parts = [cached[s] if s in cached else _load_shard(paths[s], b - a) for s, (a, b) in enumerate(bounds)]
    if len({p.shape[1] for p in parts}) > 1:  # ranks disagree: only possible if the cache folder was tampered with
        raise PadError(f"{cache_dir}: the embedding shards have different dims {sorted({p.shape[1] for p in parts})}; "
                       "delete the folder and rerun")
    vectors = np.concatenate(parts)
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


def _encoder_dim(model_path: Path) -> int | None:
    """The encoder's output dim from its config.json (`hidden_size`) without loading weights; None if absent."""
    try:
        dim = json.loads((Path(model_path) / "config.json").read_text()).get("hidden_size")
    except (OSError, ValueError, AttributeError):
        return None
    return dim if isinstance(dim, int) and dim > 0 else None


def _read_shard(path: Path, rows: int) -> tuple[np.ndarray | None, str]:
    """(vectors, "") for a readable, float32, (rows, D), finite shard; else (None, why not). D is not checked here."""
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        return None, "unreadable: " + " ".join(str(exc).split())[:120]
    if not isinstance(vectors, np.ndarray):
        return None, "not a single .npy array"
    if vectors.dtype != np.float32:
        return None, f"dtype {vectors.dtype}, expected float32"
    if vectors.ndim != 2 or vectors.shape[0] != rows:
        return None, f"shape {vectors.shape}, expected ({rows}, dim)"
    bad = int((~np.isfinite(vectors).all(axis=1)).sum())
    if bad:
        return None, f"{bad} of {rows} rows contain NaN/inf"
    return vectors, ""


def _usable_shards(shards: dict[int, tuple[Path, int]], dim: int | None) -> dict[int, np.ndarray]:
    """The cached shards (index -> vectors) that can be used as they are; each bad one is reported on stderr.

    `shards` maps a shard index to (cache file, item count). The dim must be the encoder's (`dim`) or, when
    its config does not say, the dim most of the shards have.
    """
    good: dict[int, np.ndarray] = {}
    for s, (path, rows) in shards.items():
        if not path.is_file():
            continue
        vectors, why = _read_shard(path, rows)
        if vectors is None:
            _report_bad(path, why)
        else:
            good[s] = vectors
    if dim is None and good:
        dim = Counter(v.shape[1] for v in good.values()).most_common(1)[0][0]
    for s in [s for s, v in good.items() if v.shape[1] != dim]:
        _report_bad(shards[s][0], f"dim {good.pop(s).shape[1]}, expected {dim}")
    return good


def _report_bad(path: Path, why: str) -> None:
    print(f"embed: cached shard {path} is bad ({why}); re-encoding it", file=sys.stderr, flush=True)


def _load_shard(path: Path, rows: int) -> np.ndarray:
    """A shard another rank wrote (it was checked or freshly encoded there)."""
    if not path.is_file():
        raise PadError(f"{path}: shard missing after all ranks finished (did a rank fail?); rerun to resume")
    vectors, why = _read_shard(path, rows)
    if vectors is None:
        raise PadError(f"{path}: shard is bad after all ranks finished ({why}); rerun to re-encode it")
    return vectors


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
