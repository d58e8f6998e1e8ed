"""`pad recommend`: top-k from a tiny PAD model saved with save_pad and loaded through the serving path."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from torch.utils._pytree import tree_map
from typer.testing import CliRunner

from pad.cli import app
from pad.config import ModelConfig, load_section
from pad.data.buckets import write_items
from pad.embed.store import write_embeddings
from pad.evaluation.ranking import target_ranks
from pad.serve import default_cache_path, item_tables, load_baseline, load_recommender, user_history
from pad.serve_new import new_item_vectors
from pad.train.checkpoint import save_expert
from pad.train.data import ranking_splits
from pad.train.finetune import build_pad, save_pad

ROOT = Path(__file__).resolve().parents[1]
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
    return {**paths, "seqs": seqs}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return make_workspace(tmp_path_factory.mktemp("serve"))


def _load(ws, **kw):
    return load_recommender(ws["model"], ws["embeddings"], ws["items"], **kw)


def test_k_distinct_real_items_without_the_history(ws):
    rec = _load(ws)
    history = ws["seqs"][3].tolist()
    idx, scores = rec.top_k(history, N - len(history))
    assert len(set(idx.tolist())) == N - len(history)
    assert 0 not in idx.tolist() and not set(idx.tolist()) & set(history)
    assert torch.all(scores[:-1] >= scores[1:]) and torch.isfinite(scores).all()
    everything, _ = rec.top_k(history, N, allow_repeats=True)
    assert sorted(everything.tolist()) == list(range(1, N + 1))


@pytest.mark.parametrize("backbone,gate", [("sasrec", "bucket"), ("gru4rec", "network"), ("caser", "global")])
def test_same_ranking_as_the_evaluation(tmp_path, backbone, gate):
    ws = make_workspace(tmp_path, backbone, gate)
    rec = _load(ws)
    assert (rec.stacked is not None) == (backbone == "sasrec") and (rec.folded is None) == (gate == "network")
    split = ranking_splits(ws["seqs"], 5)["test"]
    with rec.model.cached_items():  # the evaluation's scores (pad/evaluation/ranking.py split_ranks)
        query = tree_map(lambda t: t[:, -1:], rec.model.encode(split.inputs))
        scores = rec.model.score(query, None)[:, 0]  # (U, N+1)
    k = 6
    for u, seq in enumerate(ws["seqs"]):
        idx, values = rec.top_k(seq[:-1].tolist(), k)
        torch.testing.assert_close(values, scores[u, idx], atol=1e-5, rtol=1e-5)
        ranks = target_ranks(scores[u].expand(k, -1), idx, split.history[u].expand(k, -1))
        assert ranks.tolist() == list(range(1, k + 1))


def test_user_history_is_the_whole_sequence(ws):
    assert user_history(ws["sequences"], "U5") == ws["seqs"][5].tolist()


def test_zero_frequency_item_reaches_the_top(tmp_path):
    """With text-only scores, a train_freq-0 item given the top item's text ties with it at the top."""
    ws = make_workspace(tmp_path, llm_only=True)
    history = ws["seqs"][0].tolist()
    top = int(_load(ws).top_k(history, 1)[0][0])
    cold = N  # never interacted with
    text = pl.read_parquet(ws["embeddings"])["embedding"].to_numpy()
    text = np.stack(text).astype(np.float32)
    text[cold - 1] = text[top - 1]
    write_embeddings(np.arange(1, N + 1, dtype=np.int32), text, {}, ws["embeddings"])
    rec = _load(ws)
    idx, values = rec.top_k(history, 2)
    assert set(idx.tolist()) == {top, cold} and rec.catalogue.buckets[cold] == 3
    assert any(r["item_id"] == f"I{cold:03d}" and r["bucket"] == 3 for r in rec.recommend(history, 2))


