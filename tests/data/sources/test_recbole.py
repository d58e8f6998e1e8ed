"""recbole: `<name>.inter` + `<name>.item`, typed headers."""
import pytest

from pad.data.prepare import prepare
from pad.errors import PadError


def write_recbole(folder, name="ml", timestamp=True):
    folder.mkdir(parents=True, exist_ok=True)
    header = "user_id:token\titem_id:token\trating:float" + ("\ttimestamp:float" if timestamp else "")
    rows = [("1", "10", 5, 30), ("1", "20", 4, 10), ("1", "30", 5, 20), ("1", "40", 1, 5),
            ("1", "50", 5, 40), ("1", "60", 5, 50)]
    lines = ["\t".join(map(str, r if timestamp else r[:3])) for r in rows]
    (folder / f"{name}.inter").write_text(header + "\n" + "\n".join(lines) + "\n")
    items = ["10\tTen \"quoted\"\tx", "20\tTwenty\tx", "30\tThirty\tx", "40\tForty\tx", "50\tFifty\tx",
             "60\tSixty\tx", "70\tSeventy\tx"]
    (folder / f"{name}.item").write_text("item_id:token\ttitle:token_seq\tgenre:token\n" + "\n".join(items) + "\n")


def test_recbole_typed_headers_time_order_rating_filter(tmp_path, data_cfg):
    write_recbole(tmp_path)
    p = prepare(data_cfg(source="recbole", path=tmp_path, name="", text_field="title:token_seq", n_buckets=2))
    ids = p.items.column("item_id").to_pylist()
    assert ids == ["10", "20", "30", "50", "60"]  # 40 rated 1 and 70 never seen: dropped
    assert [ids[i - 1] for i in p.sequences.column("items")[0].as_py()] == ["20", "30", "10", "50", "60"]
    assert p.items.column("text")[0].as_py() == 'Ten "quoted"'


def test_recbole_without_timestamp_uses_file_order(tmp_path, data_cfg):
    write_recbole(tmp_path, timestamp=False)
    p = prepare(data_cfg(source="recbole", path=tmp_path, name="ml", text_field="title", n_buckets=2))
    ids = p.items.column("item_id").to_pylist()
    assert [ids[i - 1] for i in p.sequences.column("items")[0].as_py()] == ["10", "20", "30", "50", "60"]


def test_recbole_nan_timestamp_is_an_error_naming_the_line(tmp_path, data_cfg):
    write_recbole(tmp_path)
    path = tmp_path / "ml.inter"
    path.write_text(path.read_text().replace("1\t30\t5\t20", "1\t30\t5\tnan"))
    with pytest.raises(PadError, match=r"ml.inter: line 4, column 'timestamp': 'nan' is not a finite number"):
        prepare(data_cfg(source="recbole", path=tmp_path, name="", text_field="title", n_buckets=2))


def test_recbole_drops_and_counts_exact_duplicate_rows(tmp_path, data_cfg):
    write_recbole(tmp_path)
    clean = prepare(data_cfg(source="recbole", path=tmp_path, name="", text_field="title", n_buckets=2))
    path = tmp_path / "ml.inter"
    path.write_text(path.read_text() + "1\t10\t5.0\t30\n1\t50\t5\t40\n")
    p = prepare(data_cfg(source="recbole", path=tmp_path, name="", text_field="title", n_buckets=2))
    assert p.metrics["dropped_duplicate_interactions"] == 2 and clean.metrics["dropped_duplicate_interactions"] == 0
    assert p.sequences.equals(clean.sequences)
