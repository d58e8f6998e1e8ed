"""Atomic writes (the target appears whole or not at all, with ordinary permissions), finite JSON, and safe
checkpoint reads."""
import json
import math
import os
import stat

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pad.errors import PadError
from pad.io import atomic_path, load_torch, non_finite, save_torch, write_json


def test_failed_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "metrics.json"
    write_json({"a": 1}, target)
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("{")
            raise RuntimeError("killed")
    assert target.read_text().strip().startswith("{\n")
    assert '"a": 1' in target.read_text()


def test_written_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_json({"a": 1}, tmp_path / "m.json")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644


def test_load_torch_refuses_a_file_that_would_run_code(tmp_path, code_payload):
    import torch

    torch.save({"format": "pad.pad/2", "state_dict": {}, "x": code_payload}, tmp_path / "evil.pt")
    with pytest.raises(PadError, match="refused to load") as err:
        load_torch(tmp_path / "evil.pt", fix="rerun the finetune stage")
    assert not code_payload.marker.exists()
    assert "\n" not in str(err.value) and "rerun the finetune stage" in str(err.value)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated"])
def test_load_torch_unreadable_file_is_one_line(tmp_path, content):
    import torch

    path = tmp_path / "m.pt"
    if content == "truncated":
        torch.save({"w": torch.ones(1000)}, path)
        content = path.read_bytes()[:200]
    path.write_bytes(content)
    with pytest.raises(PadError, match="corrupt or truncated") as err:
        load_torch(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_load_torch_reads_what_save_torch_writes(tmp_path):
    import torch

    obj = {"format": "x/1", "model": {"dim": 8, "name": "sasrec"}, "names": ("id", "llm"), "t": torch.arange(3)}
    save_torch(obj, tmp_path / "m.pt")
    back = load_torch(tmp_path / "m.pt")
    assert back["model"] == obj["model"] and back["names"] == ("id", "llm") and torch.equal(back["t"], obj["t"])


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_write_json_refuses_non_finite_naming_file_and_key(tmp_path, bad):
    target = tmp_path / "metrics.json"
    write_json({"a": 1}, target)
    metrics = {"test": {"pad": {"hr_10": 1.5, "buckets": {"10": {"ndcg_10": bad}}}}, "cuts": [1, 2.0]}
    with pytest.raises(PadError, match=r"metrics\.json: refusing to write test\.pad\.buckets\.10\.ndcg_10 = "):
        write_json(metrics, target)
    with pytest.raises(PadError, match=r"refusing to write cuts\.1 = "):  # list items by index
        write_json({"cuts": [1.0, bad]}, target)
    assert json.loads(target.read_text()) == {"a": 1}  # the previous file is kept
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3) | st.floats(),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                     max_leaves=12)


@given(obj=_JSON)
def test_non_finite_finds_a_bad_float_exactly_when_strict_json_fails(obj):
    try:
        json.dumps(obj, allow_nan=False)
        strict_ok = True
    except ValueError:
        strict_ok = False
    assert (non_finite(obj) is None) == strict_ok