def test_item_cache_reused_and_rebuilt_when_stale(tmp_path):
    ws = make_workspace(tmp_path)
    cache = default_cache_path(ws["model"])
    rec = _load(ws)
    assert cache.is_file()
    _, reused = item_tables(rec.model, (ws["model"], ws["embeddings"]), cache)
    assert reused
    saved = torch.load(cache, weights_only=True)
    for name, table in saved["tables"].items():
        torch.testing.assert_close(table, rec.model.experts[name].item_vectors().detach())
    ws["model"].write_bytes(ws["model"].read_bytes() + b"\0")  # any change to the checkpoint file
    _, reused = item_tables(rec.model, (ws["model"], ws["embeddings"]), cache)
    assert not reused
    cache.write_bytes(b"garbage")
    assert not item_tables(rec.model, (ws["model"], ws["embeddings"]), cache)[1]


def test_baseline_is_the_id_expert_alone(ws):
    base = load_baseline(ws["pretrain"], ws["items"])
    rec = _load(ws)
    expert = rec.model.experts["id"]
    seq = torch.tensor(ws["seqs"][2][-5:])[None]
    want = expert.score(expert.encode(seq)[:, -1:], None)[0, 0, 1:]
    torch.testing.assert_close(base.scores(ws["seqs"][2].tolist())[1:], want, atol=1e-5, rtol=1e-5)


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


def test_new_item_with_text_only(minilm_ws, tmp_path):
    ws = minilm_ws
    history = ws["seqs"][1].tolist()
    top = int(_load(ws).top_k(history, 1)[0][0])
    titles = pl.read_parquet(ws["items"])["text"].to_list()
    new = tmp_path / "new.csv"
    pl.DataFrame({"item_id": ["NEW1", "NEW2"], "text": [titles[top - 1], "garden hose"]}).write_csv(new)
    rec = _load(ws, new_items=new)
    assert rec.n_items == N + 2 and rec.catalogue.buckets[-1] == 3
    rows = rec.recommend(history, 2)
    assert {r["item_id"] for r in rows} == {f"I{top:03d}", "NEW1"} and any(r["new"] for r in rows)
    # the rule: ID parts are zero vectors, text via the embed stage's encoder (same vector as the catalogue's)
    text = torch.from_numpy(np.stack(pl.read_parquet(ws["embeddings"])["embedding"].to_numpy())[top - 1:top])
    torch.testing.assert_close(rec.tables[2][N + 1], new_item_vectors(rec.model.experts["llm"].items, text)[0],
                               atol=1e-4, rtol=1e-4)
    assert torch.all(rec.tables[0][N + 1:] == 0)


def _cli(ws, *args):
    base = ["recommend", "--model", str(ws["model"]), "--embeddings", str(ws["embeddings"]),
            "--catalogue", str(ws["items"]), "--sequences", str(ws["sequences"])]
    return CliRunner().invoke(app, base + list(args))


def test_cli_table_and_json(ws):
    out = _cli(ws, "--user", "U0", "-k", "3")
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["rank", "item_id", "title"] and len(lines) == 4
    out = _cli(ws, "--items", "I001,I002", "-k", "2", "--json")
    assert out.exit_code == 0 and '"item_id"' in out.stdout


@pytest.mark.parametrize("args,needle", [
    (["--user", "nobody"], "unknown user id 'nobody'"),
    (["--items", "I001,XYZ"], "unknown item id 'XYZ'"),
    (["--user", "U0", "-k", "0"], "-k 0"),
    (["--user", "U0", "-k", str(N + 1)], f"-k {N + 1}"),
    (["--user", "U0", "--items", "I001"], "exactly one of"),
    (["--user", "U0", "--model", "missing.pt"], "dvc repro finetune"),
])
def test_cli_bad_input_is_one_line(ws, args, needle):
    out = _cli(ws, *args)
    assert out.exit_code == 2
    assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_cli_embeddings_model_mismatch(ws, tmp_path):
    other = tmp_path / "emb.parquet"
    write_embeddings(np.arange(1, N, dtype=np.int32), np.zeros((N - 1, 16), np.float32), {}, other)
    out = _cli(ws, "--user", "U0", "--embeddings", str(other))
    assert out.exit_code == 2 and "rerun" in out.stderr and len(out.stderr.strip().splitlines()) == 1



@pytest.mark.parametrize("content,needle", [(b"", "corrupt or truncated"), (b"garbage", "corrupt or truncated"),
                                            ("truncated", "corrupt or truncated"), ("payload", "refused to load")])
