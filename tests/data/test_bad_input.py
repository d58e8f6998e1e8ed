"""Bad raw input: one readable PadError naming the file and row/column, non-zero exit, nothing written."""
import gzip
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pad.data.prepare import prepare
from pad.errors import PadError

REPO = Path(__file__).resolve().parents[2]
HEADER = ",user,history\n"
GOOD_HISTORY = HEADER + "0,u1,\"['A', 'B', 'C', 'D', 'E']\"\n1,u2,\"['E', 'D', 'C', 'B', 'A']\"\n"
GOOD_META = "asin,title\nA,a\nB,b\nC,c\nD,d\nE,e\n"


def pad_csv(folder: Path, history: str | bytes = GOOD_HISTORY, meta: str | bytes = GOOD_META) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in (("T_cleaned_history.csv", history), ("metadata_T.csv", meta)):
        if content is not None:
            data = content.encode() if isinstance(content, str) else content
            (folder / name).write_bytes(data)
    return folder


# (case, history, meta, file named in the message, other words the message must contain)
CASES = [
    ("missing metadata", GOOD_HISTORY, None, "metadata_T.csv", ["not found"]),
    ("wrong columns", "idx,user,items\n0,u1,\"['A']\"\n", GOOD_META, "T_cleaned_history.csv",
     ["missing column", "'history'"]),
    ("empty history file", "", GOOD_META, "T_cleaned_history.csv", ["empty"]),
    ("header only", HEADER, GOOD_META, "T_cleaned_history.csv", ["no rows"]),
    ("unparsable literal", HEADER + "0,u1,\"['A', 'B'\"\n", GOOD_META, "T_cleaned_history.csv",
     ["line 2", "history"]),
    ("code instead of a literal", HEADER + "0,u1,\"__import__('os').getcwd()\"\n", GOOD_META,
     "T_cleaned_history.csv", ["line 2", "not a non-empty list"]),
    ("item without text (not in metadata)", GOOD_HISTORY.replace("'E']", "'Q']"), GOOD_META,
     "T_cleaned_history.csv", ["line 2", "'u1'", "'Q'", "metadata_T.csv"]),
    ("duplicate item ids", GOOD_HISTORY, GOOD_META + "B,again\n", "metadata_T.csv",
     ["'B'", "lines 3, 7", "one row per item"]),
    ("duplicate user rows", GOOD_HISTORY + "2,u1,\"['A', 'B', 'C', 'D', 'E']\"\n", GOOD_META,
     "T_cleaned_history.csv", ["'u1'", "lines 2, 4"]),
    ("non-UTF-8 bytes", GOOD_META, b"asin,title\nA,a\nB,caf\xe9\nC,c\nD,d\nE,e\n", "metadata_T.csv",
     ["UTF-8", "line 3", "byte 6"]),
]


@pytest.mark.parametrize("case,history,meta,file,words", CASES, ids=[c[0] for c in CASES])
def test_pad_csv_bad_input(tmp_path, data_cfg, case, history, meta, file, words):
    if case == "non-UTF-8 bytes":
        history = GOOD_HISTORY
    folder = pad_csv(tmp_path / "raw", history, meta)
    with pytest.raises(PadError) as err:
        prepare(data_cfg(source="pad_csv", path=folder, name="T"))
    message = str(err.value)
    assert file in message and "\n" not in message
    for word in words:
        assert word in message


def test_missing_folder_and_ambiguous_name(tmp_path, data_cfg):
    with pytest.raises(PadError, match="data folder not found"):
        prepare(data_cfg(source="pad_csv", path=tmp_path / "nope", name=""))
    pad_csv(tmp_path)
    shutil.copy(tmp_path / "T_cleaned_history.csv", tmp_path / "U_cleaned_history.csv")
    with pytest.raises(PadError, match="several .* set data.name"):
        prepare(data_cfg(source="pad_csv", path=tmp_path, name=""))


def test_generic_bad_timestamp_and_unknown_item(tmp_path, data_cfg):
    rows = "user,item,timestamp\n" + "".join(f"u,i{k},{k}\n" for k in range(5))
    (tmp_path / "items.csv").write_text("item,title\n" + "".join(f"i{k},t\n" for k in range(5)))
    (tmp_path / "interactions.csv").write_text(rows.replace("u,i3,3", "u,i3,soon"))
    with pytest.raises(PadError, match=r"interactions.csv: line 5, column 'timestamp': 'soon'"):
        prepare(data_cfg(source="generic", path=tmp_path, name=""))
    (tmp_path / "interactions.csv").write_text(rows + "v,i9,1\n")
    with pytest.raises(PadError, match=r"interactions.csv: line 7, user 'v' has item 'i9' that is not in items.csv"):
        prepare(data_cfg(source="generic", path=tmp_path, name=""))


def test_amazon_bad_json_line(tmp_path, data_cfg):
    with gzip.open(tmp_path / "meta_X.json.gz", "wt") as fh:
        fh.write('{"asin": "A", "title": "a"}\n{"asin": "B", "title": \n')
    (tmp_path / "X.csv").write_text("A,u,5,1\n")
    with pytest.raises(PadError, match=r"meta_X.json.gz: line 2 is not JSON"):
        prepare(data_cfg(source="amazon2018", path=tmp_path, name=""))


def test_stage_exits_non_zero_with_one_line_and_keeps_old_outputs(tmp_path):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(source="pad_csv", path=str(pad_csv(tmp_path / "raw", meta=GOOD_META + "B,x\n")), name="")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    old = tmp_path / params["paths"]["items"]
    old.parent.mkdir(parents=True)
    old.write_bytes(b"previous run")
    run = subprocess.run([sys.executable, str(REPO / "stages/prepare.py")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and run.stderr.count("\n") == 1
    assert "metadata_T.csv" in run.stderr and "'B'" in run.stderr
    assert old.read_bytes() == b"previous run"
    assert not (tmp_path / params["paths"]["sequences"]).exists()
    assert not list(tmp_path.rglob("*.tmp")) and not (tmp_path / params["paths"]["metrics"]).exists()


@pytest.mark.parametrize("edit, words", [
    (lambda d: (d["synthetic"].update(items=12, topics=4), d.update(n_buckets=20)),
     ["'data.n_buckets' is 20", "(12)"]),
    (lambda d: d["synthetic"].update(users=-1), ["'data.synthetic.users' is -1; must be >= 1"]),
    (lambda d: d["synthetic"].update(min_len=-3), ["'data.synthetic.min_len' is -3; must be >= 1"]),
    (lambda d: d["synthetic"].update(items=0), ["'data.synthetic.items' is 0; must be >= 1"]),
    (lambda d: d["synthetic"].update(seed=-1), ["'data.synthetic.seed' is -1; must be in [0, 4294967295]"]),
    (lambda d: d.update(n_buckets=200), ["'data.n_buckets' is 200; must be in [1, 127]"]),
])
def test_prepare_stage_bad_sizes_exit_2_with_one_line(tmp_path, edit, words):
    """Values that used to give a traceback (or int8 bucket overflow, or silently empty buckets)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["synthetic"].update(users=40)
    edit(params["data"])
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run = subprocess.run([sys.executable, str(REPO / "stages/prepare.py")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("error: params.yaml: ") and run.stderr.count("\n") == 1
    for word in words:
        assert word in run.stderr
    assert not (tmp_path / params["paths"]["items"]).exists()
