"""Shard cache: kill-and-resume, free reruns, per-shard invalidation, bad catalogues."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pad.embed import embed_catalogue
from pad.errors import PadError


def _run(texts, cfg, cache, on_shard=None):
    return embed_catalogue(np.arange(1, len(texts) + 1, dtype=np.int32), texts, cfg, cache, on_shard=on_shard)


def test_killed_run_resumes_to_the_same_output(tmp_path, texts, llm2vec_cfg):
    full = _run(texts, llm2vec_cfg, tmp_path / "a")  # 23 items, shards of 5 -> 5 shards

    class Killed(Exception):
        pass

    def kill_after_two(shard: int) -> None:
        if shard == 1:
            raise Killed

    with pytest.raises(Killed):
        _run(texts, llm2vec_cfg, tmp_path / "b", on_shard=kill_after_two)
    assert len(list((tmp_path / "b").glob("*.npy"))) == 2
    assert not list((tmp_path / "b").glob("*.tmp"))
    resumed = _run(texts, llm2vec_cfg, tmp_path / "b")
    assert resumed.stats["cached_items"] == 10
    np.testing.assert_array_equal(resumed.vectors, full.vectors)
    assert resumed.meta == full.meta


def test_rerun_is_free_and_a_changed_text_redoes_one_shard(tmp_path, texts, llm2vec_cfg):
    first = _run(texts, llm2vec_cfg, tmp_path)
    assert first.stats["cached_items"] == 0 and first.stats["items"] == 23
    assert first.stats["empty_texts"] == 4 and first.stats["dim"] == 32
    again = _run(texts, llm2vec_cfg, tmp_path)
    assert again.stats["cached_items"] == 23
    np.testing.assert_array_equal(again.vectors, first.vectors)
    changed = list(texts)
    changed[12] = "dog food snack"
    third = _run(changed, llm2vec_cfg, tmp_path)
    assert third.stats["cached_items"] == 18  # shard 2 (positions 10-14) only
    assert not np.allclose(third.vectors[12], first.vectors[12])
    np.testing.assert_array_equal(np.delete(third.vectors, 12, 0), np.delete(first.vectors, 12, 0))
    other = _run(texts, replace(llm2vec_cfg, instruction="query :"), tmp_path)  # settings key the cache too
    assert other.stats["cached_items"] == 0


def test_output_rows_and_metadata(tmp_path, texts, llm2vec_cfg):
    result = _run(texts, llm2vec_cfg, tmp_path)
    assert result.vectors.shape == (23, 32) and result.vectors.dtype == np.float32
    blank = [i for i, t in enumerate(texts) if not t.strip()]
    assert (result.vectors[blank] == 0).all() and (np.abs(result.vectors).sum(1) > 0).sum() == 19
    meta = result.meta
    assert meta["encoder"] == "llm2vec" and meta["dim"] == "32" and meta["pooling"] == "mean"
    assert meta["adapters"].count("@files:") == 2 and meta["empty_text"] == "zero vector"


def test_empty_catalogue_is_a_clear_error(tmp_path, llm2vec_cfg):
    with pytest.raises(PadError, match="catalogue is empty"):
        _run([], llm2vec_cfg, tmp_path)


def test_nan_vectors_name_the_items(tmp_path, tiny, llm2vec_cfg):
    cfg = replace(llm2vec_cfg, model=str(tiny["nan"]), mntp_adapter="", adapter="")
    with pytest.raises(PadError, match=r"NaN/inf vectors for 4 items \(item_idx 2, 3, 4, 5"):
        _run(["", "milk", "tea", "rice", "dog"], cfg, tmp_path)
    assert not list(Path(tmp_path).glob("*.npy"))  # nothing bad is cached
