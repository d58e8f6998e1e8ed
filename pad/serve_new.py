"""New items for serving (DESIGN §8): items with text but no interactions and no row in any ID table.

Rule (stated once): the text is embedded by the encoder named in the embeddings file's metadata (the
embed stage's code path and settings, checked against the recorded weights' revision); every ID part is
a zero vector: the ID expert's item vector (so its logit is 0) and the alignment expert's e_id before
its fuse layer; the LLM expert uses its text MLP. The item takes the coldest bucket's gate weights. So
only the text-based experts (align, llm) score a new item.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np
import polars as pl
import torch
from torch import Tensor

from pad.errors import PadError
from pad.models import IdEmbedding
from pad.models.text import AlignedItems, TextItems


def read_new_items(path: str | Path) -> tuple[list[str], list[str]]:
    """CSV or Parquet with columns item_id, text -> (ids, texts)."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: new-items file not found")
    try:
        df = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise PadError(f"{path}: cannot read it as {'Parquet' if path.suffix == '.parquet' else 'CSV'}: {exc}") from None
    missing = {"item_id", "text"} - set(df.columns)
    if missing or not len(df):
        raise PadError(f"{path}: needs columns item_id and text and at least one row (missing: {', '.join(sorted(missing)) or 'rows'})")
    ids = [str(i) for i in df["item_id"].to_list()]
    if any(not i.strip() for i in ids):
        raise PadError(f"{path}: an item_id is empty")
    return ids, [t or "" for t in df["text"].cast(pl.Utf8).to_list()]


def embed_texts(texts: list[str], meta: Mapping[str, str]) -> np.ndarray:
    """(M, D) float32 vectors of `texts` by the encoder named in the embeddings' metadata (embed's code path)."""
    from pad.config import EmbedConfig
    from pad.embed.encoders import load_encoder, resolve_spec
    from pad.embed.pooling import encode_texts

    if "encoder" not in meta or "model" not in meta:
        raise PadError("the embeddings file names no encoder in its metadata; new items cannot be embedded the same way")
    adapters = [a.rsplit("@", 1)[0] for a in meta.get("adapters", "").split(",") if a]
    cfg = EmbedConfig(encoder=meta["encoder"], model=meta["model"], mntp_adapter=(adapters + [""])[0],
                      adapter=(adapters + ["", ""])[1], instruction=meta.get("instruction", ""), pooling="mean",
                      max_length=int(meta.get("max_length", 512)), batch_size=32, shard_size=2048, device="auto",
                      dtype=meta.get("dtype", "auto"))
    spec = resolve_spec(cfg)
    if spec.meta["revision"] != meta.get("revision", spec.meta["revision"]):
        raise PadError(f"encoder {meta['model']!r} changed since the embed stage ({meta.get('revision')} -> "
                       f"{spec.meta['revision']}); rerun the pipeline (dvc repro) before adding new items")
    return encode_texts(load_encoder(spec), texts, cfg.batch_size)


@torch.no_grad()
def new_item_vectors(items: torch.nn.Module, text: Tensor) -> Tensor:
    """(M, D) text embeddings of new items -> (M, d) vectors of one expert's item module (the module rule)."""
    if isinstance(items, TextItems):
        return items.mlp(text)
    if isinstance(items, AlignedItems):
        text_side = items.mlp(text)  # (M, d)
        return items.combine(torch.zeros_like(text_side), text_side)
    if isinstance(items, IdEmbedding):
        return text.new_zeros(len(text), items.embedding.embedding_dim)
    raise PadError(f"new items: no rule for item module {type(items).__name__}")
