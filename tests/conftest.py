"""Fixtures shared across the test folders."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest


class CodePayload:
    """Unpickling this runs `touch <marker>`: what a malicious .pt file does. `marker` exists afterwards
    exactly when the payload ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def copy_project():
    """`copy_project(dest)`: every file git tracks in the repo, copied to `dest` (a project to run DVC in)."""

    def copy(dest: Path) -> None:
        tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
        for name in filter(None, tracked.decode().split("\0")):
            if (REPO / name).is_file():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, dest / name)

    return copy


@pytest.fixture
def code_payload(tmp_path) -> CodePayload:
    return CodePayload(tmp_path / "payload-ran")
