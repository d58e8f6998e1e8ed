"""`pad recommend`: top-k from a tiny PAD model saved with save_pad and loaded through the serving path."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from torch.utils._pytree import tree_map

from pad.embed.store import write_embeddings
from pad.evaluation.ranking import target_ranks
from pad.serve import default_cache_path, item_tables, load_baseline, user_history
from pad.train.data import ranking_splits


def test_k_distinct_real_items_without_the_history(ws, load):
    rec, n = load(ws), ws["n"]
    history = ws["seqs"][3].tolist()
    idx, scores = rec.top_k(history, n - len(history))
    assert len(set(idx.tolist())) == n - len(history)
    assert 0 not in idx.tolist() and not set(idx.tolist()) & set(history)
    assert torch.all(scores[:-1] >= scores[1:]) and torch.isfinite(scores).all()
    everything, _ = rec.top_k(history, n, allow_repeats=True)
    assert sorted(everything.tolist()) == list(range(1, n + 1))


@pytest.mark.parametrize("backbone,gate", [("sasrec", "bucket"), ("gru4rec", "network"), ("caser", "global")])
def test_same_ranking_as_the_evaluation(tmp_path, make_ws, load, backbone, gate):
    ws = make_ws(tmp_path, backbone, gate)
    rec = load(ws)
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


def test_zero_frequency_item_reaches_the_top(tmp_path, make_ws, load):
    """With text-only scores, a train_freq-0 item given the top item's text ties with it at the top."""
    ws = make_ws(tmp_path, llm_only=True)
    n = ws["n"]
    history = ws["seqs"][0].tolist()
    top = int(load(ws).top_k(history, 1)[0][0])
    cold = n  # never interacted with
    text = pl.read_parquet(ws["embeddings"])["embedding"].to_numpy()
    text = np.stack(text).astype(np.float32)
    text[cold - 1] = text[top - 1]
    write_embeddings(np.arange(1, n + 1, dtype=np.int32), text, {}, ws["embeddings"])
    rec = load(ws)
    idx, values = rec.top_k(history, 2)
    assert set(idx.tolist()) == {top, cold} and rec.catalogue.buckets[cold] == 3
    assert any(r["item_id"] == f"I{cold:03d}" and r["bucket"] == 3 for r in rec.recommend(history, 2))


def test_item_cache_reused_and_rebuilt_when_stale(tmp_path, make_ws, load):
    ws = make_ws(tmp_path)
    cache = default_cache_path(ws["model"])
    rec = load(ws)
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


def test_baseline_is_the_id_expert_alone(ws, load):
    base = load_baseline(ws["pretrain"], ws["items"])
    rec = load(ws)
    expert = rec.model.experts["id"]
    seq = torch.tensor(ws["seqs"][2][-5:])[None]
    want = expert.score(expert.encode(seq)[:, -1:], None)[0, 0, 1:]
    torch.testing.assert_close(base.scores(ws["seqs"][2].tolist())[1:], want, atol=1e-5, rtol=1e-5)


def test_cli_table_and_json(ws, cli):
    out = cli(ws, "--user", "U0", "-k", "3")
    assert out.exit_code == 0, out.output
    lines = out.stdout.strip().splitlines()
    assert lines[0].split()[:3] == ["rank", "item_id", "title"] and len(lines) == 4
    out = cli(ws, "--items", "I001,I002", "-k", "2", "--json")
    assert out.exit_code == 0 and '"item_id"' in out.stdout


@pytest.mark.parametrize("args,needle", [
    (["--user", "nobody"], "unknown user id 'nobody'"),
    (["--items", "I001,XYZ"], "unknown item id 'XYZ'"),
    (["--user", "U0", "-k", "0"], "-k 0"),
    (["--user", "U0", "-k", "{n + 1}"], "-k {n + 1}"),
    (["--user", "U0", "--items", "I001"], "exactly one of"),
    (["--user", "U0", "--model", "missing.pt"], "dvc repro finetune"),
])
def test_cli_bad_input_is_one_line(ws, cli, args, needle):
    n_plus_1 = str(ws["n"] + 1)  # one more than the catalogue holds
    out = cli(ws, *[a.replace("{n + 1}", n_plus_1) for a in args])
    assert out.exit_code == 2
    assert needle.replace("{n + 1}", n_plus_1) in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_cli_embeddings_model_mismatch(ws, cli, tmp_path):
    n = ws["n"]
    other = tmp_path / "emb.parquet"
    write_embeddings(np.arange(1, n, dtype=np.int32), np.zeros((n - 1, 16), np.float32), {}, other)
    out = cli(ws, "--user", "U0", "--embeddings", str(other))
    assert out.exit_code == 2 and "rerun" in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("content,needle", [(b"", "corrupt or truncated"), (b"garbage", "corrupt or truncated"),
                                            ("truncated", "corrupt or truncated"), ("payload", "refused to load")])
def test_cli_unreadable_or_unsafe_model_is_one_line(ws, cli, tmp_path, code_payload, content, needle):
    model = tmp_path / "model.pt"
    if content == "truncated":
        content = ws["model"].read_bytes()[:1000]
    elif content == "payload":
        torch.save({"format": "pad.pad/2", "x": code_payload}, model)
        content = model.read_bytes()
    model.write_bytes(content)
    out = cli(ws, "--user", "U0", "--model", str(model))
    assert out.exit_code == 2 and needle in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not code_payload.marker.exists()


def test_cli_checkpoint_from_other_code_is_one_line(ws, cli, tmp_path):
    ckpt = torch.load(ws["model"], weights_only=True)
    ckpt["state_dict"].popitem()  # a weight this code expects is missing
    torch.save(ckpt, tmp_path / "model.pt")
    out = cli(ws, "--user", "U0", "--model", str(tmp_path / "model.pt"))
    assert out.exit_code == 2 and "do not fit this code" in out.stderr and len(out.stderr.strip().splitlines()) == 1
