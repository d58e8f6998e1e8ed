"""The per-user Parquet: written atomically with its metadata, read back, bad files refused in one line."""
import numpy as np
import polars as pl
import pytest
import torch

from pad.errors import PadError
from pad.evaluation.per_user import item_group_names, read_per_user, read_user_idx, user_rows, write_per_user
from pad.evaluation.ranking import RankingSplit
from pad.evaluation.users import history_groups


def rows():
    seqs = [np.array([1, 2, 3]), np.array([2, 3, 4, 1]), np.array([4, 1, 2, 3, 4])]
    split = RankingSplit(inputs=torch.zeros(3, 2, dtype=torch.long), targets=torch.tensor([3, 1, 4]),
                         history=torch.tensor([[1, 2, 0, 0], [2, 3, 4, 0], [4, 1, 2, 3]]))
    buckets = torch.tensor([0, 1, 2, 3, 4])
    ranks = torch.tensor([1.0, 12.0, float("inf")])  # the third user's target is a repeat
    groups = history_groups(seqs)
    return user_rows("test", "pad", np.array([7, 8, 9]), split, ranks, buckets, 10, 4, groups), groups


def test_rows_hold_rank_metrics_and_groups():
    df, _ = rows()
    assert df["user_idx"].to_list() == [7, 8, 9] and df["target"].to_list() == [3, 1, 4]
    assert df["hr_10"].to_list() == [1.0, 0.0, 0.0] and df["ndcg_10"].to_list() == [1.0, 0.0, 0.0]
    assert df["item_group"].to_list() == ["median", "warm", "cold"] and df["repeat"].to_list() == [False, False, True]
    assert df["history_len"].to_list() == [1, 2, 3] and df["user_group"].to_list() == ["short", "medium", "long"]
    assert item_group_names(10).tolist()[1:] == ["warm"] * 3 + ["median"] * 4 + ["cold"] * 3


def test_write_read_roundtrip(tmp_path):
    df, groups = rows()
    path = tmp_path / "metrics" / "per_user.parquet"
    write_per_user([df, df.with_columns(model=pl.lit("sasrec"))], path, 10, 4, groups)
    back, info = read_per_user(path)
    assert back.height == 6 and back["model"].to_list() == ["pad"] * 3 + ["sasrec"] * 3
    assert back.schema["user_idx"] == pl.Int32 and back["rank"].is_infinite().to_list() == [False, False, True] * 2
    assert info["k"] == 10 and info["n_buckets"] == 4 and info["user_groups"]["short"]["max_len"] == 1
    first = path.read_bytes()
    write_per_user([df, df.with_columns(model=pl.lit("sasrec"))], path, 10, 4, groups)
    assert path.read_bytes() == first and not list(path.parent.glob("*.tmp"))  # byte-deterministic, atomic


def test_bad_files_are_one_line(tmp_path):
    with pytest.raises(PadError, match="no per-user scores"):
        read_per_user(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(PadError, match="unreadable"):
        read_per_user(tmp_path / "junk.parquet")
    pl.DataFrame({"a": [1]}).write_parquet(tmp_path / "other.parquet")
    with pytest.raises(PadError, match="not a per-user scores file"):
        read_per_user(tmp_path / "other.parquet")
    pl.DataFrame({"user_idx": [2, 1], "items": [[1, 2, 3], [1, 2, 3]]}).write_parquet(tmp_path / "seq.parquet")
    assert read_user_idx(tmp_path / "seq.parquet", 2).tolist() == [2, 1]  # file order, as the sequences are read
    with pytest.raises(PadError, match="2 user_idx values for 3"):
        read_user_idx(tmp_path / "seq.parquet", 3)
