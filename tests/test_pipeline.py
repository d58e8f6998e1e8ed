"""`dvc repro` of the whole stage graph (prepare, embed, pretrain, align, finetune, evaluate) on a fresh
copy of the project: synthetic data, a tiny BERT built locally from a config, tiny models; a second
`dvc repro` does nothing."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "embed", "pretrain", "align", "finetune", "evaluate")

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def save_tiny_bert(folder: Path) -> Path:
    """A 1-layer BERT (hidden 16) with a character WordPiece vocabulary, saved like a hub model."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    chars = "abcdefghijklmnopqrstuvwxyz0123456789"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    import torch

    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder)
    return folder


def tiny_params(bert: Path) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["synthetic"].update(users=150, items=60, topics=4)
    params["embed"].update(encoder="hf", model=str(bert), max_length=16, batch_size=64, shard_size=256,
                           device="cpu", dtype="float32")
    params["model"].update(backbone="sasrec", dim=16, blocks=1, heads=2, max_len=8, loss="ce")
    train = dict(epochs=1, batch_size=64, patience=0, time_budget_s=0)
    for section in ("pretrain", "align", "finetune"):
        params[section].update(train)
    params["evaluate"].update(user_chunk=64, tau_max_pairs=2000)
    return params


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def test_dvc_repro_all_stages_then_nothing(tmp_path, copy_project):
    project = tmp_path / "project"
    copy_project(project)
    (project / "params.yaml").write_text(yaml.safe_dump(tiny_params(save_tiny_bert(tmp_path / "bert")), sort_keys=False))
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PYTHONPATH": str(project), "PATH": bin_dir + os.pathsep + os.environ["PATH"],
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches must not count as changed code
    run(["git", "init", "-q"], project, env)
    dvc = [sys.executable, "-m", "dvc"]

    first = run([*dvc, "repro"], project, env)
    for stage in STAGES:
        assert f"Running stage '{stage}'" in first
    m = json.loads((project / "metrics/evaluate.json").read_text())
    for split in ("valid", "test"):
        for model in ("sasrec", "align", "pad"):
            assert 0 <= m[split][model]["ndcg_10"] <= m[split][model]["hr_10"] <= 100
            assert {"warm", "median", "cold", "unmasked", "buckets"} <= set(m[split][model])
    assert m["test"]["pad"]["users"] == 150 and "10" in m["test"]["sasrec"]["buckets"]
    assert -1 <= m["tau"]["align"]["overall"] <= 1 and set(m["tau"]) == {"align", "finetune", "finetune_align"}
    ft = json.loads((project / "metrics/finetune.json").read_text())
    assert ft["test"]["hr_10"] == m["test"]["pad"]["hr_10"]  # the stage and evaluate agree on PAD
    assert (project / "plots/buckets_ndcg.tsv").read_text().splitlines()[0] == "bucket\tsasrec\talign\tpad"
    gate = (project / "plots/gate_weights.tsv").read_text().splitlines()
    assert gate[0] == "bucket\tid\talign\tllm" and len(gate) == 11
    assert "test.pad.cold.hr_10" in run([*dvc, "metrics", "show", "--precision", "2"], project, env)
    assert sum(g["users"] for g in m["history_groups"].values()) == 150
    assert sum(m["test"]["pad"]["history"][g]["users"] for g in ("short", "medium", "long")) == 150
    history = (project / "plots/history_ndcg.tsv").read_text().splitlines()
    assert history[0] == "group\tsasrec\talign\tpad" and len(history) == 4
    import polars as pl

    per_user = pl.read_parquet(project / "metrics/per_user.parquet")
    assert per_user.height == 2 * 3 * 150  # valid and test, sasrec / align / pad, every user
    test_pad = per_user.filter((pl.col("split") == "test") & (pl.col("model") == "pad"))
    assert round(100 * test_pad["hr_10"].mean(), 4) == m["test"]["pad"]["hr_10"]
    fixture = REPO / "tests/fixtures/exp_show.json"  # the table's rows; the paired tests read this run's Parquet
    report = run([sys.executable, "-m", "pad", "report", "--from", str(fixture)], project, env)
    assert "| PAD vs SASRec | cold items |" in report and "| PAD vs Align | short history |" in report
    check_training_logs_plots_and_artifact(project, env, dvc)

    second = run([*dvc, "repro"], project, env)
    assert "Running stage" not in second


def json_out(cmd: list[str], cwd: Path, env: dict):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(done.stdout)


def check_training_logs_plots_and_artifact(project: Path, env: dict, dvc: list[str]) -> None:
    """Each training stage's DVCLive log (one row per epoch, no timings) is a DVC metric and plot that
    `dvc metrics`, `dvc plots` and `dvc exp show` read; the PAD model is a registered DVC artifact."""
    from pad.train.live import TIMING_KEYS

    for stage in ("pretrain", "align", "finetune"):
        live = project / "dvclive" / stage
        summary = json.loads((live / "metrics.json").read_text())
        assert summary["step"] == 1 and not set(summary) & set(TIMING_KEYS)
        names = {f.stem for f in (live / "plots/metrics").glob("*.tsv")}
        assert {"train_loss", "valid_ndcg_10", "valid_hr_10"} <= names and not names & set(TIMING_KEYS)
        assert (live / "plots/metrics/train_loss.tsv").read_text().splitlines()[0] == "step\ttrain_loss"
    assert "align_loss" in json.loads((project / "dvclive/align/metrics.json").read_text())
    metrics = json_out([*dvc, "metrics", "show", "--json"], project, env)
    assert '"dvclive/align/metrics.json": {"data": {"train_loss"' in json.dumps(metrics)
    plots = json_out([*dvc, "plots", "show", "--json", "--split"], project, env)
    assert not plots.get("errors"), plots.get("errors")
    titles = set(plots.get("data", plots))
    assert {"Validation nDCG@10 per epoch", "Training loss per epoch",
            "dvclive/pretrain/plots/metrics/train_loss.tsv"} <= titles, titles
    run(["git", "add", "-A"], project, env)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "run"], project, env)
    exps = json_out([*dvc, "exp", "show", "--json"], project, env)
    assert "dvclive/finetune/metrics.json" in json.dumps(exps)
    import dvc.api
    from dvc.repo import Repo

    (artifact,) = Repo(str(project)).artifacts.read()["dvc.yaml"].values()
    assert (artifact.type, artifact.path) == ("model", "models/finetune.pt") and artifact.desc and artifact.labels
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "pad@v0.1.0", "-m", "PAD"], project, env)
    assert dvc.api.artifacts_show("pad", repo=str(project))["path"] == "models/finetune.pt"  # the registry's view
