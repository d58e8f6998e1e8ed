"""New items (text, no interactions, no ID row) served by the text-based experts: pad/serve/new_items.py."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from pad.serve import new_item_vectors


def test_new_item_with_text_only(minilm_ws, load, tmp_path):
    ws, n = minilm_ws, minilm_ws["n"]
    history = ws["seqs"][1].tolist()
    top = int(load(ws).top_k(history, 1)[0][0])
    titles = pl.read_parquet(ws["items"])["text"].to_list()
    new = tmp_path / "new.csv"
    pl.DataFrame({"item_id": ["NEW1", "NEW2"], "text": [titles[top - 1], "garden hose"]}).write_csv(new)
    rec = load(ws, new_items=new)
    assert rec.n_items == n + 2 and rec.catalogue.buckets[-1] == 3
    rows = rec.recommend(history, 2)
    assert {r["item_id"] for r in rows} == {f"I{top:03d}", "NEW1"} and any(r["new"] for r in rows)
    # the rule: ID parts are zero vectors, text via the embed stage's encoder (same vector as the catalogue's)
    text = torch.from_numpy(np.stack(pl.read_parquet(ws["embeddings"])["embedding"].to_numpy())[top - 1:top])
    torch.testing.assert_close(rec.tables[2][n + 1], new_item_vectors(rec.model.experts["llm"].items, text)[0],
                               atol=1e-4, rtol=1e-4)
    assert torch.all(rec.tables[0][n + 1:] == 0)


def test_new_items_blank_text_gets_the_empty_text_zero_vector(minilm_ws, load, tmp_path):
    """Blank (or missing) text: the embed stage's rule, a zero text vector, beside texts that are encoded."""
    ws, n = minilm_ws, minilm_ws["n"]
    new = tmp_path / "new.csv"
    new.write_text('item_id,text\nNEW1,garden hose\nNEW2,"   "\nNEW3,\n')
    rec = load(ws, new_items=new)
    zero = torch.zeros(1, 384)
    for e, name in enumerate(rec.model.names):
        want = new_item_vectors(rec.model.experts[name].items, zero)[0]
        torch.testing.assert_close(rec.tables[e][n + 2], want)
        torch.testing.assert_close(rec.tables[e][n + 3], want)
    assert not torch.equal(rec.tables[2][n + 1], rec.tables[2][n + 2])  # the real text was encoded
    assert rec.catalogue.titles[n + 1:] == ["garden hose", "", ""]


def test_new_items_all_blank_need_no_encoder(ws, load, cli, tmp_path):
    """`ws`'s embeddings name no encoder: only blank texts can be served, and they are (zero text vectors)."""
    n = ws["n"]
    new = tmp_path / "new.parquet"
    pl.DataFrame({"item_id": ["NEW1", "NEW2"], "text": [None, ""]}).write_parquet(new)
    rec = load(ws, new_items=new)
    assert rec.n_items == n + 2
    want = new_item_vectors(rec.model.experts["llm"].items, torch.zeros(1, 16))[0]
    torch.testing.assert_close(rec.tables[2][n + 1], want)
    out = cli(ws, "--items", "I001,NEW1", "-k", "3", "--new-items", str(new))
    assert out.exit_code == 0, out.output


@pytest.mark.parametrize("content,needle", [
    ("item_id,text\nNEW1,tea\n,milk\n", "new.csv: line 3: item_id is empty"),
    ("item_id,text\nNEW1,tea\n  ,milk\n", "new.csv: line 3: item_id is empty"),
    ("item_id,text\nNEW1,tea\nNEW2,milk\nNEW1,rice\n", "new.csv: item_id 'NEW1' is on line 2 and line 4; keep one row"),
    ("item_id,text\nNEW1,tea\nI003,milk\n", "new.csv: line 3: item_id 'I003' is already a catalogue item (1 such rows)"),
    ("id,text\nNEW1,tea\n", "needs columns item_id and text"),
    ('item_id,text\nNEW1,"tea\n', "new.csv: cannot read it as CSV"),
])
def test_cli_bad_new_items_is_one_line(ws, cli, tmp_path, content, needle):
    """Checked before any encoder loads (`ws` names none); a null id used to become the id 'None'."""
    new = tmp_path / "new.csv"
    new.write_text(content)
    out = cli(ws, "--user", "U0", "--new-items", str(new))
    assert out.exit_code == 2, out.output
    assert needle in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_bad_new_items_parquet_names_the_row(ws, cli, tmp_path):
    new = tmp_path / "new.parquet"
    pl.DataFrame({"item_id": [7, None], "text": ["tea", "milk"]}).write_parquet(new)
    out = cli(ws, "--user", "U0", "--new-items", str(new))
    assert out.exit_code == 2 and "new.parquet: row 2: item_id is empty" in out.stderr
