"""Read the items file, write and read the embeddings Parquet (DESIGN §2 files)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pad.errors import PadError
from pad.io import write_parquet


def read_item_texts(path: str | Path) -> tuple[np.ndarray, list[str]]:
    """(item_idx int32 (N,), texts) from items.parquet, sorted by item_idx, which must be 1..N."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: items file not found; run the prepare stage first (dvc repro prepare)")
    table = pq.read_table(path)
    missing = {"item_idx", "text"} - set(table.column_names)
    if missing:
        raise PadError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    idx = table.column("item_idx").to_numpy().astype(np.int64)
    texts = [t or "" for t in table.column("text").to_pylist()]
    order = np.argsort(idx, kind="stable")
    idx, texts = idx[order], [texts[i] for i in order]
    if len(idx) and not np.array_equal(idx, np.arange(1, len(idx) + 1)):
        raise PadError(f"{path}: item_idx must be 1..N without gaps or repeats (0 is padding)")
    return idx.astype(np.int32), texts


def write_embeddings(item_idx: np.ndarray, vectors: np.ndarray, meta: dict[str, str], path: str | Path) -> None:
    """Atomically write `item_idx` int32 + `embedding` fixed_size_list<float32>[D] with `meta` in the schema."""
    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1))  # (N*D,)
    table = pa.table(
        {
            "item_idx": pa.array(item_idx, type=pa.int32()),
            "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )
    write_parquet(table.replace_schema_metadata({k: str(v) for k, v in meta.items()}), path)


def load_embeddings(path: str | Path) -> tuple[np.ndarray, dict[str, str]]:
    """(matrix (N+1, D) float32 with row 0 = padding zeros and row i = item i, schema metadata)."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: embeddings not found; run the embed stage first (dvc repro embed)")
    table = pq.read_table(path)
    if not {"item_idx", "embedding"} <= set(table.column_names):
        raise PadError(f"{path}: expected columns item_idx and embedding")
    column = table.column("embedding").combine_chunks()
    if not pa.types.is_fixed_size_list(column.type):
        raise PadError(f"{path}: 'embedding' must be fixed_size_list<float32>, got {column.type}")
    dim = column.type.list_size
    idx = table.column("item_idx").to_numpy()
    if not np.array_equal(np.sort(idx), np.arange(1, len(idx) + 1)):
        raise PadError(f"{path}: item_idx must be 1..N without gaps or repeats")
    matrix = np.zeros((len(idx) + 1, dim), dtype=np.float32)
    matrix[idx] = column.flatten().to_numpy(zero_copy_only=False).reshape(len(idx), dim)  # (N, D)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    return matrix, meta
