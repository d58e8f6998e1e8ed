"""The command line: help works both ways, bad input gives one line and a non-zero exit."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "pad", *args], cwd=cwd, capture_output=True, text=True)


def test_python_m_pad_help_lists_every_stage():
    out = _run("--help")
    assert out.returncode == 0
    for stage in ("prepare", "embed", "pretrain", "align", "finetune", "evaluate"):
        assert stage in out.stdout


def test_stage_outside_the_project_is_one_clear_error(tmp_path):
    out = _run("prepare", cwd=tmp_path)
    assert out.returncode == 2
    assert "project root" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_params_is_one_clear_error(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "prepare.py").write_text((ROOT / "stages" / "prepare.py").read_text())
    (tmp_path / "params.yaml").write_text("data: {source: csv}\n")
    out = _run("prepare", cwd=tmp_path)
    assert out.returncode == 2
    assert "params.yaml" in out.stderr and "Traceback" not in out.stderr
