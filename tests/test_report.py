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


def test_cli_report_from_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no metrics/per_user.parquet here: no paired tests
    out, png = tmp_path / "results.md", tmp_path / "b.png"
    result = CliRunner().invoke(app, ["report", "--from", str(FIXTURE), "--out", str(out), "--png", str(png)])
    assert result.exit_code == 0, result.output
    rows = report.parse_exp_show(json.loads(FIXTURE.read_text()))
    assert out.read_text() == report.render_table(rows) + "\n" + report.render_history_table(rows)
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


def test_history_table(doc):
    rows = report.parse_exp_show(doc)
    rows[0].metrics.update({"test.pad.history.short.ndcg_10": 1.5, "test.sasrec.history.long.hr_10": 9.25})
    table = report.render_history_table(rows)
    cells = dict(zip(_cells(table, "Experiment"), _cells(table, "main")))
    assert cells["PAD short nDCG@10"] == "1.500" and cells["SASRec long HR@10"] == "9.250"
    assert cells["Align medium nDCG@10"] == "–" and len(cells) == 1 + 3 * 3 * 2
    assert "| rq3-linear (queued) |" in table


def write_per_user_fixture(path: Path, models: tuple[str, ...] = ("sasrec", "align", "pad")) -> None:
    """300 test users: PAD beats SASRec on cold targets by a clear margin, equals the alignment expert (the
    other `models`, e.g. baseline methods: "hybrid" scores like SASRec, any other like PAD)."""
    import numpy as np
    import polars as pl

    from pad.evaluation.per_user import write_per_user
    from pad.evaluation.users import history_groups

    rng = np.random.default_rng(0)
    n = 300
    groups = history_groups([np.arange(int(rng.integers(5, 20))) for _ in range(n)])
    bucket = rng.integers(1, 11, n)
    base = (rng.random(n) < 0.3) / np.log2(rng.integers(1, 11, n) + 1)
    pad = np.where((bucket >= 8) & (rng.random(n) < 0.5), 1.0, base)
    frames = []
    for model, ndcg in ((m, base if m in ("sasrec", "hybrid") else pad) for m in models):
        frames.append(pl.DataFrame({
            "split": "test", "model": model, "user_idx": np.arange(n, dtype=np.int32), "target": np.ones(n, np.int32),
            "rank": np.ones(n), "hr_10": (ndcg > 0).astype(float), "ndcg_10": ndcg,
            "bucket": bucket.astype(np.int8), "item_group": np.where(bucket <= 3, "warm", np.where(bucket <= 7, "median", "cold")),
            "history_len": groups.lengths.astype(np.int32), "user_group": groups.names(), "repeat": np.zeros(n, bool)}))
    write_per_user(frames, path, 10, 10, groups)


def _sig_cells(text: str, comparison: str, group: str) -> list[str]:
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"| {comparison} | {group} |")]
    return [c.strip() for c in line.strip("|").split("|")]


def test_significance_table(tmp_path):
    path = tmp_path / "per_user.parquet"
    write_per_user_fixture(path)
    comparisons = report.significance(path)
    assert [(c.b, c.group) for c in comparisons[:7]] == [("sasrec", g) for g in (
        "overall", "warm", "median", "cold", "short", "medium", "long")] and len(comparisons) == 14
    text = report.render_significance(comparisons, path)
    cold = _sig_cells(text, "PAD vs SASRec", "cold items")
    assert float(cold[5]) > 0 and float(cold[7]) < 0.001 and cold[6].startswith("[+")  # Δ, p, CI above 0
    warm = _sig_cells(text, "PAD vs SASRec", "warm items")
    assert warm[5:] == ["+0.000", "[+0.000, +0.000]", "1"]  # no warm user differs
    assert _sig_cells(text, "PAD vs Align", "overall")[5:] == ["+0.000", "[+0.000, +0.000]", "1"]
    assert text == report.render_significance(report.significance(path), path)  # seeded: same text


def test_baselines_per_user_scores_join_the_paired_tests(tmp_path):
    path = tmp_path / "per_user.parquet"
    write_per_user_fixture(path)
    alone = report.significance(path)
    write_per_user_fixture(tmp_path / "baselines_per_user.parquet", ("disco", "hybrid"))  # the stage's file
    comparisons = report.significance(path)
    assert [c.b for c in comparisons[::7]] == ["sasrec", "align", "hybrid", "disco"]  # Table 2's order
    assert [c.test for c in comparisons[:14]] == [c.test for c in alone]
    text = report.render_significance(comparisons, path)
    assert _sig_cells(text, "PAD vs Hybrid", "cold items")[5:] == _sig_cells(text, "PAD vs SASRec", "cold items")[5:]
    assert _sig_cells(text, "PAD vs DisCo", "overall")[5:] == ["+0.000", "[+0.000, +0.000]", "1"]
    from pad.evaluation.per_user import write_per_user

    write_per_user([], tmp_path / "baselines_per_user.parquet", 10, 0, None)  # no methods run: nothing joins
    assert [c.test for c in report.significance(path)] == [c.test for c in alone]


def test_cli_report_with_per_user(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "metrics").mkdir()
    write_per_user_fixture(tmp_path / report.PER_USER_FILE)  # found by default
    result = CliRunner().invoke(app, ["report", "--from", str(FIXTURE)])
    assert result.exit_code == 0, result.output
    assert "| PAD vs SASRec | cold items |" in result.output and "| PAD vs Align | long history |" in result.output
    bad = CliRunner().invoke(app, ["report", "--from", str(FIXTURE), "--per-user", str(tmp_path / "nope.parquet")])
    assert bad.exit_code == 2 and "no per-user scores" in bad.output
    valid = CliRunner().invoke(app, ["report", "--from", str(FIXTURE), "--split", "valid"])
    assert valid.exit_code == 2 and "no model 'pad' on split 'valid'" in valid.output