def test_cli_unreadable_or_unsafe_model_is_one_line(ws, tmp_path, code_payload, content, needle):
    model = tmp_path / "model.pt"
    if content == "truncated":
        content = ws["model"].read_bytes()[:1000]
    elif content == "payload":
        torch.save({"format": "pad.pad/2", "x": code_payload}, model)
        content = model.read_bytes()
    model.write_bytes(content)
    out = _cli(ws, "--user", "U0", "--model", str(model))
    assert out.exit_code == 2 and needle in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not code_payload.marker.exists()


def test_cli_checkpoint_from_other_code_is_one_line(ws, tmp_path):
    ckpt = torch.load(ws["model"], weights_only=True)
    ckpt["state_dict"].popitem()  # a weight this code expects is missing
    torch.save(ckpt, tmp_path / "model.pt")
    out = _cli(ws, "--user", "U0", "--model", str(tmp_path / "model.pt"))
    assert out.exit_code == 2 and "do not fit this code" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_new_items_blank_text_gets_the_empty_text_zero_vector(minilm_ws, tmp_path):
    """Blank (or missing) text: the embed stage's rule, a zero text vector, beside texts that are encoded."""
    ws = minilm_ws
    new = tmp_path / "new.csv"
    new.write_text('item_id,text\nNEW1,garden hose\nNEW2,"   "\nNEW3,\n')
    rec = _load(ws, new_items=new)
    zero = torch.zeros(1, 384)
    for e, name in enumerate(rec.model.names):
        want = new_item_vectors(rec.model.experts[name].items, zero)[0]
        torch.testing.assert_close(rec.tables[e][N + 2], want)
        torch.testing.assert_close(rec.tables[e][N + 3], want)
    assert not torch.equal(rec.tables[2][N + 1], rec.tables[2][N + 2])  # the real text was encoded
    assert rec.catalogue.titles[N + 1:] == ["garden hose", "", ""]


def test_new_items_all_blank_need_no_encoder(ws, tmp_path):
    """`ws`'s embeddings name no encoder: only blank texts can be served, and they are (zero text vectors)."""
    new = tmp_path / "new.parquet"
    pl.DataFrame({"item_id": ["NEW1", "NEW2"], "text": [None, ""]}).write_parquet(new)
    rec = _load(ws, new_items=new)
    assert rec.n_items == N + 2
    want = new_item_vectors(rec.model.experts["llm"].items, torch.zeros(1, 16))[0]
    torch.testing.assert_close(rec.tables[2][N + 1], want)
    out = _cli(ws, "--items", "I001,NEW1", "-k", "3", "--new-items", str(new))
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize("content,needle", [
    ("item_id,text\nNEW1,tea\n,milk\n", "new.csv: line 3: item_id is empty"),
    ("item_id,text\nNEW1,tea\n  ,milk\n", "new.csv: line 3: item_id is empty"),
    ("item_id,text\nNEW1,tea\nNEW2,milk\nNEW1,rice\n", "new.csv: item_id 'NEW1' is on line 2 and line 4; keep one row"),
    ("item_id,text\nNEW1,tea\nI003,milk\n", "new.csv: line 3: item_id 'I003' is already a catalogue item (1 such rows)"),
    ("id,text\nNEW1,tea\n", "needs columns item_id and text"),
    ('item_id,text\nNEW1,"tea\n', "new.csv: cannot read it as CSV"),
])
def test_cli_bad_new_items_is_one_line(ws, tmp_path, content, needle):
    """Checked before any encoder loads (`ws` names none); a null id used to become the id 'None'."""
    new = tmp_path / "new.csv"
    new.write_text(content)
    out = _cli(ws, "--user", "U0", "--new-items", str(new))
    assert out.exit_code == 2, out.output
    assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_bad_new_items_parquet_names_the_row(ws, tmp_path):
    new = tmp_path / "new.parquet"
    pl.DataFrame({"item_id": [7, None], "text": ["tea", "milk"]}).write_parquet(new)
    out = _cli(ws, "--user", "U0", "--new-items", str(new))
    assert out.exit_code == 2 and "new.parquet: row 2: item_id is empty" in out.stderr
