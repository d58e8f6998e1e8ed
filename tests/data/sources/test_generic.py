"""generic: interactions + items, CSV or Parquet."""
import polars as pl
import pytest

from pad.data.prepare import prepare


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
