"""Model checkpoints (`models/pretrain.pt`, ...) and the resume folders of interrupted runs.

Checkpoint format (a dict saved with torch.save): {"format": "pad.expert/1", "model": asdict(ModelConfig),
"n_items": N, "state_dict": Expert.state_dict(), "best_epoch": int, "valid": {...}}.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from pad.config import ModelConfig
from pad.errors import PadError
from pad.io import save_torch
from pad.models import Expert, build_id_expert

FORMAT = "pad.expert/1"


def save_expert(expert: Expert, cfg: ModelConfig, n_items: int, path: str | Path, **info: Any) -> None:
    """Write an ID expert with what is needed to rebuild it (atomically); `info` is stored alongside."""
    save_torch({"format": FORMAT, "model": dataclasses.asdict(cfg), "n_items": n_items,
                "state_dict": expert.state_dict(), **info}, path)


def load_checkpoint(path: str | Path, fmt: str = FORMAT, what: str = "PAD expert",
                    stage: str = "pretrain") -> dict[str, Any]:
    """The checkpoint dict at `path` on CPU, checked to be of format `fmt`; a PadError naming the
    stage to run when it is missing or of another kind."""
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: {what} checkpoint not found; run the {stage} stage first (dvc repro {stage})")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    found = ckpt.get("format") if isinstance(ckpt, dict) else None
    if isinstance(found, str) and found != fmt and found.split("/")[0] == fmt.split("/")[0]:
        raise PadError(f"{path}: {what} checkpoint of format {found}, but this version reads {fmt}; "
                       f"rerun the {stage} stage (dvc repro {stage})")
    if found != fmt:
        raise PadError(f"{path}: not a {what} checkpoint (format {fmt})")
    return ckpt


def load_pretrained(path: str | Path) -> tuple[Expert, ModelConfig]:
    """The phase-1 ID expert (SASRec/GRU4Rec/Caser + ID table) and its model config, on CPU."""
    ckpt = load_checkpoint(path)
    cfg = ModelConfig(**ckpt["model"])
    expert = build_id_expert(cfg, ckpt["n_items"])
    expert.load_state_dict(ckpt["state_dict"])
    return expert, cfg


def fingerprint(*parts: Any, files: tuple[str | Path, ...] = ()) -> str:
    """A short hash of configs (dataclasses or plain values) and file contents: names a resume folder."""
    h = hashlib.sha256()
    for part in parts:
        value = dataclasses.asdict(part) if dataclasses.is_dataclass(part) else part
        h.update(json.dumps(value, sort_keys=True, default=str).encode())
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]
