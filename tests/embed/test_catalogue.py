"""Shard cache: kill-and-resume, free reruns, per-shard invalidation, bad catalogues."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pad.embed.catalogue import embed_catalogue
from pad.embed.catalogue import shard_key
from pad.embed.encoders import resolve_spec
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
    untouched = np.r_[0:10, 15:23]  # loaded from the cache: bit for bit
    np.testing.assert_array_equal(third.vectors[untouched], first.vectors[untouched])
    # re-encoded beside the new text, in other padded batches: float32 rounding differs (2.4e-7 seen with
    # transformers 5.25), so equal within a few float32 ulps of vectors of norm ~1
    np.testing.assert_allclose(third.vectors[[10, 11, 13, 14]], first.vectors[[10, 11, 13, 14]], rtol=1e-5, atol=1e-6)
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


def _shard_file(cache: Path, texts, cfg, shard: int) -> Path:
    a, b = shard * cfg.shard_size, min((shard + 1) * cfg.shard_size, len(texts))
    return cache / f"{shard_key(resolve_spec(cfg).meta, texts[a:b])}.npy"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:300])


def _wrong_rows(path: Path) -> None:
    np.save(path, np.load(path)[:3])


def _wrong_dim(path: Path) -> None:
    np.save(path, np.load(path)[:, :16])


def _nan(path: Path) -> None:
    vectors = np.load(path)
    vectors[1, 4] = np.nan
    np.save(path, vectors)


def _float64(path: Path) -> None:
    np.save(path, np.load(path).astype(np.float64))


@pytest.mark.parametrize(
    "damage, why",
    [
        (_truncate, r"unreadable: Failed to read all data"),
        (_wrong_rows, r"shape \(3, 32\), expected \(5, dim\)"),
        (_wrong_dim, r"dim 16, expected 32"),
        (_nan, r"1 of 5 rows contain NaN/inf"),
        (_float64, r"dtype float64, expected float32"),
    ],
)
def test_a_bad_cached_shard_is_reencoded_with_one_line(tmp_path, texts, llm2vec_cfg, capfd, damage, why):
    clean = _run(texts, llm2vec_cfg, tmp_path)
    bad = _shard_file(tmp_path, texts, llm2vec_cfg, 1)
    damage(bad)
    capfd.readouterr()
    again = _run(texts, llm2vec_cfg, tmp_path)
    lines = [line for line in capfd.readouterr().err.splitlines() if "cached shard" in line]
    assert len(lines) == 1 and str(bad) in lines[0] and "re-encoding it" in lines[0]
    assert __import__("re").search(why, lines[0]), lines[0]
    assert again.stats["cached_items"] == 18  # the other four shards are used as they are
    np.testing.assert_array_equal(again.vectors, clean.vectors)  # same texts, same batches: same numbers
    assert again.meta == clean.meta
    np.testing.assert_array_equal(np.load(bad), clean.vectors[5:10])  # the cache holds a good shard again
    capfd.readouterr()
    assert _run(texts, llm2vec_cfg, tmp_path).stats["cached_items"] == 23
    assert "cached shard" not in capfd.readouterr().err


def test_a_broken_model_is_an_error_even_when_replacing_a_bad_shard(tmp_path, tiny, llm2vec_cfg):
    cfg = replace(llm2vec_cfg, model=str(tiny["nan"]), mntp_adapter="", adapter="")
    texts = ["", "milk", "tea", "rice", "dog"]
    path = _shard_file(tmp_path, texts, cfg, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.full((5, 32), np.nan, np.float32))
    with pytest.raises(PadError, match=r"NaN/inf vectors for 4 items"):
        _run(texts, cfg, tmp_path)
    assert np.isnan(np.load(path)).all()  # not replaced by another bad shard


def test_a_shard_of_blank_texts_is_zero_vectors(tmp_path, llm2vec_cfg):
    texts = ["milk tea", "rice", "dog food", "soap", "candy bar"] + [""] * 4 + ["  "]  # shard 1 all blank
    result = _run(texts, llm2vec_cfg, tmp_path)
    assert (result.vectors[5:] == 0).all() and (np.abs(result.vectors[:5]).sum(1) > 0).all()
    assert result.stats["empty_texts"] == 5


def test_shard_keys_follow_the_code_that_computes_vectors(monkeypatch):
    """An edit to the encoders/pooling code must not reuse vectors cached by the old code."""
    from pad.embed import catalogue

    meta, texts = {"encoder": "hf"}, ["a", "b"]
    before = shard_key(meta, texts)
    monkeypatch.setattr(catalogue, "encoder_code", lambda: "edited")
    assert shard_key(meta, texts) != before
