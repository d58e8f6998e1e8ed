"""Shared helpers for the data tests: a DataConfig from the project's params with overrides."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pad.config import DataConfig, load_section

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def data_cfg():
    """`data_cfg(source=..., path=...)`: the project's `data` params with fields replaced."""
    base: DataConfig = load_section("data", REPO / "params.yaml")

    def make(**overrides) -> DataConfig:
        if "path" in overrides:
            overrides["path"] = str(overrides["path"])
        return dataclasses.replace(base, **overrides)

    return make
