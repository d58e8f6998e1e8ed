"""Common preprocessing: filtering, truncation, split, numbering, schemas, atomic outputs."""
import json

import polars as pl
import pyarrow.parquet as pq
import pytest

from pad.data.buckets import read_n_buckets, write_items
from pad.data.prepare import ITEMS_SCHEMA, SEQUENCES_SCHEMA, preprocess, write_prepared
from pad.data.sources.common import RawData
from pad.errors import PadError
from pad.train.data import read_item_buckets


def raw(seqs: dict[str, list[str]], items=None, keep_unused=False):
    rows = [(u, i, t) for u, s in seqs.items() for t, i in enumerate(s)]
    inter = pl.DataFrame(rows, schema=["user", "item", "order"], orient="row")
    items = items or sorted({i for s in seqs.values() for i in s})
    catalogue = pl.DataFrame({"item": items, "text": [f"<b>{i}</b>  &quot;x&quot;" for i in items]})
    return RawData(inter, catalogue, keep_unused_items=keep_unused)


def test_split_truncation_and_short_users(data_cfg):
    long = [f"i{k:02d}" for k in range(30)]
    p = preprocess(raw({"short": ["i00", "i01", "i02", "i03"], "long": long}), data_cfg(max_items=23))
    assert p.metrics["users"] == 1 and p.metrics["dropped_short_users"] == 1
    (seq,) = p.sequences.column("items").to_pylist()
    ids = p.items.column("item_id").to_pylist()
    assert [ids[i - 1] for i in seq] == long[-23:]  # latest 23, oldest first
    train, valid_target, test_target = seq[:-2], seq[-2], seq[-1]
    assert ids[test_target - 1] == "i29" and ids[valid_target - 1] == "i28"
    freq = dict(zip(p.items.column("item_idx").to_pylist(), p.items.column("train_freq").to_pylist()))
    assert freq[test_target] == 0 and freq[valid_target] == 0  # only seq[:-2] counts
    assert all(freq[i] == 1 for i in train)
    assert p.metrics["truncated_interactions"] == 7 and p.metrics["interactions"] == 23


def test_time_order_ties_keep_file_order_and_users_numbered_by_first_interaction(data_cfg):
    inter = pl.DataFrame({"user": ["b", "a", "a", "a", "a", "a", "b", "b", "b", "b"],
                          "item": ["x", "p", "q", "r", "s", "t", "y", "z", "w", "v"],
                          "order": [9, 5, 1, 1, 0, 7, 10, 11, 12, 13]})
    items = pl.DataFrame({"item": list("pqrstvwxyz"), "text": list("pqrstvwxyz")})
    p = preprocess(RawData(inter, items, keep_unused_items=False), data_cfg())
    assert p.sequences.column("user_id").to_pylist() == ["a", "b"]
    ids = p.items.column("item_id").to_pylist()
    assert [ids[i - 1] for i in p.sequences.column("items")[0].as_py()] == ["s", "q", "r", "p", "t"]


def test_schemas_text_cleaning_repeats_and_unused_items(data_cfg):
    seqs = {"u1": ["a", "b", "c", "a", "a"], "u2": ["c", "b", "a", "d", "b"]}
    p = preprocess(raw(seqs, items=["a", "b", "c", "d", "e"], keep_unused=True), data_cfg(n_buckets=5))
    assert p.items.schema.equals(ITEMS_SCHEMA) and p.sequences.schema.equals(SEQUENCES_SCHEMA)
    assert p.items.column("text")[0].as_py() == '<b>a</b> "x"'  # entities unescaped, spaces collapsed
    assert p.metrics["repeat_targets"] == {"valid": 1, "test": 2}
    assert p.metrics["unused_items"] == 1 and p.metrics["items"] == 5
    dropped = preprocess(raw(seqs, items=["a", "b", "c", "d", "e"]), data_cfg(n_buckets=4))
    assert dropped.items.column("item_id").to_pylist() == ["a", "b", "c", "d"]
    assert p.items.column("bucket")[4].as_py() == 5  # unused item "e": coldest bucket
    assert sum(p.metrics["bucket_sizes"]) == 5 and len(p.metrics["bucket_cuts"]) == 4


def test_write_is_all_or_nothing(tmp_path, data_cfg):
    p = preprocess(raw({"u": list("abcde")}), data_cfg(n_buckets=5))
    paths = [tmp_path / "items.parquet", tmp_path / "seq.parquet", tmp_path / "m" / "prepare.json"]
    write_prepared(p, *paths)
    assert pq.read_schema(paths[0]).equals(ITEMS_SCHEMA, check_metadata=False)
    assert json.loads(paths[2].read_text())["users"] == 1
    before = [path.read_bytes() for path in paths]
    broken = type(p)(p.items, p.sequences, {"not json": object()})
    with pytest.raises(TypeError):
        write_prepared(broken, *paths)
    assert [path.read_bytes() for path in paths] == before
    assert sorted(f.name for f in tmp_path.rglob("*")) == ["items.parquet", "m", "prepare.json", "seq.parquet"]


