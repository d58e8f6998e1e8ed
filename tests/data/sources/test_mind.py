"""mind: behaviors.tsv (history + impressions) + news.tsv."""
from pad.data.prepare import prepare

BEHAVIORS = [
    "2\tU1\t11/15/2019 9:00:00 AM\tN1 N2\tN5-0 N3-1 N4-1",
    "1\tU1\t11/15/2019 8:00:00 AM\tN1 N2\tN6-1 N5-0",
    "3\tU2\t11/14/2019 1:00:00 PM\t\tN1-1 N2-1 N3-1 N4-1 N5-1",
    "4\tU3\t11/14/2019 1:00:00 PM\tN1\tN2-1",
]
NEWS = [f"N{i}\tnews\tsub\tTitle \"{i}\"\tabstract\thttp://x\t[]\t[]" for i in range(1, 8)]


def write_mind(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "behaviors.tsv").write_text("\n".join(BEHAVIORS) + "\n")
    (folder / "news.tsv").write_text("\n".join(NEWS) + "\n")


def test_mind_history_then_clicks_in_time_order(tmp_path, data_cfg):
    write_mind(tmp_path / "MINDsmall_train")
    p = prepare(data_cfg(source="mind", path=tmp_path, name="", n_buckets=2))  # finds the one sub-folder
    ids = p.items.column("item_id").to_pylist()
    assert ids == ["N1", "N2", "N3", "N4", "N5", "N6"]  # N7 never clicked: dropped
    seqs = {u: [ids[i - 1] for i in s] for u, s in zip(p.sequences.column("user_id").to_pylist(),
                                                       p.sequences.column("items").to_pylist())}
    assert seqs == {"U2": ["N1", "N2", "N3", "N4", "N5"], "U1": ["N1", "N2", "N6", "N3", "N4"]}  # U3 too short
    assert p.items.column("text")[0].as_py() == 'Title "1"'
    assert p.metrics["impressions"] == 4 and p.metrics["dropped_short_users"] == 1


def test_mind_name_is_the_folder(tmp_path, data_cfg):
    write_mind(tmp_path / "a")
    write_mind(tmp_path / "b")
    p = prepare(data_cfg(source="mind", path=tmp_path, name="b", n_buckets=2))
    assert p.metrics["users"] == 2