def test_runs_differing_only_in_seed_are_averaged(doc):
    rows = report.parse_exp_show(doc)
    assert report.render_seed_table(rows) == ""  # no configuration has two seeds yet
    base = rows[0]
    seeded = []
    for seed, shift in ((1, 0.5), (2, -0.2)):  # two more seeds of the baseline configuration
        r = copy.deepcopy(base)
        seeded.append(report.Experiment(f"default-run-s{seed}", "success", {**r.params, "seed": seed},
                                        {k: v + shift for k, v in r.metrics.items()}))
    again = report.Experiment("default-run-s2020", "success", {**base.params, "seed": 2020}, base.metrics)
    rows = [report.Experiment(base.name, base.status, {**base.params, "seed": 2020}, base.metrics), *rows[1:], *seeded,
            again]  # the baseline's own seed run again as an experiment: counted once
    (group,) = report.seed_groups(rows)
    assert [r.name for r in group] == ["main", "default-run-s1", "default-run-s2"]
    table = report.render_seed_table(rows)
    cells = dict(zip(_cells(table, "Configuration"), _cells(table, "main")))
    assert cells["Seeds"] == "2020, 1, 2"
    pad = [base.metrics["test.pad.hr_10"] + s for s in (0.0, 0.5, -0.2)]
    mean = sum(pad) / 3
    std = (sum((v - mean) ** 2 for v in pad) / 2) ** 0.5
    assert cells["PAD HR@10"] == f"{mean:.3f} ± {std:.3f}"


def _baselines_metrics(hr: float) -> dict:
    """A metrics/baselines.json tree like the baselines stage writes (two methods, test and valid)."""
    split = {"hr_10": hr, "ndcg_10": hr / 2, "warm": {"hr_10": hr + 1, "ndcg_10": 1.0},
             "median": {"hr_10": hr, "ndcg_10": 0.5}, "cold": {"hr_10": hr - 1, "ndcg_10": 0.25}}
    return {"hybrid": {"valid": split, "test": split, "train": {"best_epoch": 3, "epochs": 6}},
            "alphafuse": {"valid": split, "test": {**split, "hr_10": hr + 2}, "train": {"best_epoch": 2, "epochs": 5}}}


def _table2_row(table: str, run: str, method: str) -> dict[str, str]:
    lines = [ln for ln in table.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    (line,) = [ln for ln in lines if [c.strip() for c in ln.strip("|").split("|")][:2] == [run, method]]
    return dict(zip(header, [c.strip() for c in line.strip("|").split("|")]))


def test_table2_has_sasrec_the_baselines_and_pad_per_run(doc):
    assert report.render_baselines_table(report.parse_exp_show(doc)) == ""  # no baselines run yet
    commit = next(c for c in doc if c["rev"] != "workspace")
    commit["data"]["metrics"][report.BASELINES_FILE] = {"data": _baselines_metrics(4.0)}
    rows = report.parse_exp_show(doc)
    assert rows[0].metrics["baselines.hybrid.test.hr_10"] == 4.0 and rows[0].metrics["test.pad.hr_10"] == 5.9924
    table = report.render_baselines_table(rows)
    methods = [ln.split("|")[2].strip() for ln in table.splitlines() if ln.startswith("| main ")]
    assert methods == ["SASRec", "Hybrid", "AlphaFuse", "PAD"]  # Table 2's order, whatever the file's
    assert _table2_row(table, "main", "SASRec")["HR@10"] == "5.323"
    assert _table2_row(table, "main", "PAD")["nDCG@10"] == "3.687"
    hybrid = _table2_row(table, "main", "Hybrid")
    assert (hybrid["HR@10"], hybrid["nDCG@10"], hybrid["warm HR@10"], hybrid["cold nDCG@10"]) == \
        ("4.000", "2.000", "5.000", "0.250")
    assert _table2_row(table, "main", "AlphaFuse")["HR@10"] == "6.000"
    assert "rq3-laplacian" not in table  # runs without baselines metrics are left out


def test_table2_averages_runs_over_seeds(doc):
    base = report.parse_exp_show(doc)[0]
    runs = []
    for seed, hr in ((2020, 4.0), (1, 5.0)):
        metrics = {**base.metrics, **report.flatten(_baselines_metrics(hr), "baselines")}
        runs.append(report.Experiment("main" if seed == 2020 else f"main-s{seed}", "success",
                                      {**base.params, "seed": seed}, metrics))
    table = report.render_baselines_table(runs)
    assert _table2_row(table, "main", "Hybrid")["HR@10"] == f"4.500 ± {0.5 ** 0.5:.3f}"
    assert _table2_row(table, "main", "SASRec")["HR@10"] == "5.323 ± 0.000"


def test_every_baseline_method_has_a_table2_label():
    """A method the baselines stage can train but the report has no row label for would vanish from Table 2."""
    import typing

    from pad.baselines.harness import BUILDERS
    from pad.config import BaselineMethod

    labelled = [m for m, _ in report.BASELINE_METHODS]
    assert sorted(labelled) == sorted(typing.get_args(BaselineMethod)) == sorted(BUILDERS)
