"""Model checkpoints (`models/pretrain.pt`, ...) and the resume folders of interrupted runs.

A resume folder (`paths.train_cache/<phase>-<hash>`) is named by everything that decides the run: the
params, the input files' contents and the code (`code_fingerprint`), so neither a params change nor an
edit under pad/ ever resumes a run trained by something else. The stage deletes it once its outputs are
written (`pad.train.loop.clear_resume`): a finished run's state is never reused by a later run.

Checkpoint format (a dict saved with torch.save): {"format": "pad.expert/1", "model": asdict(ModelConfig),
"n_items": N, "state_dict": Expert.state_dict(), "best_epoch": int, "valid": {...}}.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch

from pad.config import ModelConfig
from pad.errors import PadError
from pad.io import load_torch, save_torch
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
    ckpt = load_torch(path, what=f"{what} checkpoint", fix=f"rerun the {stage} stage (dvc repro -f {stage})")
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
    with checkpoint_contents(path, "pretrain"):
        cfg = ModelConfig(**ckpt["model"])
        expert = build_id_expert(cfg, ckpt["n_items"])
        expert.load_state_dict(ckpt["state_dict"])
    return expert, cfg


@contextmanager
def checkpoint_contents(path: str | Path, stage: str) -> Iterator[None]:
    """Rebuilding a model from a checkpoint dict: missing entries or weights of other shapes (a file from
    other code or hand-edited) become one PadError naming the file and the stage to rerun."""
    try:
        yield
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        detail = f"missing entry {exc}" if isinstance(exc, KeyError) else str(exc).strip().splitlines()[0][:160]
        raise PadError(f"{path}: checkpoint contents do not fit this code ({detail}); "
                       f"rerun the {stage} stage (dvc repro -f {stage})") from None


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


def code_fingerprint() -> str:
    """A hash of the code this process runs: the source of every loaded module of the `pad` package and of
    the stage script (`stages/<name>.py` as `__main__`), plus torch's version."""
    root = Path(__file__).resolve().parents[2]  # the project: pad/ and stages/
    sources = {root / "pad", root / "stages"}
    loaded = {Path(f).resolve() for m in list(sys.modules.values()) if (f := getattr(m, "__file__", None))}
    files = sorted(f for f in loaded if f.suffix == ".py" and any(f.is_relative_to(d) for d in sources))
    h = hashlib.sha256(torch.__version__.encode())
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def resume_folder(root: str | Path, phase: str, *parts: Any, files: tuple[str | Path, ...] = ()) -> Path:
    """`root/<phase>-<hash of parts, input files and code>`: where `fit` keeps a run's resume state."""
    return Path(root) / f"{phase}-{fingerprint(*parts, code_fingerprint(), files=files)}"
