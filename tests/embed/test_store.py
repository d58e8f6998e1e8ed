"""The embeddings Parquet: schema, metadata, and the (N+1, D) loader with a padding row."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pad.embed.store import load_embeddings, read_item_texts, write_embeddings
from pad.errors import PadError


def test_roundtrip_has_padding_row_and_metadata(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    path = tmp_path / "emb.parquet"
    write_embeddings(np.arange(1, 6, dtype=np.int32), vectors, {"encoder": "hf", "dim": "3"}, path)
    schema = pq.read_schema(path)
    assert schema.field("item_idx").type == pa.int32()
    assert schema.field("embedding").type == pa.list_(pa.float32(), 3)
    matrix, meta = load_embeddings(path)
    assert matrix.shape == (6, 3) and matrix.dtype == np.float32
    assert (matrix[0] == 0).all()
    np.testing.assert_array_equal(matrix[1:], vectors)
    assert meta == {"encoder": "hf", "dim": "3"}


def test_read_item_texts_sorts_and_checks_indices(tmp_path, write_items):
    path = write_items(tmp_path / "items.parquet", ["a", None, "c"])
    idx, texts = read_item_texts(path)
    assert idx.tolist() == [1, 2, 3] and texts == ["a", "", "c"]
    pq.write_table(pa.table({"item_idx": pa.array([1, 3], pa.int32()), "text": ["a", "b"]}), tmp_path / "gap.parquet")
    with pytest.raises(PadError, match="1..N"):
        read_item_texts(tmp_path / "gap.parquet")
    with pytest.raises(PadError, match="prepare"):
        read_item_texts(tmp_path / "missing.parquet")
