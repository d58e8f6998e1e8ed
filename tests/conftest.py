"""Fixtures shared across the test folders."""
import os
from pathlib import Path

import pytest


class CodePayload:
    """Unpickling this runs `touch <marker>`: what a malicious .pt file does. `marker` exists afterwards
    exactly when the payload ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def code_payload(tmp_path) -> CodePayload:
    return CodePayload(tmp_path / "payload-ran")
