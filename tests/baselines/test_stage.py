"""The baselines stage: empty by default (writes {} fast, reads no data), trains the listed methods end to end,
and sits in the DVC graph so that a default `dvc repro` and an `align.lambda` change never run them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from pad.config import load_section
from pad.data.buckets import write_items
from pad.embed.store import write_embeddings
from pad.errors import PadError
from pad.evaluation.per_user import read_per_user

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "stages/baselines.py"
N_ITEMS, N_USERS = 40, 100


def make_project(root: Path, methods: list[str], data: bool = True) -> None:
    """params.yaml (repo defaults, tiny model) and, with `data`, prepared Parquet files + text embeddings."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"].update(sequences="data/seq.parquet", items="data/items.parquet", embeddings="data/emb.parquet")
    params["model"].update(dim=8, blocks=1, heads=2, dropout=0.1, max_len=6, loss="ce")
    params["baselines"].update(methods=methods, epochs=2, batch_size=32, lr=0.01, null_dim=3)
    params["evaluate"].update(user_chunk=50)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    if not data:
        return
    rng = np.random.default_rng(0)
    seqs = [[(int(s) + 2 * i - 1) % N_ITEMS + 1 for i in range(int(rng.integers(5, 10)))]
            for s in rng.integers(1, N_ITEMS + 1, N_USERS)]
    (root / "data").mkdir()
    users = pl.DataFrame({"user_idx": np.arange(N_USERS, dtype=np.int32), "user_id": [f"u{i}" for i in range(N_USERS)],
                          "items": seqs}, schema_overrides={"items": pl.List(pl.Int32)})
    users.write_parquet(root / "data/seq.parquet")
    items = pl.DataFrame({"item_idx": np.arange(1, N_ITEMS + 1, dtype=np.int32),
                          "item_id": [f"i{i}" for i in range(N_ITEMS)], "text": [f"t{i}" for i in range(N_ITEMS)],
                          "train_freq": np.ones(N_ITEMS, dtype=np.int32),
                          "bucket": (np.arange(N_ITEMS) // 4 + 1).astype(np.int8)})
    write_items(items, root / "data/items.parquet", n_buckets=N_ITEMS // 4)
    write_embeddings(np.arange(1, N_ITEMS + 1, dtype=np.int32), rng.normal(size=(N_ITEMS, 16)).astype(np.float32),
                     {"encoder": "test"}, root / "data/emb.parquet")


def run(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT)], cwd=root, env=env, capture_output=True, text=True,
                          timeout=240)


def test_no_methods_writes_an_empty_metrics_file_quickly_without_reading_data(tmp_path):
    make_project(tmp_path, [], data=False)  # no prepared data, no embeddings: nothing is read
    start = time.perf_counter()
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert time.perf_counter() - start < 60  # python + torch import; no training (about 2 s here)
    assert json.loads((tmp_path / "metrics/baselines.json").read_text()) == {}
    per_user, info = read_per_user(tmp_path / "metrics/baselines_per_user.parquet")
    assert per_user.is_empty() and "ndcg_10" in per_user.columns and info["k"] == 10  # the out exists, no rows


def test_listed_methods_are_trained_and_reported(tmp_path):
    make_project(tmp_path, ["hybrid", "alphafuse"])
    done = run(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((tmp_path / "metrics/baselines.json").read_text())
    assert list(metrics) == ["hybrid", "alphafuse"]
    for m in metrics.values():
        assert m["test"]["users"] == N_USERS and m["train"]["epochs"] == 2
        assert {"warm", "median", "cold", "history", "unmasked"} <= set(m["test"])
    assert set(json.loads((tmp_path / "timings/baselines.json").read_text())) == {"hybrid", "alphafuse"}
    per_user, _ = read_per_user(tmp_path / "metrics/baselines_per_user.parquet")
    for method, m in metrics.items():  # user_idx as in sequences.parquet, the same means as the metrics
        test = per_user.filter((pl.col("model") == method) & (pl.col("split") == "test"))
        assert sorted(test["user_idx"].to_list()) == list(range(N_USERS))
        assert round(100 * test["ndcg_10"].mean(), 4) == m["test"]["ndcg_10"]


def test_a_missing_input_is_a_one_line_error(tmp_path):
    make_project(tmp_path, ["morec"], data=False)
    done = run(tmp_path)
    assert done.returncode != 0 and "embeddings not found" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_the_stage_reads_no_align_or_finetune_params_and_no_pad_model():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["baselines"]
    params = [p if isinstance(p, str) else next(iter(p)) for p in stage["params"]]
    assert "baselines" in params
    assert not [p for p in params if p.split(".")[0] in ("align", "finetune", "pretrain")]
    checkpoints = {"${paths.pretrain_model}", "${paths.align_model}", "${paths.finetune_model}"}
    assert not checkpoints & set(stage["deps"])  # no phase checkpoint: retraining PAD never reruns it
    defaults = yaml.safe_load((REPO / "params.yaml").read_text())["baselines"]
    assert defaults["methods"] == []  # a default `dvc repro` trains none


def test_methods_are_checked_strictly(tmp_path):
    make_project(tmp_path, [], data=False)
    path = tmp_path / "params.yaml"
    assert load_section("baselines", path).methods == ()
    for bad, match in ((["hybrid", "sasrec"], r"'baselines.methods\[1\]' is 'sasrec'; choose one of"),
                       (["morec", "morec"], "lists an entry twice"), ("hybrid", "must be a non-empty list")):
        params = yaml.safe_load(path.read_text())
        params["baselines"]["methods"] = bad
        path.write_text(yaml.safe_dump(params))
        with pytest.raises(PadError, match=match):
            load_section("baselines", path)
