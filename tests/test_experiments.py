"""Experiment sets: the exact dvc commands, the `-S` value syntax (checked with DVC's own Hydra
parser), and one real `dvc exp run --queue` of a list param in a throwaway DVC project."""
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hypothesis import given, strategies as st

from pad import experiments as ex
from pad.config import load_all
from pad.errors import PadError
from pad.report import parse_exp_show

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "exp_show.json"
PARSER = OverridesParser.create()


def test_rq3_commands():
    assert ex.queue_commands("rq3") == [
        ["exp", "run", "--queue", "-n", f"rq3-{k}", "-S", f"align.kernel={k}"]
        for k in ("gaussian", "laplacian", "linear", "cosine", "infonce")]


def test_rq5_list_params_and_gate():
    cmds = {c[4]: c[5:] for c in ex.queue_commands("rq5")}
    assert cmds["rq5-no-align"] == ["-S", "finetune.experts=[id,llm]"]
    assert cmds["rq5-no-id"] == ["-S", "finetune.experts=[align,llm]"]
    assert cmds["rq5-no-llm"] == ["-S", "finetune.experts=[id,align]"]
    assert cmds["rq5-gate-global"] == ["-S", "finetune.gate=global"]
    assert set(cmds) >= {"rq5-gate-network", "rq5-gate-bucket"}


def test_overrides_reach_every_member_and_win():
    cmds = ex.queue_commands("rq7", ["data.source=pad_csv", "data.path=../shared/x y"])
    assert [c[4] for c in cmds] == ["rq7-sasrec", "rq7-gru4rec", "rq7-caser"]
    for c in cmds:
        assert c[-4:] == ["-S", "data.source=pad_csv", "-S", "data.path=../shared/x y"]
    (llm,) = ex.queue_commands("rq6", ["embed.model=/models/llama3"], ["llm2vec"])
    assert llm == ["exp", "run", "--queue", "-n", "rq6-llm2vec",
                   "-S", "embed.encoder=llm2vec", "-S", "embed.model=/models/llama3"]


@pytest.mark.parametrize("args, match", [
    (("rq9",), "unknown experiment set"),
    (("rq6", [], ["gpt"]), "no member gpt"),
    (("rq3", ["align.kernel=linear"]), "varies"),
    (("rq3", ["data.source"]), "section.key=value"),
    (("rq3", ["=x"]), "section.key=value"),
])
def test_bad_inputs(args, match):
    with pytest.raises(PadError, match=match):
        ex.queue_commands(*args)


