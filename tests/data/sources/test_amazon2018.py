"""amazon2018: ratings CSV or reviews JSON lines + meta JSON lines (gzipped)."""
import gzip
import json

import pytest

from pad.data.prepare import prepare
from pad.errors import PadError

# (item, user, rating, time); u1's B5 is rated 3 (dropped), Z has no meta row (dropped), one exact duplicate
RATINGS = [("B1", "u1", 5, 100), ("B2", "u1", 4, 50), ("B3", "u1", 5, 70), ("B5", "u1", 3, 60),
           ("Z9", "u1", 5, 80), ("B4", "u1", 5, 90), ("B1", "u1", 5, 100), ("B5", "u1", 5, 200),
           ("B1", "u2", 5, 1), ("B2", "u2", 5, 2), ("B3", "u2", 5, 3), ("B4", "u2", 5, 4)]
META = [{"asin": "B1", "title": "One &amp; only", "price": "$1"}, {"asin": "B2", "title": "Two"},
        {"asin": "B3", "title": "Three", "similar_item": [1, 2]}, {"asin": "B4"},
        {"asin": "B5", "title": "Five"}, {"asin": "B1", "title": "dup"}]


def write_amazon(folder, kind="csv", name="Toy_Category"):
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / f"meta_{name}.json.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(m) for m in META) + "\n")
    if kind == "csv":
        (folder / f"{name}.csv").write_text("\n".join(",".join(map(str, r)) for r in RATINGS) + "\n")
    else:
        reviews = [{"asin": i, "reviewerID": u, "overall": float(r), "unixReviewTime": t,
                    "style": {"Size:": "big"}, "reviewText": "ok"} for i, u, r, t in RATINGS]
        with gzip.open(folder / f"{name}.json.gz", "wt") as fh:
            fh.write("\n".join(json.dumps(r) for r in reviews) + "\n")


@pytest.mark.parametrize("kind", ["csv", "json"])
def test_amazon_keeps_good_ratings_with_meta_sorted_by_time(tmp_path, data_cfg, kind):
    write_amazon(tmp_path, kind)
    p = prepare(data_cfg(source="amazon2018", path=tmp_path, name="", min_rating=4.0, min_interactions=4, n_buckets=2))
    ids = p.items.column("item_id").to_pylist()
    assert ids == ["B1", "B2", "B3", "B4", "B5"]
    seqs = [[ids[i - 1] for i in s] for s in p.sequences.column("items").to_pylist()]
    assert seqs == [["B1", "B2", "B3", "B4"], ["B2", "B3", "B4", "B1", "B5"]]  # u2 first: earliest interaction
    assert p.items.column("text").to_pylist()[:4] == ["One & only", "Two", "Three", ""]
    m = p.metrics
    assert (m["dropped_low_rating"], m["dropped_no_metadata"], m["dropped_duplicate_interactions"],
            m["duplicate_meta_rows"], m["empty_texts"]) == (1, 1, 1, 1, 1)


@pytest.mark.parametrize("field, value, what", [("unixReviewTime", None, "is empty"),
                                                ("overall", float("nan"), "nan is not a finite number")])
def test_amazon_review_without_time_or_with_nan_rating_names_its_line(tmp_path, data_cfg, field, value, what):
    """A null time used to sort first; a NaN rating passed the `>= min_rating` filter."""
    write_amazon(tmp_path, "json")
    path = tmp_path / "Toy_Category.json.gz"
    with gzip.open(path, "rt") as fh:
        reviews = [json.loads(line) for line in fh]
    reviews[2][field] = value
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(json.dumps(r) for r in reviews) + "\n")  # json writes NaN as the literal NaN
    column = {"unixReviewTime": "timestamp", "overall": "rating"}[field]
    with pytest.raises(PadError, match=rf"Toy_Category.json.gz: line 3, column '{column}': {what}"):
        prepare(data_cfg(source="amazon2018", path=tmp_path, name="", min_rating=4.0, min_interactions=4))
