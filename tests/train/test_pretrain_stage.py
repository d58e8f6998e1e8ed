"""The pretrain stage end to end on a tiny data set: one process and `torchrun --nproc_per_node 2`."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from pad.data.buckets import write_items
from pad.train.checkpoint import load_pretrained

REPO = Path(__file__).resolve().parents[2]
N_ITEMS, N_USERS = 40, 120


def make_project(root: Path) -> None:
    """A params.yaml (repo defaults, tiny model) and prepared Parquet files with learnable structure."""
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(N_USERS):
        start, n = int(rng.integers(1, N_ITEMS + 1)), int(rng.integers(5, 12))
        seqs.append([(start + 2 * i - 1) % N_ITEMS + 1 for i in range(n)])  # items walk in steps of 2
    (root / "data").mkdir()
    pl.DataFrame({"user_idx": np.arange(N_USERS, dtype=np.int32), "user_id": [f"u{i}" for i in range(N_USERS)],
                  "items": seqs}, schema_overrides={"items": pl.List(pl.Int32)}).write_parquet(root / "data/seq.parquet")
    items = pl.DataFrame({"item_idx": np.arange(1, N_ITEMS + 1, dtype=np.int32), "item_id": [f"i{i}" for i in range(N_ITEMS)],
                          "text": [""] * N_ITEMS, "train_freq": np.ones(N_ITEMS, dtype=np.int32),
                          "bucket": (np.arange(N_ITEMS) // 4 + 1).astype(np.int8)})
    write_items(items, root / "data/items.parquet", n_buckets=N_ITEMS // 4)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"].update(sequences="data/seq.parquet", items="data/items.parquet")
    params["model"].update(dim=16, blocks=1, heads=2, dropout=0.1, max_len=8, loss="ce")
    params["pretrain"].update(epochs=4, batch_size=32, lr=0.01, patience=0, time_budget_s=0)
    params["evaluate"].update(user_chunk=50)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def run(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def test_one_process_and_torchrun_two_processes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for root in (one, two):
        root.mkdir()
        make_project(root)
    script = str(REPO / "stages/pretrain.py")
    run([sys.executable, script], one)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    run([torchrun, "--standalone", "--nproc_per_node", "2", script], two)
    m1 = json.loads((one / "metrics/pretrain.json").read_text())
    m2 = json.loads((two / "metrics/pretrain.json").read_text())
    for m in (m1, m2):
        assert m["test"]["users"] == N_USERS and "unmasked" in m["test"] and "10" in m["valid"]["buckets"]
        assert m["test"]["hr_10"] > 50  # the walk is learnable: far above chance (10 of 40 items)
    assert abs(m1["test"]["hr_10"] - m2["test"]["hr_10"]) < 15  # same quality with 2 ranks
    for root in (one, two):  # rank 0 alone writes the log: one row per epoch
        rows = (root / "dvclive/pretrain/plots/metrics/valid_ndcg_10.tsv").read_text().splitlines()
        assert [r.split("\t")[0] for r in rows] == ["step", "1", "2", "3", "4"]
        assert json.loads((root / "dvclive/pretrain/metrics.json").read_text())["step"] == 4
    expert, cfg = load_pretrained(two / "models/pretrain.pt")
    assert cfg.dim == 16 and expert.item_vectors().shape == (N_ITEMS + 1, 16)
