"""One reader per `data.source`; each returns a `RawData` (interactions + item texts)."""
from __future__ import annotations

import importlib

from pad.config import DataConfig
from pad.data.sources.common import RawData
from pad.errors import PadError

SOURCES = ("synthetic", "pad_csv", "amazon2018", "mind", "generic", "recbole")


def read_source(cfg: DataConfig) -> RawData:
    """Read the raw data named by `cfg.source` / `cfg.path` / `cfg.name`."""
    if cfg.source == "synthetic":
        from pad.data.sources.synthetic import generate

        return generate(cfg.synthetic)
    if cfg.source not in SOURCES:
        raise PadError(f"data.source {cfg.source!r} is unknown; choose one of {', '.join(SOURCES)}")
    if not cfg.path:
        raise PadError(f"data.path is empty: set it to the folder with the {cfg.source} files")
    return importlib.import_module(f"pad.data.sources.{cfg.source}").read(cfg)
