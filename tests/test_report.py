"""`pad report` from a real `dvc exp show --json` (dvc 3.67) fixture: baseline, a workspace copy of
the last experiment, two finished experiments, a failed one and a queued one."""
import copy
import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pad import report
from pad.cli import app
from pad.errors import PadError

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "exp_show.json"


@pytest.fixture
def doc():
    return json.loads(FIXTURE.read_text())


def _cells(table: str, name: str) -> list[str]:
    (line,) = [ln for ln in table.splitlines() if ln.startswith(f"| {name} ")]
    return [c.strip() for c in line.strip("|").split("|")]


def test_rows_status_and_workspace_copy_dropped(doc):
    rows = report.parse_exp_show(doc)
    assert [(r.name, r.status) for r in rows] == [
        ("main", "baseline"), ("rq3-infonce", "failed"), ("rq3-laplacian", "success"),
        ("rq5-no-align", "success"), ("rq3-linear", "queued"), ("lambda-0.3", "success")]
    base = rows[0]
    assert base.params["align.kernel"] == "gaussian" and base.params["data.synthetic.users"] == 3000
    assert base.metrics["test.pad.hr_10"] == 5.9924
    assert base.metrics["test.pad.buckets.10.ndcg_10"] > 0


def test_workspace_shown_when_it_differs(doc):
    doc[0]["data"]["params"]["params.yaml"]["data"]["align"]["lambda"] = 0.4
    rows = report.parse_exp_show(doc)
    assert rows[0].name == "workspace" and rows[0].params["align.lambda"] == 0.4


def test_table_cells_and_improvement(doc):
    table = report.render_table(report.parse_exp_show(doc))
    header = _cells(table, "Experiment")
    assert header[:4] == ["Experiment", "align.kernel", "align.lambda", "finetune.experts"]
    main = dict(zip(header, _cells(table, "main")))
    assert main["SASRec HR@10"] == "5.323" and main["SASRec nDCG@10"] == "3.216"
    assert main["Align HR@10"] == "4.933" and main["PAD HR@10"] == "5.992" and main["PAD nDCG@10"] == "3.687"
    # (5.9924 - 5.3227) / 5.3227 and (3.6867 - 3.2158) / 3.2158
    assert main["Impr. HR@10"] == "+12.6%" and main["Impr. nDCG@10"] == "+14.6%"
    assert main["PAD cold HR@10"] == "2.828" and main["PAD cold nDCG@10"] == "1.711"
    assert main["finetune.experts"] == "[id, align, llm]"
    ablation = dict(zip(header, _cells(table, "rq5-no-align")))
    assert ablation["finetune.experts"] == "[id, llm]" and ablation["align.kernel"] == "gaussian"


def test_failed_and_queued_render_as_missing(doc):
    # The failed run still carries its baseline's metrics file in dvc's output: it must not be shown.
    failed = [e for e in doc[1]["experiments"] if e["name"] == "rq3-infonce"][0]
    assert failed["revs"][0]["data"]["metrics"]
    table = report.render_table(report.parse_exp_show(doc))
    for name, status in (("rq3-infonce", "failed"), ("rq3-linear", "queued")):
        cells = _cells(table, f"{name} ({status})")
        assert cells[4:] == ["–"] * (len(cells) - 4)


def test_broken_entries_do_not_crash(doc):
    doc = copy.deepcopy(doc)
    doc[1]["data"]["params"] = {"params.yaml": {"error": {"type": "YAMLError", "msg": "bad"}}}
    doc[1]["data"]["metrics"]["metrics/evaluate.json"] = {"data": {"test": {"pad": {"hr_10": "n/a"}}}}
    doc[1]["experiments"].append({"name": "odd", "executor": None, "revs": [{"rev": "abc1234", "error": None}]})
    rows = report.parse_exp_show(doc)
    table = report.render_table(rows)
    main = dict(zip(_cells(table, "Experiment"), _cells(table, "main")))
    assert main["PAD HR@10"] == "–" and main["align.kernel"] == "–" and main["PAD cold HR@10"] == "–"
    assert "| odd |" in table


def test_improvement_edge_cases():
    assert report.improvement({"test.pad.hr_10": 2.0, "test.sasrec.hr_10": 0.0}, "test", "hr_10") == "–"
    assert report.improvement({"test.pad.hr_10": 2.0}, "test", "hr_10") == "–"
    assert report.improvement({"test.pad.hr_10": 1.0, "test.sasrec.hr_10": 2.0}, "test", "hr_10") == "-50.0%"


def test_select_keeps_baseline(doc):
    rows = report.select(report.parse_exp_show(doc), ["rq3-*"])
    assert [r.name for r in rows] == ["main", "rq3-infonce", "rq3-laplacian", "rq3-linear"]


def test_png_written(doc, tmp_path):
    rows = report.parse_exp_show(doc)
    assert sorted(report.bucket_series(rows[0], "test", "pad")) == list(range(1, 11))
    out = tmp_path / "buckets.png"
    report.plot_buckets(rows, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    with pytest.raises(PadError, match="per-bucket"):  # the fixture's valid split has no buckets
        report.plot_buckets(rows, tmp_path / "valid.png", split="valid")


def test_cli_report_from_file(tmp_path):
    out, png = tmp_path / "results.md", tmp_path / "b.png"
    result = CliRunner().invoke(app, ["report", "--from", str(FIXTURE), "--out", str(out), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == report.render_table(report.parse_exp_show(json.loads(FIXTURE.read_text())))
    assert png.stat().st_size > 0
    bad = CliRunner().invoke(app, ["report", "--from", str(FIXTURE), "--split", "train"])
    assert bad.exit_code == 2


@pytest.mark.parametrize("text, match", [("{not json", "not valid JSON"), ('{"rev": 1}', "list of commits"),
                                         ("[]", None)])
def test_bad_json(tmp_path, text, match):
    path = tmp_path / "show.json"
    path.write_text(text)
    if match is None:  # valid but empty: no experiments
        with pytest.raises(PadError, match="no experiments"):
            report.render_table(report.parse_exp_show(report.load_exp_show(tmp_path, path)))
    else:
        with pytest.raises(PadError, match=match):
            report.load_exp_show(tmp_path, path)
    with pytest.raises(PadError, match="no such file"):
        report.load_exp_show(tmp_path, tmp_path / "missing.json")


def test_not_a_dvc_project(tmp_path):
    with pytest.raises(PadError, match="not a DVC project"):
        report.load_exp_show(tmp_path)


def test_dvc_not_found(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(PadError, match="`dvc` not found"):
        report.run_dvc(["exp", "show", "--json"], tmp_path)
