"""`pad data fetch`: download a public data set's files, checksum-checked, written atomically."""
from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from pad.errors import PadError
from pad.io import atomic_path

PAD_BASE_URL = "https://raw.githubusercontent.com/Applied-Machine-Learning-Lab/PAD/main/dataset/"

# data set -> (default base URL, {file name: sha256})
DATASETS: dict[str, tuple[str, dict[str, str]]] = {
    "prime-pantry": (PAD_BASE_URL, {
        "Prime_Pantry_cleaned_history.csv": "9087dcb1c800b1270840fa7f5a037177fcb485e48c12aa04296203476fd69485",
        "metadata_Prime_Pantry.csv": "539a936c75d982305eb82b28f8f8e4a85cf88c002b492045d26e4f86502c85d0",
        "Prime_Pantry_fre.csv": "32a624102f826e37ced14924650415390bc88b3af543541740f0612e709ac678",
    }),
}
_CHUNK = 1 << 16


def fetch(dataset: str, dest: str | Path, base_url: str | None = None, timeout_s: float = 60.0) -> list[Path]:
    """Download every file of `dataset` into `dest` (files already there with the right sha256 are kept)."""
    if dataset not in DATASETS:
        raise PadError(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    default_url, files = DATASETS[dataset]
    base = (base_url or default_url).rstrip("/") + "/"
    dest = Path(dest)
    out = []
    for name, sha in files.items():
        path = dest / name
        if not (path.is_file() and sha256_of(path) == sha):
            download(base + name, path, sha, timeout_s)
        out.append(path)
    return out


def download(url: str, path: Path, sha256: str, timeout_s: float = 60.0) -> None:
    """Stream `url` to `path` with a progress bar; keep it only if its sha256 matches."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response, atomic_path(path) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            with open(tmp, "wb") as fh, tqdm(total=total, unit="B", unit_scale=True, desc=path.name) as bar:
                while chunk := response.read(_CHUNK):
                    fh.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
            if digest.hexdigest() != sha256:
                raise PadError(f"{url}: checksum mismatch (sha256 {digest.hexdigest()}, expected {sha256}); "
                               f"nothing was written to {path}: retry, or check --base-url")
    except urllib.error.HTTPError as exc:
        raise PadError(f"{url}: HTTP {exc.code} {exc.reason}; check --base-url or try again later") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PadError(f"{url}: download failed ({reason}); check the network or --base-url") from None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
