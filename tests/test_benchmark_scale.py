"""benchmarks/scale.py's project folders: a resumed preset runs this checkout's code, never the code the
folder was made with, and never resumes outputs made under other params."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import scale  # noqa: E402


def test_resume_copies_todays_code_and_keeps_outputs(tmp_path):
    folder = tmp_path / "preset"
    scale.make_project(folder, {"data.synthetic.users": 300})
    (folder / "pad/memory.py").write_text("# stale code from an older checkout\n")
    (folder / "models").mkdir()
    (folder / "models/pretrain.pt").write_text("kept")
    scale.make_project(folder, {"data.synthetic.users": 300}, resume=True)
    assert (folder / "pad/memory.py").read_text() == (scale.REPO / "pad/memory.py").read_text()
    assert (folder / "models/pretrain.pt").read_text() == "kept"
    assert yaml.safe_load((folder / "params.yaml").read_text())["data"]["synthetic"]["users"] == 300


def test_resume_refuses_a_folder_made_under_other_params(tmp_path):
    folder = tmp_path / "preset"
    scale.make_project(folder, {"data.synthetic.users": 300})
    with pytest.raises(SystemExit, match="params differ"):
        scale.make_project(folder, {"data.synthetic.users": 400}, resume=True)


def test_rows_name_the_code_they_ran():
    version = scale.code_version()
    assert version == "unknown" or version.split("+")[0].isalnum()
