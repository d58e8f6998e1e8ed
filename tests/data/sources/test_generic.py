"""generic: interactions + items, CSV or Parquet."""
import polars as pl
import pytest

from pad.data.prepare import prepare
from pad.errors import PadError


def write_generic(folder, fmt="csv", rating=True):
    folder.mkdir(parents=True, exist_ok=True)
    inter = pl.DataFrame({
        "user": ["u1"] * 6 + ["u2"] * 5,
        "item": ["x", "y", "z", "w", "v", "x", "y", "z", "x", "w", "v"],
        # u1's rows out of time order; its "v" at t=6 is rated 2 and dropped
        "timestamp": [5, 1, 2, 3, 6, 4, 10, 11, 12, 13, 14],
        "rating": [5, 5, 4, 4, 2, 5, 5, 5, 5, 5, 5],
    })
    if not rating:
        inter = inter.drop("rating")
    items = pl.DataFrame({"item": ["v", "w", "x", "y", "z", "never"], "title": ["V", "W", "X", "Y", "Z", "N"]})
    if fmt == "csv":
        inter.write_csv(folder / "interactions.csv")
        items.write_csv(folder / "items.csv")
    else:
        inter.write_parquet(folder / "interactions.parquet")
        items.write_parquet(folder / "items.parquet")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_generic_sorts_by_time_filters_ratings_and_drops_unused_items(tmp_path, data_cfg, fmt):
    write_generic(tmp_path, fmt)
    p = prepare(data_cfg(source="generic", path=tmp_path, name="", text_field="title", min_rating=4.0, n_buckets=2))
    ids = p.items.column("item_id").to_pylist()
    assert ids == ["v", "w", "x", "y", "z"]  # items-file order; "never" dropped
    seqs = [[ids[i - 1] for i in s] for s in p.sequences.column("items").to_pylist()]
    assert seqs == [["y", "z", "w", "x", "x"], ["y", "z", "x", "w", "v"]]
    assert p.metrics["dropped_low_rating"] == 1


def test_generic_iso_dates_and_name_prefix(tmp_path, data_cfg):
    inter = pl.DataFrame({"user": ["u"] * 5, "item": list("abcde"),
                          "timestamp": ["2020-01-05", "2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"]})
    inter.write_csv(tmp_path / "shop_interactions.csv")
    pl.DataFrame({"item": list("abcde"), "text": list("ABCDE")}).write_csv(tmp_path / "shop_items.csv")
    p = prepare(data_cfg(source="generic", path=tmp_path, name="shop", text_field="text", n_buckets=2))
    assert p.sequences.column("items").to_pylist() == [[2, 3, 4, 5, 1]]


def _five_rows(tmp_path, timestamps, fmt="csv"):
    """u with items a..e at `timestamps` and an items file; returns the interactions path."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    inter = pl.DataFrame({"user": ["u"] * 5, "item": list("abcde"), "timestamp": timestamps})
    pl.DataFrame({"item": list("abcde"), "title": list("ABCDE")}).write_csv(tmp_path / "items.csv")
    path = tmp_path / f"interactions.{fmt}"
    inter.write_csv(path) if fmt == "csv" else inter.write_parquet(path)
    return path


@pytest.mark.parametrize(
    "fmt, timestamps, where, what",
    [
        ("csv", ["1", "2", "NaN", "4", "5"], "line 4", "'NaN' is not a finite number"),
        ("csv", ["1", "2", None, "4", "5"], "line 4", "is empty"),
        ("csv", ["1", "inf", "3", "4", "5"], "line 3", "'inf' is not a finite number"),
        ("csv", ["2020-01-01", None, "2020-01-03", "2020-01-04", "2020-01-05"], "line 3", "is empty"),
        ("parquet", [1.0, 2.0, float("nan"), 4.0, 5.0], "line 3", "nan is not a finite number"),
        ("parquet", [1, 2, 3, None, 5], "line 4", "is empty"),
    ],
)
def test_generic_rejects_a_missing_or_nan_timestamp_naming_the_line(tmp_path, data_cfg, fmt, timestamps, where, what):
    """A NaN timestamp used to sort last and silently become the user's test target."""
    path = _five_rows(tmp_path, timestamps, fmt)
    with pytest.raises(PadError) as err:
        prepare(data_cfg(source="generic", path=tmp_path, name="", text_field="title"))
    message = str(err.value)
    assert message.startswith(f"{path}: {where}, column 'timestamp'") and what in message and "\n" not in message


def test_generic_drops_and_counts_exact_duplicate_rows(tmp_path, data_cfg):
    write_generic(tmp_path, rating=True)
    clean = prepare(data_cfg(source="generic", path=tmp_path, name="", text_field="title", min_rating=4.0, n_buckets=2))
    inter = pl.read_csv(tmp_path / "interactions.csv", infer_schema=False)  # ratings as written: "5"
    repeated = pl.concat([inter, inter[[0]],
                          inter[[3, 3]].with_columns(rating=pl.col("rating") + ".0"),  # "5.0" repeats "5"
                          inter[[1]].with_columns(rating=pl.lit("1")),  # same time, other rating: a row of its own
                          ])
    repeated.write_csv(tmp_path / "interactions.csv")
    p = prepare(data_cfg(source="generic", path=tmp_path, name="", text_field="title", min_rating=4.0, n_buckets=2))
    assert p.metrics["dropped_duplicate_interactions"] == 3
    assert p.metrics["dropped_low_rating"] == 2  # the original 2 and the re-rated 1
    assert p.sequences.equals(clean.sequences) and p.items.equals(clean.items)
    assert clean.metrics["dropped_duplicate_interactions"] == 0


def test_generic_missing_column_lists_only_the_files_columns(tmp_path, data_cfg):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "interactions.csv").write_text("user,item,time\nu,a,1\n")
    (tmp_path / "items.csv").write_text("item,title\na,A\n")
    with pytest.raises(PadError) as err:
        prepare(data_cfg(source="generic", path=tmp_path, name="", text_field="title"))
    assert str(err.value).endswith("missing column(s) 'timestamp' (found 'user', 'item', 'time'); "
                                   "fix the header or the data.* params")


def test_generic_file_with_its_own_line_column(tmp_path, data_cfg):
    _five_rows(tmp_path, [5, 1, 2, 3, 4])
    inter = pl.read_csv(tmp_path / "interactions.csv").with_columns(line=pl.lit("shop A"))
    inter.write_csv(tmp_path / "interactions.csv")
    p = prepare(data_cfg(source="generic", path=tmp_path, name="", text_field="title", n_buckets=2))
    assert p.sequences.column("items").to_pylist() == [[2, 3, 4, 5, 1]]


def test_generic_csv_and_parquet_of_one_name_says_how_to_choose(tmp_path, data_cfg):
    write_generic(tmp_path, "csv")
    write_generic(tmp_path, "parquet")
    with pytest.raises(PadError) as err:
        prepare(data_cfg(source="generic", path=tmp_path, name="", text_field="title", n_buckets=2))
    message = str(err.value)
    assert "interactions.csv, interactions.parquet" in message and "move or delete all but the one to use" in message
    assert "data.name" not in message  # data.name picks a prefix, not a format
