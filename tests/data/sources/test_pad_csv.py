"""pad_csv: the PAD authors' history + metadata CSVs."""
from pad.data.prepare import prepare


def write_pad_csv(folder, histories, meta, name="Toy"):
    folder.mkdir(parents=True, exist_ok=True)
    rows = [f'{i},{user},"{hist}"' for i, (user, hist) in enumerate(histories)]
    (folder / f"{name}_cleaned_history.csv").write_text(",user,history\n" + "\n".join(rows) + "\n")
    (folder / f"metadata_{name}.csv").write_text("asin,title\n" + "\n".join(f'{a},"{t}"' for a, t in meta) + "\n")


META = [("A", "Apple &amp; Pear"), ("B", "Bread"), ("C", ""), ("D", "Dates"), ("E", "unused  item")]


def test_reads_histories_in_order_and_keeps_every_metadata_item(tmp_path, data_cfg):
    write_pad_csv(tmp_path, [("u1", "['A', 'B', 'C', 'D', 'A']"), ("u2", "['D', 'C', 'B', 'A', 'B']")], META)
    p = prepare(data_cfg(source="pad_csv", path=tmp_path, name="", n_buckets=2))
    assert p.items.column("item_id").to_pylist() == ["A", "B", "C", "D", "E"]  # metadata order, idx = row + 1
    assert p.items.column("text").to_pylist() == ["Apple & Pear", "Bread", "", "Dates", "unused item"]
    assert p.sequences.column("items").to_pylist() == [[1, 2, 3, 4, 1], [4, 3, 2, 1, 2]]
    assert p.sequences.column("user_id").to_pylist() == ["u1", "u2"]
    assert p.metrics["empty_texts"] == 1 and p.metrics["unused_items"] == 1
    assert p.metrics["repeat_targets"] == {"valid": 0, "test": 2}


def test_name_picks_the_file_stem(tmp_path, data_cfg):
    write_pad_csv(tmp_path, [("u1", "['A', 'B', 'C', 'D', 'A']")], META, name="One")
    write_pad_csv(tmp_path, [("u9", "['A', 'B', 'C', 'D', 'E']")], META, name="Two")
    p = prepare(data_cfg(source="pad_csv", path=tmp_path, name="Two", n_buckets=2))
    assert p.sequences.column("user_id").to_pylist() == ["u9"]