def test_more_buckets_than_items_is_an_error_naming_the_key(data_cfg):
    seqs = {"u1": ["a", "b", "c", "d", "e"], "u2": ["c", "b", "a", "d", "b"]}
    preprocess(raw(seqs, items=list("abcdef"), keep_unused=True), data_cfg(n_buckets=6))  # one per item is fine
    with pytest.raises(PadError) as err:
        preprocess(raw(seqs, items=list("abcdef"), keep_unused=True), data_cfg(n_buckets=7))
    assert str(err.value) == ("params.yaml: 'data.n_buckets' is 7; must be <= the number of items after "
                              "preparation (6)")
    with pytest.raises(PadError, match=r"'data.n_buckets' is 6; .* \(5\)"):  # the unused item f is dropped first
        preprocess(raw(seqs, items=list("abcdef")), data_cfg(n_buckets=6))


def test_no_user_left_after_filtering_is_an_error_naming_the_key(data_cfg):
    with pytest.raises(PadError) as err:
        preprocess(raw({"u1": list("abcd"), "u2": list("ab")}), data_cfg(source="generic"))
    assert str(err.value) == ("params.yaml: no user is left: none of the 2 users read has >= 5 interactions "
                              "('data.min_interactions'); check the data or lower 'data.min_interactions'")
    with pytest.raises(PadError, match="raise 'data.synthetic.min_len' or 'data.synthetic.users'$"):
        preprocess(raw({"u1": list("abcd")}), data_cfg(source="synthetic"))
def test_n_buckets_travels_with_the_items_even_when_buckets_are_empty(tmp_path, data_cfg):
    """Training part a=5, b=2, c=d=e=1 over 5 buckets: a alone holds half the mass, so bucket 2 is
    empty; readers get B = 5 from the file's metadata (the coldest bucket is never empty when B <= items,
    which prepare requires)."""
    cfg = data_cfg(min_interactions=5, max_items=7, n_buckets=5)
    p = preprocess(raw({"u": list("aabcdea"), "v": list("aaeabcd")}), cfg)
    buckets = p.items.column("bucket").to_pylist()
    assert buckets == [1, 3, 4, 5, 5]
    paths = [tmp_path / "items.parquet", tmp_path / "seq.parquet", tmp_path / "prepare.json"]
    write_prepared(p, *paths)
    assert read_n_buckets(paths[0]) == 5
    read, n_buckets = read_item_buckets(paths[0])
    assert read.tolist() == [0] + buckets and n_buckets == 5
    assert json.loads(paths[2].read_text())["bucket_sizes"] == [1, 0, 1, 1, 2]


def test_items_without_n_buckets_or_with_buckets_beyond_it_are_refused(tmp_path):
    items = pl.DataFrame({"item_idx": [1, 2, 3], "bucket": [1, 2, 3]})
    items.write_parquet(tmp_path / "old.parquet")  # written before B was stored
    with pytest.raises(PadError, match=r"old\.parquet: no 'n_buckets'.*dvc repro prepare"):
        read_item_buckets(tmp_path / "old.parquet")
    write_items(items, tmp_path / "bad.parquet", n_buckets=2)
    with pytest.raises(PadError, match=r"buckets must lie in 1\.\.2"):
        read_item_buckets(tmp_path / "bad.parquet")
    write_items(items, tmp_path / "ok.parquet", n_buckets=4)
    assert read_item_buckets(tmp_path / "ok.parquet")[1] == 4


def test_sample_users_keeps_a_seeded_sample_in_order_after_the_filters(data_cfg):
    seqs = {f"u{u:02d}": [f"i{(u + k) % 12:02d}" for k in range(5 + u % 3)] for u in range(20)}
    seqs["short"] = ["i0", "i1"]
    full = preprocess(raw(seqs), data_cfg())
    a = preprocess(raw(seqs), data_cfg(sample_users=7, sample_seed=1))
    assert a.metrics["users"] == 7 and a.metrics["dropped_short_users"] == 1 and a.metrics["sampled_out_users"] == 13
    users = a.sequences.column("user_id").to_pylist()
    assert users == sorted(users) and set(users) < set(full.sequences.column("user_id").to_pylist())
    assert preprocess(raw(seqs), data_cfg(sample_users=7, sample_seed=1)).sequences.equals(a.sequences)
    assert preprocess(raw(seqs), data_cfg(sample_users=7, sample_seed=2)).sequences.column("user_id").to_pylist() != users
    assert preprocess(raw(seqs), data_cfg(sample_users=50)).sequences.equals(full.sequences)  # more than there are: all
