"""`dvc repro prepare` on a fresh copy of the project: works offline (synthetic), second run does nothing."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def run(cmd, cwd, env):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def test_dvc_repro_prepare_twice(tmp_path):
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    project = tmp_path / "project"
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (project / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, project / name)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PYTHONPATH": str(project), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # bytecode caches must not count as changed code
    run(["git", "init", "-q"], project, env)
    dvc = [sys.executable, "-m", "dvc"]

    first = run([*dvc, "repro", "prepare"], project, env)
    assert "Running stage 'prepare'" in first
    metrics = json.loads((project / "metrics/prepare.json").read_text())
    assert (metrics["users"], metrics["items"]) == (3000, 1200)
    assert pq.read_schema(project / "data/prepared/sequences.parquet").field("items").type.value_type.bit_width == 32

    second = run([*dvc, "repro", "prepare"], project, env)
    assert "Running stage" not in second and "didn't change, skipping" in second
    assert "up to date" in run([*dvc, "status", "prepare"], project, env)
