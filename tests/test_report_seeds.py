"""`pad report`'s paired tests over seeds, from a real DVC project: each run's per-user Parquet is read back from
the DVC cache (its commit's dvc.lock), and each user's nDCG@10 is averaged over the seeds."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from pad import report
from pad.cli import app
from pad.evaluation.per_user import pool_seeds
from pad.errors import PadError

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")

# A stand-in evaluate stage: per-user scores whose PAD column depends on the seed.
STAGE = '''
import json, sys
import numpy as np, polars as pl, yaml
from pad.evaluation.per_user import write_per_user
from pad.evaluation.users import history_groups

seed = yaml.safe_load(open("params.yaml"))["seed"]
rng = np.random.default_rng(0)
n = 200
groups = history_groups([np.arange(int(rng.integers(5, 20))) for _ in range(n)])
bucket = rng.integers(1, 11, n)
base = (rng.random(n) < 0.3) / np.log2(rng.integers(1, 11, n) + 1)
noise = np.random.default_rng(seed).random(n)
pad = np.where((bucket >= 8) & (noise < 0.5), 1.0, base)
frames = {model: pl.DataFrame({
    "split": "test", "model": model, "user_idx": np.arange(n, dtype=np.int32), "target": np.ones(n, np.int32),
    "rank": np.ones(n), "hr_10": (s > 0).astype(float), "ndcg_10": s, "bucket": bucket.astype(np.int8),
    "item_group": np.where(bucket <= 3, "warm", np.where(bucket <= 7, "median", "cold")),
    "history_len": groups.lengths.astype(np.int32), "user_group": groups.names(), "repeat": np.zeros(n, bool)})
    for model, s in (("sasrec", base), ("align", base), ("pad", pad), ("hybrid", base))}
write_per_user([frames[m] for m in ("sasrec", "align", "pad")], "metrics/per_user.parquet", 10, 10, groups)
write_per_user([frames["hybrid"]], "metrics/baselines_per_user.parquet", 10, 10, groups)  # the baselines stage's
json.dump({"test": {"pad": {"ndcg_10": float(100 * pad.mean())}}}, open("metrics/evaluate.json", "w"))
'''

DVC_YAML = """stages:
  evaluate:
    cmd: python stage.py
    deps: [stage.py]
    params: [seed]
    outs: [metrics/per_user.parquet, metrics/baselines_per_user.parquet]
    metrics: [{metrics/evaluate.json: {cache: false}}]
"""


def run(args: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)} exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("seeds")
    env = {**os.environ, "PYTHONPATH": str(REPO), "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    (root / "stage.py").write_text(STAGE)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("seed: 2020\n")
    (root / "metrics").mkdir()
    run(["git", "init", "-q"], root, env)
    dvc = [sys.executable, "-m", "dvc"]
    run(dvc + ["init", "-q"], root, env)
    run(dvc + ["repro", "-q"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "baseline"], root, env)
    for seed in (1, 2):
        run(dvc + ["exp", "run", "-q", "-n", f"default-seed{seed}", "-S", f"seed={seed}"], root, env)
    return root


def per_seed(project: Path, seed: int) -> pl.DataFrame:
    """What the stage writes for `seed` (its models', then the baselines'), computed here again (not read from DVC)."""
    scope: dict = {}
    cwd = Path.cwd()
    work = project / f"check-{seed}"
    (work / "metrics").mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(f"seed: {seed}\n")
    try:
        os.chdir(work)
        exec(STAGE, scope)
    finally:
        os.chdir(cwd)
    return pl.concat([pl.read_parquet(work / "metrics/per_user.parquet"),
                      pl.read_parquet(work / "metrics/baselines_per_user.parquet")])


def test_each_run_is_read_from_its_own_commit_and_users_are_averaged_over_seeds(project, monkeypatch):
    monkeypatch.chdir(project)
    rows = report.parse_exp_show(report.load_exp_show(project))
    (group,) = report.seed_groups(rows)
    assert sorted(r.params["seed"] for r in group) == [1, 2, 2020] and all(r.rev for r in group)
    pooled, info = report.seed_group_per_user(project, group)
    expected = pool_seeds([per_seed(project, r.params["seed"]) for r in group], 10)
    assert pooled.equals(expected) and info["k"] == 10
    pad = pooled.filter(pl.col("model") == "pad")
    assert len(pad) == 200 and set(pad["seeds"]) == {3}  # each user once, with three seeds behind it
    assert len(pooled.filter(pl.col("model") == "hybrid")) == 200  # each run's baselines joined
    (only, comparisons), = report.pooled_significance(project, rows)
    cold = next(c for c in comparisons if (c.b, c.group) == ("sasrec", "cold"))
    assert cold.test.mean_diff > 0 and cold.test.p_value < 0.01
    text = report.render_significance(comparisons, report.pooled_title(only))
    assert "averaged over seeds" in text and "| PAD vs SASRec | cold items |" in text
    assert _row(text, "PAD vs Hybrid", "cold items") == _row(text, "PAD vs SASRec", "cold items")  # same scores

    result = CliRunner().invoke(app, ["report"])
    assert result.exit_code == 0, result.output
    assert "averaged over seeds" in result.output


def _row(text: str, comparison: str, group: str) -> list[str]:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"| {comparison} | {group} |")]
    return line.split("|")[3:]


def test_pooling_refuses_runs_on_other_users():
    a = pl.DataFrame({"split": ["test"], "model": ["pad"], "user_idx": [1], "bucket": [1], "item_group": ["warm"],
                      "history_len": [5], "user_group": ["short"], "repeat": [False], "hr_10": [1.0], "ndcg_10": [1.0]})
    b = a.with_columns(pl.lit(2).alias("user_idx"))
    with pytest.raises(PadError, match="other \\(split, model, user\\) rows"):
        pool_seeds([a, b], 10)
    pooled = pool_seeds([a, a.with_columns(pl.lit(0.0).alias("ndcg_10"), pl.lit(0.0).alias("hr_10"))], 10)
    assert pooled["ndcg_10"].to_list() == [0.5] and pooled["seeds"].to_list() == [2]