def test_every_member_is_valid_params(tmp_path):
    """Each member applied to the project's params.yaml passes the strict config loader."""
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    names = []
    for exp_set in ex.SETS.values():
        for member in exp_set.members:
            names.append(f"{exp_set.name}-{member.name}")
            params = json.loads(json.dumps(base))
            for key, value in member.params.items():
                section, *path, field = key.split(".")  # data.synthetic.users: a nested field
                node = params[section]
                for part in path:
                    node = node[part]
                assert field in node, key
                node[field] = PARSER.parse_overrides([f"x={ex.format_value(value)}"])[0].value()
            (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
            load_all(tmp_path / "params.yaml")
    assert len(names) == len(set(names))
    assert all(n in ex.describe_sets() for n in names)


def test_scale_presets_are_sized_as_named_and_train_at_a_step_cost_free_of_the_catalogue():
    members = {m.name: m.params for m in ex.get_set("scale").members}
    assert list(members) == ["electronics-1-64", "electronics-1-16", "electronics-1-4", "electronics", "mind"]
    training = {"model.loss", "model.negatives", "model.item_updates", "pretrain.patience", "evaluate.valid_users"}
    assert all((k.startswith("data.") or k in training) and p["data.source"] == "synthetic"
               for p in members.values() for k in p)
    assert all(p["model.loss"] == "shared_ce" and p["model.item_updates"] == "rows" for p in members.values())
    # the patience covers shared_ce's early plateau in steps: more epochs where an epoch is a few dozen steps
    patience = {name: p["pretrain.patience"] for name, p in members.items()}
    assert patience["electronics-1-64"] * members["electronics-1-64"]["data.synthetic.users"] / 256 >= ex.PLATEAU_STEPS
    assert patience["electronics"] == patience["mind"] == 3 <= min(patience.values())
    size = {name: (p["data.synthetic.users"], p["data.synthetic.items"]) for name, p in members.items()}
    assert size["electronics"] == (598_307, 423_191) and size["mind"] == (630_235, 79_707)
    for f in (64, 16, 4):
        for got, full in zip(size[f"electronics-1-{f}"], size["electronics"]):
            assert abs(got - full / f) <= 0.5
        assert members[f"electronics-1-{f}"]["data.synthetic.max_len"] == members["electronics"]["data.synthetic.max_len"]
    topics = [members[n]["data.synthetic.topics"] for n in ("electronics-1-64", "electronics-1-16", "electronics-1-4",
                                                             "electronics")]
    assert topics == sorted(topics) and topics[0] > 24  # more topics than the default's as the catalogue grows
    # one member at a time can take its own -S data.* changes; the whole set refuses them
    (one,) = ex.queue_commands("scale", ["data.synthetic.seed=3"], ["electronics-1-64"])
    assert one[4] == "scale-electronics-1-64" and one[-2:] == ["-S", "data.synthetic.seed=3"]
    with pytest.raises(PadError, match="varies"):
        ex.queue_commands("scale", ["data.synthetic.users=10"])


def test_scale_preset_lengths_give_the_papers_interactions_per_user():
    """E[min(min_len + Geometric, max_len, data.max_items)] of the generator's `_lengths`, against the
    paper's interactions / users (Electronics 8.59, MIND 15.34), and a sample of the generator itself."""
    import numpy as np

    from pad.config import load_section
    from pad.data.sources.synthetic import _lengths

    base = load_section("data", REPO / "params.yaml")
    paper = {"electronics": 5_137_265 / 598_307, "mind": 9_667_540 / 630_235}
    for name, per_user in paper.items():
        (p,) = [m.params for m in ex.get_set("scale").members if m.name == name]
        cfg = dataclasses.replace(base.synthetic, users=200_000, min_len=p["data.synthetic.min_len"],
                                  max_len=p["data.synthetic.max_len"])
        assert cfg.min_len >= base.min_interactions  # no user is dropped: users stay as named
        sample = np.minimum(_lengths(np.random.default_rng(0), cfg), base.max_items).mean()
        assert sample == pytest.approx(per_user, rel=0.015)  # integer min_len/max_len: -0.9% and -0.2%


@given(st.one_of(st.text(st.characters(min_codepoint=32, max_codepoint=126)),
                 st.lists(st.from_regex(r"[a-z_]{1,8}", fullmatch=True), min_size=1, max_size=3),
                 st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.booleans()))
def test_format_value_round_trips_through_dvc_parser(value):
    parsed = PARSER.parse_overrides([f"a.b={ex.format_value(value)}"])[0]
    assert not parsed.is_sweep_override()
    assert parsed.value() == value


def test_failed_names_from_fixture():
    rows = parse_exp_show(json.loads(FIXTURE.read_text()))
    assert ex.failed_names(rows, ["rq3-infonce", "rq3-laplacian", "rq3-linear"]) == ["rq3-infonce"]


def _sh(*cmd: str, cwd: Path) -> str:
    if cmd[0] == "dvc":  # the venv's dvc, whether or not the venv is activated
        cmd = (sys.executable, "-m", "dvc", *cmd[1:])
    return subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def dvc_project(tmp_path, monkeypatch):
    for var, value in {"DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}.items():
        monkeypatch.setenv(var, value)
    (tmp_path / "params.yaml").write_text("finetune:\n  experts: [id, align, llm]\n  gate: bucket\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  echo:\n    cmd: echo ok\n    params: [finetune]\n")
    _sh("git", "init", "-q", cwd=tmp_path)
    _sh("dvc", "init", "-q", cwd=tmp_path)
    _sh("git", "add", "-A", cwd=tmp_path)
    _sh("git", "commit", "-qm", "base", cwd=tmp_path)
    yield tmp_path
    subprocess.run([sys.executable, "-m", "dvc", "queue", "remove", "--all"], cwd=tmp_path, capture_output=True)


def test_real_queue_of_a_list_param(dvc_project):
    assert ex.queue_set("rq5", dvc_project, members=["no-align"]) == ["rq5-no-align"]
    assert "rq5-no-align" in _sh("dvc", "queue", "status", cwd=dvc_project)
    rows = {r.name: r for r in parse_exp_show(json.loads(_sh("dvc", "exp", "show", "--json", cwd=dvc_project)))}
    queued = rows["rq5-no-align"]
    assert queued.status == "queued"
    assert queued.params == {"finetune.experts": ["id", "llm"], "finetune.gate": "bucket"}
    # a params.yaml edited in the workspace would leak into every queued member: refused
    (dvc_project / "params.yaml").write_text("finetune:\n  experts: [id]\n  gate: global\n")
    with pytest.raises(PadError, match="uncommitted changes"):
        ex.queue_set("rq5", dvc_project, members=["no-llm"])


def test_queue_outside_git(tmp_path):
    with pytest.raises(PadError, match="not a git repository"):
        ex.queue_set("rq3", tmp_path)


def test_seeds_run_every_member_once_per_seed():
    assert ex.parse_seeds("3", 2020) == [2020, 2021, 2022] and ex.parse_seeds("2020,1,2", 0) == [2020, 1, 2]
    for bad in ("x", "1,1", "-1,2", "0"):
        with pytest.raises(PadError, match="--seeds"):
            ex.parse_seeds(bad, 2020)
    cmds = ex.queue_commands("rq3", ["data.source=pad_csv"], ["gaussian", "linear"], seeds=[2020, 1])
    assert [c[4] for c in cmds] == ["rq3-gaussian-s2020", "rq3-gaussian-s1", "rq3-linear-s2020", "rq3-linear-s1"]
    assert cmds[1][5:] == ["-S", "align.kernel=gaussian", "-S", "data.source=pad_csv", "-S", "seed=1"]
    (plain,) = ex.queue_commands("default")
    assert plain == ["exp", "run", "--queue", "-n", "default-run"]
    with pytest.raises(PadError, match="--seeds both"):
        ex.queue_commands("default", ["seed=3"], seeds=[1, 2])
