"""The align stage end to end on a tiny project (one process and torchrun), and its place in the DVC graph."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import torch
import yaml

from pad.config import load_section, train_config
from pad.data.buckets import write_items
from pad.embed.store import load_embeddings, write_embeddings
from pad.train.checkpoint import save_expert
from pad.train.pretrain import load_prepared, pretrain
from pad.train.align import load_align_checkpoint, load_align_expert

REPO = Path(__file__).resolve().parents[2]
N_ITEMS, N_USERS, TEXT_DIM = 40, 120, 24


def make_project(root: Path) -> None:
    """Prepared files (items walk in steps of 2), text vectors that encode the walk, tiny params."""
    rng = np.random.default_rng(0)
    seqs = []
    for _ in range(N_USERS):
        start, n = int(rng.integers(1, N_ITEMS + 1)), int(rng.integers(5, 12))
        seqs.append([(start + 2 * i - 1) % N_ITEMS + 1 for i in range(n)])
    (root / "data").mkdir()
    pl.DataFrame({"user_idx": np.arange(N_USERS, dtype=np.int32), "user_id": [f"u{i}" for i in range(N_USERS)],
                  "items": seqs}, schema_overrides={"items": pl.List(pl.Int32)}).write_parquet(root / "data/seq.parquet")
    items = pl.DataFrame({"item_idx": np.arange(1, N_ITEMS + 1, dtype=np.int32), "item_id": [f"i{i}" for i in range(N_ITEMS)],
                          "text": [f"item {i}" for i in range(N_ITEMS)], "train_freq": np.ones(N_ITEMS, dtype=np.int32),
                          "bucket": (np.arange(N_ITEMS) // 4 + 1).astype(np.int8)})
    write_items(items, root / "data/items.parquet", n_buckets=N_ITEMS // 4)
    angle = 2 * np.pi * np.arange(N_ITEMS)[:, None] * np.arange(1, TEXT_DIM // 2 + 1)[None, :] / N_ITEMS
    vectors = np.concatenate([np.sin(angle), np.cos(angle)], 1).astype(np.float32)  # (N, D) position on the walk
    write_embeddings(np.arange(1, N_ITEMS + 1, dtype=np.int32), vectors, {"encoder": "test"}, root / "data/emb.parquet")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["paths"].update(sequences="data/seq.parquet", items="data/items.parquet", embeddings="data/emb.parquet")
    params["model"].update(dim=16, blocks=1, heads=2, dropout=0.1, max_len=8, loss="ce")
    params["pretrain"].update(epochs=3, batch_size=32, lr=0.01, patience=0, time_budget_s=0)
    params["align"].update(epochs=3, batch_size=32, lr=0.01, patience=0, time_budget_s=0)
    params["evaluate"].update(user_chunk=50)
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def pretrain_in_process(root: Path) -> None:
    """What stages/pretrain.py writes (models/pretrain.pt), without another interpreter start."""
    cfg = load_section("model", root / "params.yaml")
    data = load_prepared(root / "data/seq.parquet", root / "data/items.parquet", cfg)
    ev = load_section("evaluate", root / "params.yaml")
    expert, _ = pretrain(data, cfg, train_config(load_section("pretrain", root / "params.yaml")), ev,
                         device=torch.device("cpu"), live_dir=root / "dvclive/pretrain", resume_root=root / "cache")
    save_expert(expert, cfg, data.n_items, root / "models/pretrain.pt")


def run(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_stage_writes_model_metrics_and_curves_with_one_and_two_processes(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    make_project(one)
    pretrain_in_process(one)
    shutil.copytree(one, two)
    script = str(REPO / "stages/align.py")
    run([sys.executable, script], one)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    run([torchrun, "--standalone", "--nproc_per_node", "2", script], two)
    for root in (one, two):
        m = json.loads((root / "metrics/align.json").read_text())
        assert m["test"]["users"] == N_USERS and "unmasked" in m["test"] and "cold" in m["valid"]
        assert m["test"]["hr_10"] > 50  # the walk is learnable: far above chance (10 of 40 items)
        assert m["train"]["align_loss"] >= 0 and m["train"]["epochs"] == 3
        rows = (root / "dvclive/align/plots/metrics/align_loss.tsv").read_text().splitlines()
        assert [r.split("\t")[0] for r in rows] == ["step", "1", "2", "3"]  # rank 0 alone writes the log
        assert float(rows[-1].split("\t")[1]) == m["train"]["align_loss_last"]
        assert json.loads((root / "dvclive/align/metrics.json").read_text())["step"] == 3
        ckpt = load_align_checkpoint(root / "models/align.pt")
        assert ckpt["align"]["mode"] == "anchored" and ckpt["text_dim"] == TEXT_DIM
        expert = load_align_expert(root / "models/align.pt", load_embeddings(root / "data/emb.parquet")[0])
        assert expert.item_vectors().shape == (N_ITEMS + 1, 16)
    assert torch.equal(torch.load(one / "models/pretrain.pt", weights_only=True)["state_dict"]["items.embedding.weight"],
                       torch.load(two / "models/pretrain.pt", weights_only=True)["state_dict"]["items.embedding.weight"])


def _dvc(args: list[str], cwd: Path) -> str:
    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or "dvc"
    return run([dvc, *args], cwd)


def test_align_lambda_change_reruns_only_align_and_downstream(tmp_path):
    """Copy the project's tracked files, mark every stage as done, change align.lambda: only align is stale
    (finetune/evaluate follow because they depend on models/align.pt), never prepare/embed/pretrain."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file():
            (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, tmp_path / f)
    shutil.copy2(REPO / "dvc.yaml", tmp_path / "dvc.yaml")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    stages = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]

    def resolve(p: str) -> Path:
        return tmp_path / re.sub(r"\$\{paths\.(\w+)\}", lambda m: params["paths"][m.group(1)], p)

    for name, stage in stages.items():
        for dep in stage["deps"]:
            if not resolve(dep).exists():  # e.g. a stage script not written yet
                resolve(dep).parent.mkdir(parents=True, exist_ok=True)
                resolve(dep).write_text(f"# placeholder for {name}\n")
        for kind in ("outs", "metrics", "plots"):
            for out in stage.get(kind, []):
                path = resolve(out if isinstance(out, str) else next(iter(out)))
                if path.is_dir():  # a folder output (dvclive plots), copied from git: a file in it
                    path = path / "placeholder.tsv"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{name} output\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    _dvc(["commit", "-f", "-q"], tmp_path)
    assert json.loads(_dvc(["status", "--json"], tmp_path)) == {}
    text = (tmp_path / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(re.sub(r"(\nalign:\n  lambda:) [0-9.]+", r"\1 0.3", text))
    assert yaml.safe_load((tmp_path / "params.yaml").read_text())["align"]["lambda"] == 0.3
    assert set(json.loads(_dvc(["status", "--json"], tmp_path))) == {"align"}
