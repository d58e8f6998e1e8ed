"""A tiny serving workspace for the tests of pad/serve: items, sequences, embeddings and a random PAD
checkpoint saved by the training code (plus its ID expert alone, for the baseline)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from typer.testing import CliRunner

from pad.cli import app
from pad.config import ModelConfig, load_section
from pad.data.buckets import write_items
from pad.embed.store import write_embeddings
from pad.serve import load_recommender
from pad.train.checkpoint import save_expert
from pad.train.finetune import build_pad, save_pad

ROOT = Path(__file__).resolve().parents[2]
N, USERS, COLD = 24, 16, 4  # items N-COLD+1..N never occur in any sequence: train_freq 0


def make_workspace(tmp: Path, backbone: str = "sasrec", gate: str = "bucket", text: np.ndarray | None = None,
                   meta: dict | None = None, titles: list[str] | None = None, llm_only: bool = False) -> dict[str, Path]:
    """items/sequences/embeddings files and a random PAD checkpoint (plus its ID expert alone)."""
    rng = np.random.default_rng(0)
    seqs = [rng.choice(np.arange(1, N - COLD + 1), size=rng.integers(4, 9), replace=False) for _ in range(USERS)]
    freq = np.bincount(np.concatenate([s[:-2] for s in seqs]), minlength=N + 1)[1:]
    buckets = np.where(freq == 0, 3, np.where(freq >= 3, 1, 2))
    titles = titles or [f"item number {i}" for i in range(1, N + 1)]
    paths = {k: tmp / f for k, f in [("items", "items.parquet"), ("sequences", "sequences.parquet"),
                                     ("embeddings", "emb.parquet"), ("model", "models/finetune.pt"),
                                     ("pretrain", "models/pretrain.pt")]}
    write_items(pl.DataFrame({"item_idx": np.arange(1, N + 1, dtype=np.int32), "item_id": [f"I{i:03d}" for i in range(1, N + 1)],
                              "text": titles, "train_freq": freq.astype(np.int32), "bucket": buckets.astype(np.int8)}),
                paths["items"], n_buckets=3)
    pl.DataFrame({"user_idx": np.arange(USERS, dtype=np.int32), "user_id": [f"U{u}" for u in range(USERS)],
                  "items": [s.astype(np.int32).tolist() for s in seqs]}).write_parquet(paths["sequences"])
    text = rng.normal(size=(N, 16)).astype(np.float32) if text is None else text
    write_embeddings(np.arange(1, N + 1, dtype=np.int32), text, meta or {}, paths["embeddings"])
    cfg = ModelConfig(backbone=backbone, dim=8, blocks=2, heads=2, dropout=0.1, max_len=5, loss="ce", negatives=0)
    ft = dataclasses.replace(load_section("finetune", ROOT / "params.yaml"), gate=gate, experts=("id", "align", "llm"))
    torch.manual_seed(0)
    emb = np.concatenate([np.zeros((1, text.shape[1]), np.float32), text])
    model = build_pad(ft.experts, gate, cfg, emb, torch.tensor([0, *buckets.tolist()]), n_buckets=3)
    with torch.no_grad():  # spread the scores (no near-ties); padding rows stay zero
        for name, p in model.named_parameters():
            p.normal_(0, 0.3)
            if "emb" in name:
                p[0] = 0
        if llm_only:  # every bucket weighs the LLM expert ~1: scores depend on the item text only
            model.gate.raw.copy_(torch.tensor([-30.0, -30.0, 30.0])[:, None].expand_as(model.gate.raw))
    save_pad(model, cfg, ft, paths["model"])
    save_expert(model.experts["id"], cfg, N, paths["pretrain"])
    return {**paths, "seqs": seqs, "n": N}


@pytest.fixture
def make_ws():
    """`make_ws(tmp_path, backbone=..., gate=..., llm_only=...)`: a fresh workspace (dict of paths, seqs, n)."""
    return make_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def minilm_ws(tmp_path_factory):
    """A catalogue embedded by the embed stage's MiniLM path (so new texts use the same encoder)."""
    from pad.embed.catalogue import embed_catalogue

    tmp = tmp_path_factory.mktemp("serve_minilm")
    titles = ["organic green tea bags", "dark roast coffee beans", "peanut butter crunchy", "paper towels",
              "dish soap lemon", "chocolate chip cookies", "sparkling water lime", "oat breakfast cereal"]
    titles = [f"{t}, pack of {n}" for n, t in enumerate(titles * 3, 1)]
    cfg = dataclasses.replace(load_section("embed", ROOT / "params.yaml"), encoder="hf", model="all-MiniLM-L6-v2",
                              instruction="", device="cpu", dtype="float32")
    res = embed_catalogue(np.arange(1, N + 1, dtype=np.int32), titles, cfg, tmp / "cache")
    return make_workspace(tmp, text=res.vectors, meta=res.meta, titles=titles, llm_only=True)


@pytest.fixture
def load():
    """`load(ws, **kw)`: the workspace's PAD model as a Recommender (load_recommender)."""
    return lambda ws, **kw: load_recommender(ws["model"], ws["embeddings"], ws["items"], **kw)


@pytest.fixture
def cli():
    """`cli(ws, *args)`: `pad recommend` on the workspace's files, through the CLI."""
    def run(ws, *args):
        base = ["recommend", "--model", str(ws["model"]), "--embeddings", str(ws["embeddings"]),
                "--catalogue", str(ws["items"]), "--sequences", str(ws["sequences"])]
        return CliRunner().invoke(app, base + list(args))
    return run
