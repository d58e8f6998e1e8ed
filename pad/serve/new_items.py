"""New items for serving (DESIGN §8): items with text but no interactions and no row in any ID table.

Rule (stated once): the text is embedded by the encoder named in the embeddings file's metadata (the
embed stage's code path and settings, checked against the recorded weights' revision); every ID part is
a zero vector: the ID expert's item vector (so its logit is 0) and the alignment expert's e_id before
its fuse layer; the LLM expert uses its text MLP. The item takes the coldest bucket's gate weights. So
only the text-based experts (align, llm) score a new item. Texts are cleaned as the prepare stage cleans
the catalogue's, and a blank text gets the embed stage's empty-text rule: a zero text vector (no encoder is
loaded when every new text is blank).
"""
from __future__ import annotations

from pathlib import Path
from typing import Collection, Mapping

import numpy as np
import polars as pl
import torch
from torch import Tensor

from pad.data.text import clean_text
from pad.errors import PadError
from pad.models import IdEmbedding
from pad.models.text import AlignedItems, TextItems


def read_new_items(path: str | Path, known: Collection[str] = ()) -> tuple[list[str], list[str]]:
    """CSV or Parquet with columns item_id, text -> (ids, cleaned texts); `known` = the catalogue's ids.

    An empty id, an id given twice or an id of a catalogue item is a PadError naming the file and the
    line (CSV, header = line 1) or row (Parquet).
    """
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: new-items file not found")
    parquet = path.suffix == ".parquet"
    try:
        df = pl.read_parquet(path) if parquet else pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PadError(f"{path}: cannot read it as {'Parquet' if parquet else 'CSV'}: {first}") from None
    missing = {"item_id", "text"} - set(df.columns)
    if missing or not len(df):
        raise PadError(f"{path}: needs columns item_id and text and at least one row (missing: {', '.join(sorted(missing)) or 'rows'})")
    where = [f"row {r}" if parquet else f"line {r + 1}" for r in range(1, len(df) + 1)]
    raw = df["item_id"].to_list()
    ids = ["" if i is None else str(i) for i in raw]
    for r, i in enumerate(ids):
        if not i.strip():
            raise PadError(f"{path}: {where[r]}: item_id is empty; give every new item an id")
    first_at: dict[str, int] = {}
    for r, i in enumerate(ids):
        if i in first_at:
            raise PadError(f"{path}: item_id {i!r} is on {where[first_at[i]]} and {where[r]}; keep one row per new item")
        first_at[i] = r
    known = set(known)
    clash = [r for r, i in enumerate(ids) if i in known]
    if clash:
        raise PadError(f"{path}: {where[clash[0]]}: item_id {ids[clash[0]]!r} is already a catalogue item "
                       f"({len(clash)} such rows); new items need ids that are not in the items file")
    texts = df["text"].cast(pl.Utf8).to_list()
    return ids, [clean_text(t) for t in texts]


def embed_texts(texts: list[str], meta: Mapping[str, str], dim: int) -> np.ndarray:
    """(M, dim) float32 vectors of `texts` by the encoder named in the embeddings' metadata (embed's code path).

    Blank texts get zero vectors (the embed stage's rule); if all are blank no encoder is needed.
    """
    from pad.config import EmbedConfig
    from pad.embed.encoders import load_encoder, resolve_spec
    from pad.embed.pooling import encode_texts

    if not any(t.strip() for t in texts):
        return np.zeros((len(texts), dim), dtype=np.float32)
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
    vectors = encode_texts(load_encoder(spec), texts, cfg.batch_size)
    if vectors.shape[1] != dim:
        raise PadError(f"encoder {meta['model']!r} gives {vectors.shape[1]}-dim vectors but the embeddings file "
                       f"has {dim}; rerun the pipeline (dvc repro) before adding new items")
    if not np.isfinite(vectors).all():
        raise PadError(f"encoder {meta['model']!r} produced NaN/inf vectors for the new items; try embed.dtype "
                       f"float32, or check the model weights")
    return vectors


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
