"""Fault injection on the real pretrain stage (subprocesses over a copy of the code, synthetic data):
SIGKILL mid-epoch then rerun gives the metrics and the DVCLive training log of an uninterrupted run, byte for
byte; an edit under pad/
never resumes (or reuses) a run trained by the old code; a finished run is never reused by the next."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
EPOCHS = 6
LOG = "dvclive/pretrain"


def log_files(root: Path) -> dict[str, bytes]:
    """Every file of the pretrain stage's DVCLive folder."""
    folder = root / LOG
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def make_project(root: Path) -> Path:
    """The code (pad/, stages/) and params of the repo, a small synthetic data set, prepared."""
    root.mkdir()
    for folder in ("pad", "stages"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["synthetic"].update(users=1000, items=200, topics=8)
    params["model"].update(dim=16, blocks=1, max_len=10)
    params["pretrain"].update(epochs=EPOCHS, batch_size=64, patience=0, time_budget_s=0)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "prepare")
    return root


def env(root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(root), "PAD_THREADS": "1"}


def run(root: Path, stage: str) -> str:
    done = subprocess.run([sys.executable, f"stages/{stage}.py"], cwd=root, env=env(root), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def kill_during_epoch(root: Path, after_epochs: int) -> None:
    """Start pretrain and SIGKILL it once `after_epochs` epochs are logged (the next one is under way)."""
    proc = subprocess.Popen([sys.executable, "stages/pretrain.py"], cwd=root, env=env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:  # "pretrain epoch 2: loss ..." is printed after the epoch's state is saved
            if line.startswith(f"pretrain epoch {after_epochs}:"):
                time.sleep(0.05)  # into the next epoch (~0.2 s here)
                break
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def first_epoch(stdout: str) -> int:
    return int(next(line for line in stdout.splitlines() if line.startswith("pretrain epoch")).split()[2][:-1])


def test_sigkill_mid_epoch_then_rerun_gives_the_same_metrics_and_code_edits_never_resume(tmp_path):
    clean = make_project(tmp_path / "clean")
    killed = Path(shutil.copytree(clean, tmp_path / "killed"))

    out = run(clean, "pretrain")
    assert first_epoch(out) == 1
    assert not any((clean / "cache/train").iterdir())  # the finished run's resume state is gone

    kill_during_epoch(killed, after_epochs=2)
    assert not (killed / "models/pretrain.pt").exists()  # nothing written: the kill came before the end
    out = run(killed, "pretrain")
    assert first_epoch(out) >= 3  # resumed after the saved epochs
    assert (killed / "metrics/pretrain.json").read_bytes() == (clean / "metrics/pretrain.json").read_bytes()
    assert log_files(killed) == log_files(clean)  # the training log too: rebuilt from the saved epochs
    assert {"metrics.json", "plots/metrics/train_loss.tsv", "plots/metrics/valid_ndcg_10.tsv"} <= set(log_files(clean))
    assert len((clean / LOG / "plots/metrics/train_loss.tsv").read_text().splitlines()) == EPOCHS + 1

    kill_during_epoch(killed, after_epochs=2)
    loop = killed / "pad/train/loop.py"
    loop.write_text(loop.read_text() + "\n# an edit: the code that trained the saved epochs is gone\n")
    out = run(killed, "pretrain")
    assert first_epoch(out) == 1  # not resumed from the old code's state
    assert (killed / "metrics/pretrain.json").read_bytes() == (clean / "metrics/pretrain.json").read_bytes()

    again = run(clean, "pretrain")  # like `dvc repro -f`: trains anew and writes every output
    assert first_epoch(again) == 1
    assert len((clean / LOG / "plots/metrics/train_loss.tsv").read_text().splitlines()) == EPOCHS + 1
