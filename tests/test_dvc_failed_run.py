"""A failed `dvc repro` never leaves a stale output that looks current, and the last good outputs come back.

DVC deletes a stage's outputs before running it (no `persist`, see dvc.yaml), so after a failure every
output file present was written by the failed run itself, in full (pad.io writes atomically), and a
missing file is plain to see. The stage stays "changed" in `dvc status` and dvc.lock keeps the last
good run. `dvc checkout <stage>` brings back its cached model; undoing the change and rerunning
`dvc repro` restores model, metrics and plots from DVC's run cache without training again.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
OUTPUTS = ("models/pretrain.pt", "metrics/pretrain.json", "dvclive/pretrain/metrics.json",
           "dvclive/pretrain/plots/metrics/train_loss.tsv")

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def dvc(args: list[str], cwd: Path, env: dict, ok: bool = True) -> str:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert (done.returncode == 0) == ok, f"dvc {' '.join(args)} exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_failed_stage_keeps_no_stale_output_and_recovers(tmp_path, copy_project):
    project = tmp_path / "project"
    copy_project(project)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["data"]["synthetic"].update(users=150, items=60, topics=4)
    params["model"].update(dim=16, blocks=1, heads=2, max_len=8)
    params["pretrain"].update(epochs=2, batch_size=64, patience=0)
    params["evaluate"].update(user_chunk=64)
    good = yaml.safe_dump(params, sort_keys=False)
    (project / "params.yaml").write_text(good)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PYTHONPATH": str(project), "PATH": bin_dir + os.pathsep + os.environ["PATH"],
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches must not count as changed code
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)

    assert "Running stage 'pretrain'" in dvc(["repro", "pretrain"], project, env)
    before = {name: (project / name).read_bytes() for name in OUTPUTS}
    lock = (project / "dvc.lock").read_text()

    params["pretrain"]["epochs"] = "many"  # rejected by the stage's params loader
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    failed = dvc(["repro", "pretrain"], project, env, ok=False)
    assert "'pretrain.epochs' must be an integer" in failed and "Running stage 'prepare'" not in failed
    assert not any((project / name).exists() for name in OUTPUTS)  # nothing stale left to mistake for new
    assert (project / "dvc.lock").read_text() == lock  # the last good run stays recorded
    status = json.loads(dvc(["status", "--json", "pretrain"], project, env))
    assert "pretrain" in status  # changed: not up to date

    dvc(["checkout", "pretrain"], project, env)  # the last good model, while the bad params stay
    assert (project / OUTPUTS[0]).read_bytes() == before[OUTPUTS[0]]
    assert "pretrain" in json.loads(dvc(["status", "--json", "pretrain"], project, env))

    (project / "params.yaml").write_text(good)  # undo the change: the run cache has everything
    again = dvc(["repro", "pretrain"], project, env)
    assert "Stage 'pretrain' is cached - skipping run" in again and "Running stage" not in again
    assert {name: (project / name).read_bytes() for name in OUTPUTS} == before
    assert (project / "dvc.lock").read_text() == lock
    assert "up to date" in dvc(["status", "pretrain"], project, env)
