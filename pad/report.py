"""Turn DVC experiments (`dvc exp show --json`) into the paper's Table 2 and a per-bucket chart.

`dvc exp show --json` (dvc 3.x) is a list of commits (the workspace first, then the baseline
commit(s)); each has `rev`, `name`, `data.params[<file>].data`, `data.metrics[<file>].data`, an
`error`, and `experiments`: a list of `{name, executor: {state}, revs: [<same shape>]}`. A queued
experiment has no metrics; a failed one still carries its baseline's metrics file, so its metrics
are dropped here. Missing numbers render as "–", never as an error.
"""
from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pad.errors import PadError
from pad.io import atomic_path

METRICS_FILE = "metrics/evaluate.json"
BASELINES_FILE = "metrics/baselines.json"  # the baselines stage (pad.baselines): {method: {valid, test, train}}
BASELINES_PREFIX = "baselines"  # its metrics join each run's under `baselines.<method>.<split>...`
BASELINE_METHODS = (("hybrid", "Hybrid"), ("morec", "MoRec"), ("llminit", "LLMInit"), ("alphafuse", "AlphaFuse"),
                    ("llmesr", "LLM-ESR"), ("ctrl", "CTRL"), ("smem", "SMEM"), ("make", "MAKE"), ("disco", "DisCo"))
PER_USER_FILE = "metrics/per_user.parquet"  # the evaluate stage's per-user scores (pad.evaluation.per_user)
BASELINES_PER_USER_FILE = "metrics/baselines_per_user.parquet"  # the baselines stage's, same layout
PARAMS_FILE = "params.yaml"
MISSING = "–"
MODELS = (("sasrec", "SASRec"), ("align", "Align"), ("pad", "PAD"))
GROUPS = ("warm", "median", "cold")
USER_GROUPS = ("short", "medium", "long")  # users by training-history length (pad.evaluation.users)
BASELINES = (("sasrec", "SASRec"), ("align", "Align"))  # what PAD is tested against, user by user


@dataclass(frozen=True)
class Experiment:
    """One row: a run's flattened params (`section.key`) and metrics (`test.pad.hr_10`)."""

    name: str
    status: str  # baseline | workspace | success | queued | running | failed
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    rev: str = ""  # the run's git commit ("workspace" for the workspace): where its per-user scores are


def dvc_executable() -> str:
    """`dvc` on PATH, else the one next to this Python (a venv used without activating it)."""
    found = shutil.which("dvc") or shutil.which("dvc", path=str(Path(sys.executable).parent))
    if found is None:
        raise PadError("`dvc` not found: install the project (`pip install -e .`) or activate its venv")
    return found


def run_dvc(args: list[str], root: Path, stream: bool = False) -> str:
    """Run `dvc <args>` in `root` and return stdout (`stream`: show dvc's output live instead).

    A failure becomes a PadError with dvc's message."""
    proc = subprocess.run([dvc_executable(), *args], cwd=root, capture_output=not stream, text=True)
    if proc.returncode != 0 and stream:
        raise PadError(f"`dvc {' '.join(args)}` failed in {root} (its output is above)")
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip().splitlines()
        raise PadError(f"`dvc {' '.join(args)}` failed in {root}: {' '.join(msg) or 'no output'}")
    return proc.stdout or ""


def load_exp_show(root: Path, source: Path | None = None) -> list[dict]:
    """The `dvc exp show --json` document, from a saved file or by running dvc in `root`."""
    if source is not None:
        if not source.is_file():
            raise PadError(f"{source}: no such file (save one with `dvc exp show --json > FILE`)")
        text, where = source.read_text(), str(source)
    else:
        if not (root / "dvc.yaml").is_file() and not (root / ".dvc").is_dir():
            raise PadError(f"{root} is not a DVC project: run `pad report` from the project root")
        text, where = run_dvc(["exp", "show", "--json"], root), "`dvc exp show --json`"
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PadError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, list) or not all(isinstance(c, dict) and "rev" in c for c in doc):
        raise PadError(f"{where}: expected a list of commits with `rev` (the `dvc exp show --json` format)")
    return doc


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys: {"test": {"pad": {"hr_10": 1}}} -> {"test.pad.hr_10": 1}."""
    if not isinstance(tree, dict):
        return {prefix: tree} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _file_data(section: Any, file: str) -> dict:
    entry = section.get(file) if isinstance(section, dict) else None
    data = entry.get("data") if isinstance(entry, dict) else None
    return data if isinstance(data, dict) else {}


def _experiment(rev: dict, name: str, status: str, metrics_file: str) -> Experiment:
    data = rev.get("data") if isinstance(rev.get("data"), dict) else {}
    params = flatten(_file_data(data.get("params"), PARAMS_FILE))
    metrics: dict[str, float] = {}
    if status not in ("failed", "queued", "running") and not rev.get("error"):
        files = [(metrics_file, "")] + ([(BASELINES_FILE, BASELINES_PREFIX)] if metrics_file == METRICS_FILE else [])
        for file, prefix in files:
            metrics.update({k: float(v) for k, v in flatten(_file_data(data.get("metrics"), file), prefix).items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return Experiment(name, status, params, metrics, str(rev.get("rev") or ""))


def parse_exp_show(doc: list[dict], metrics_file: str = METRICS_FILE) -> list[Experiment]:
    """Baseline(s) then their experiments (oldest first); the workspace only if it is not a copy."""
    rows: list[Experiment] = []
    workspace: Experiment | None = None
    for commit in doc:
        if commit.get("rev") == "workspace":
            workspace = _experiment(commit, "workspace", "workspace", metrics_file)
            continue
        rows.append(_experiment(commit, commit.get("name") or str(commit["rev"])[:7], "baseline", metrics_file))
        exps = [e for e in commit.get("experiments") or [] if isinstance(e, dict) and e.get("revs")]
        exps.sort(key=lambda e: (e["revs"][0].get("data") or {}).get("timestamp") or "")
        for exp in exps:
            rev = exp["revs"][0]
            state = (exp.get("executor") or {}).get("state") or ("failed" if rev.get("error") else "success")
            rows.append(_experiment(rev, exp.get("name") or rev.get("name") or str(rev["rev"])[:7],
                                    state, metrics_file))
    if workspace is not None and not any(
            (r.params, r.metrics) == (workspace.params, workspace.metrics) for r in rows):
        rows.insert(0, workspace)
    return rows


def select(rows: list[Experiment], patterns: list[str]) -> list[Experiment]:
    """Keep baselines and the rows whose name matches any glob (`rq3-*`); no patterns keeps all."""
    if not patterns:
        return rows
    return [r for r in rows if r.status == "baseline" or any(fnmatch.fnmatch(r.name, p) for p in patterns)]


def differing_params(rows: list[Experiment]) -> list[str]:
    """Param keys whose value is not the same in every row (the columns that explain the rows)."""
    keys = sorted({k for r in rows for k in r.params})
    return [k for k in keys if len({json.dumps(r.params.get(k), sort_keys=True) for r in rows}) > 1]


def _value(v: Any) -> str:
    if v is None:
        return MISSING
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v)) + "]"
    return str(v).replace("|", "\\|")


def _num(metrics: dict[str, float], key: str) -> str:
    return f"{metrics[key]:.3f}" if key in metrics else MISSING


def improvement(metrics: dict[str, float], split: str, metric: str) -> str:
    """PAD over SASRec of the same run, in % (e.g. "+12.3%"); "–" when either is missing or 0."""
    pad, base = metrics.get(f"{split}.pad.{metric}"), metrics.get(f"{split}.sasrec.{metric}")
    if pad is None or not base:
        return MISSING
    return f"{100.0 * (pad - base) / base:+.1f}%"


def render_table(rows: list[Experiment], split: str = "test") -> str:
    """Markdown: one row per experiment, differing params, HR@10/nDCG@10 per model, PAD's gain and groups."""
    if not rows:
        raise PadError("no experiments found: run `dvc repro` (baseline) or `dvc exp run` first")
    params = differing_params(rows)
    header = ["Experiment", *params]
    header += [f"{label} {m}" for _, label in MODELS for m in ("HR@10", "nDCG@10")]
    header += ["Impr. HR@10", "Impr. nDCG@10"]
    header += [f"PAD {g} {m}" for g in GROUPS for m in ("HR@10", "nDCG@10")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        name = r.name if r.status in ("baseline", "success", "workspace") else f"{r.name} ({r.status})"
        cells = [name, *(_value(r.params.get(k)) for k in params)]
        cells += [_num(r.metrics, f"{split}.{model}.{m}") for model, _ in MODELS for m in ("hr_10", "ndcg_10")]
        cells += [improvement(r.metrics, split, m) for m in ("hr_10", "ndcg_10")]
        cells += [_num(r.metrics, f"{split}.pad.{g}.{m}") for g in GROUPS for m in ("hr_10", "ndcg_10")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def seed_groups(rows: list[Experiment]) -> list[list[Experiment]]:
    """Finished runs that differ only in the top-level `seed` (`pad exp run <set> --seeds N`, or
    `dvc exp run -S seed=...` by hand), grouped in first-seen order, one run per seed (a repeat of the same
    params, e.g. an experiment of the baseline's own seed, counts once); groups of one seed are left out."""
    groups: dict[str, list[Experiment]] = {}
    for r in rows:
        if r.status in ("baseline", "success", "workspace") and r.metrics:
            key = json.dumps({k: v for k, v in r.params.items() if k != "seed"}, sort_keys=True, default=str)
            group = groups.setdefault(key, [])
            if r.params.get("seed") not in {g.params.get("seed") for g in group}:
                group.append(r)
    return [g for g in groups.values() if len({r.params.get("seed") for r in g}) > 1]


def _mean_std(values: list[float]) -> str:
    """"mean ± sample std" (ddof 1) of the runs that have the value; "–" when none has it."""
    if not values:
        return MISSING
    mean = sum(values) / len(values)
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
    return f"{mean:.3f} ± {std:.3f}"


def render_seed_table(rows: list[Experiment], split: str = "test") -> str:
    """Markdown: one row per configuration run over several seeds, every column as mean ± std over them;
    "" when no configuration has two seeds."""
    groups = seed_groups(rows)
    if not groups:
        return ""
    params = [k for k in differing_params([g[0] for g in groups]) if k != "seed"]
    header = ["Configuration", "Seeds", *params]
    header += [f"{label} {m}" for _, label in MODELS for m in ("HR@10", "nDCG@10")]
    header += [f"PAD {g} {m}" for g in GROUPS for m in ("HR@10", "nDCG@10")]
    lines = [f"Over seeds ({split}; mean ± std, std over runs with ddof 1; runs equal in every param but `seed`):",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    keys = [f"{split}.{model}.{m}" for model, _ in MODELS for m in ("hr_10", "ndcg_10")]
    keys += [f"{split}.pad.{g}.{m}" for g in GROUPS for m in ("hr_10", "ndcg_10")]
    for g in groups:
        name = re.sub(r"-s\d+$", "", g[0].name)
        seeds = ", ".join(str(r.params.get("seed")) for r in g)
        cells = [name, seeds, *(_value(g[0].params.get(k)) for k in params)]
        cells += [_mean_std([r.metrics[k] for r in g if k in r.metrics]) for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_history_table(rows: list[Experiment], split: str = "test") -> str:
    """Markdown: one row per experiment, HR@10 and nDCG@10 of every model per user history-length group."""
    if not rows:
        raise PadError("no experiments found: run `dvc repro` (baseline) or `dvc exp run` first")
    header = ["Experiment"] + [f"{label} {g} {m}" for _, label in MODELS for g in USER_GROUPS
                               for m in ("HR@10", "nDCG@10")]
    lines = [f"By user history length ({split}; short / medium / long = terciles of the training-history "
             f"length, `{split}.<model>.history`, cut points in `history_groups`):", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        name = r.name if r.status in ("baseline", "success", "workspace") else f"{r.name} ({r.status})"
        cells = [name] + [_num(r.metrics, f"{split}.{model}.history.{g}.{m}") for model, _ in MODELS
                          for g in USER_GROUPS for m in ("hr_10", "ndcg_10")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def baseline_methods(rows: list[Experiment]) -> list[str]:
    """The methods that have baselines-stage metrics in any row: the known ones in Table 2's order, then others."""
    found = {k.split(".")[1] for r in rows for k in r.metrics if k.startswith(f"{BASELINES_PREFIX}.")}
    known = [m for m, _ in BASELINE_METHODS if m in found]
    return known + sorted(found - set(known))


def render_baselines_table(rows: list[Experiment], split: str = "test") -> str:
    """Markdown, the paper's Table 2: per run (or per configuration run over seeds: mean ± std), one row per
    method: SASRec and PAD from evaluate.json, the baselines from baselines.json; HR@10 / nDCG@10 overall and
    on warm / median / cold items. "" when no run has baselines metrics (`baselines.methods` empty)."""
    methods = baseline_methods(rows)
    if not methods:
        return ""
    labels = dict(BASELINE_METHODS)
    grouped = seed_groups(rows)
    in_groups = {id(r) for g in grouped for r in g}
    units = [(re.sub(r"-s\d+$", "", g[0].name), g) for g in grouped]
    units += [(r.name, [r]) for r in rows if id(r) not in in_groups and r.metrics]
    units = [(name, g) for name, g in units if any(k.startswith(f"{BASELINES_PREFIX}.") for r in g for k in r.metrics)]
    header = ["Run", "Method"] + [f"{w}{m}" for w in ("", *(f"{g} " for g in GROUPS)) for m in ("HR@10", "nDCG@10")]
    lines = [f"Table 2 ({split}, history excluded; SASRec and PAD from `{METRICS_FILE}`, the others from "
             f"`{BASELINES_FILE}`; mean ± std where a configuration ran over several seeds):", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    models = [("SASRec", f"{split}.sasrec")]
    models += [(labels.get(m, m), f"{BASELINES_PREFIX}.{m}.{split}") for m in methods]
    models += [("PAD", f"{split}.pad")]
    for name, group in units:
        for label, prefix in models:
            keys = [f"{prefix}.{m}" for m in ("hr_10", "ndcg_10")]
            keys += [f"{prefix}.{g}.{m}" for g in GROUPS for m in ("hr_10", "ndcg_10")]
            cells = [_num(group[0].metrics, k) if len(group) == 1 else
                     _mean_std([r.metrics[k] for r in group if k in r.metrics]) for k in keys]
            lines.append("| " + " | ".join([name, label, *cells]) + " |")
    return "\n".join(lines) + "\n"


def significance(per_user: Path, split: str = "test", resamples: int = 1000, seed: int = 0) -> list:
    """PAD against SASRec, the alignment expert and every baseline method on per-user nDCG@10 of `split`,
    overall, per item group and per user group (pad.evaluation.significance.paired_by_group over the evaluate
    stage's per-user Parquet, joined by the baselines stage's next to it where that has rows)."""
    from pad.evaluation.per_user import read_per_user

    df, info = read_per_user(per_user)
    baselines = per_user.with_name(Path(BASELINES_PER_USER_FILE).name)
    if baselines.is_file():
        df = with_baselines(df, read_per_user(baselines)[0])
    return pad_comparisons(df, info, split, resamples, seed)


def with_baselines(per_user: Any, baselines: Any) -> Any:
    """The evaluate stage's per-user rows with the baselines stage's appended (none: as they are)."""
    import polars as pl

    return pl.concat([per_user, baselines.select(per_user.columns)]) if len(baselines) else per_user


def pad_comparisons(per_user: Any, info: dict[str, Any], split: str, resamples: int, seed: int) -> list:
    """PAD against each of BASELINES and every baseline method in the table, on per-user nDCG@k of `split`
    (k from the file's metadata `info`)."""
    from pad.evaluation.significance import paired_by_group

    metric = f"ndcg_{info['k']}"
    found = set(per_user["model"].unique())
    others = [m for m, _ in BASELINES] + [m for m, _ in BASELINE_METHODS if m in found]
    others += sorted(found - set(others) - {"pad"})
    return [c for base in others
            for c in paired_by_group(per_user, split, "pad", base, metric, GROUPS, USER_GROUPS, resamples, seed)]


def _run_file(root: Path, run: Experiment, path: str) -> bytes:
    """A run's version of an output file: the workspace's, or the one its commit's dvc.lock names, read from
    the DVC cache (a PadError in one line when it is not there)."""
    import dvc.api

    try:
        return ((root / path).read_bytes() if run.rev in ("", "workspace")
                else dvc.api.read(path, repo=str(root), rev=run.rev, mode="rb"))
    except Exception as exc:  # noqa: BLE001 - not in the cache, no such file in that run: one line
        raise PadError(f"{path} of run {run.name}: not readable ({type(exc).__name__}); `dvc exp pull` the run "
                       "or rerun it") from None


def seed_group_per_user(root: Path, group: list[Experiment]) -> tuple[Any, dict[str, Any]]:
    """The per-user scores of a configuration run over several seeds (`seed_groups`), each user's nDCG@10
    averaged over the seeds (pad.evaluation.per_user.pool_seeds). Each run's file is its own version of
    metrics/per_user.parquet (`_run_file`), joined by its baselines stage's per-user scores when every run of
    the group has them for the same methods (a run from before they were written has none: then none are
    joined, so every run pools the same rows)."""
    from pad.evaluation.per_user import parse_per_user, pool_seeds

    frames, extra, info = [], [], {}
    for run in group:
        df, info = parse_per_user(_run_file(root, run, PER_USER_FILE), f"{PER_USER_FILE} of run {run.name}")
        frames.append(df)
        try:
            extra.append(parse_per_user(_run_file(root, run, BASELINES_PER_USER_FILE),
                                        f"{BASELINES_PER_USER_FILE} of run {run.name}")[0])
        except PadError:
            extra.append(None)
    if all(b is not None for b in extra) and len({frozenset(b["model"].unique()) for b in extra}) == 1:
        frames = [with_baselines(df, b) for df, b in zip(frames, extra)]
    return pool_seeds(frames, info["k"]), info


def pooled_significance(root: Path, rows: list[Experiment], split: str = "test", resamples: int = 1000,
                        seed: int = 0) -> list[tuple[list[Experiment], list]]:
    """For every seed group among `rows`: PAD against each of BASELINES on per-user nDCG@10 averaged over
    the group's seeds (`seed_group_per_user`), overall, per item group and per user group."""
    return [(group, pad_comparisons(*seed_group_per_user(root, group), split, resamples, seed))
            for group in seed_groups(rows)]


def pooled_title(group: list[Experiment]) -> str:
    seeds = ", ".join(str(r.params.get("seed")) for r in group)
    return (f"per-user nDCG@10 averaged over seeds {seeds} (runs {', '.join(r.name for r in group)}), "
            "so each user counts once")


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def render_significance(comparisons: list, source: Path | str, split: str = "test") -> str:
    """Markdown: per comparison and group, users, both means, the mean difference with its paired bootstrap
    95% CI and the Wilcoxon signed-rank p (nDCG@10 in %). `source`: the per-user file (a Path), or words
    saying where the scores come from (`pooled_title`)."""
    labels = dict(MODELS) | dict(BASELINE_METHODS)
    where = f"`{source}`" if isinstance(source, Path) else source
    lines = [f"Paired tests over users ({split}, per-user nDCG@10 in %, history excluded; {where}): "
             "Δ = mean difference, its paired bootstrap 95% CI (1000 seeded resamples of users), "
             "Wilcoxon signed-rank p (users with equal scores dropped):", "",
             "| Comparison | Group | Users | PAD nDCG@10 | Other nDCG@10 | Δ | 95% CI | Wilcoxon p |",
             "|" + "---|" * 8]
    for c in comparisons:
        group = f"{c.group} items" if c.group in GROUPS else f"{c.group} history" if c.group in USER_GROUPS else c.group
        head = [f"PAD vs {labels.get(c.b, c.b)}", group]
        t = c.test
        if t is None:
            lines.append("| " + " | ".join(head + ["0"] + [MISSING] * 5) + " |")
            continue
        cells = [str(t.n), f"{100 * t.mean_a:.3f}", f"{100 * t.mean_b:.3f}", _signed(100 * t.mean_diff),
                 f"[{_signed(100 * t.ci_low)}, {_signed(100 * t.ci_high)}]", f"{t.p_value:.2g}"]
        lines.append("| " + " | ".join(head + cells) + " |")
    return "\n".join(lines) + "\n"


def bucket_series(exp: Experiment, split: str, model: str, metric: str = "ndcg_10") -> dict[int, float]:
    """{bucket: value} from keys like `test.pad.buckets.3.ndcg_10` (bucket ids as found)."""
    prefix = f"{split}.{model}.buckets."
    out: dict[int, float] = {}
    for key, value in exp.metrics.items():
        bucket, _, name = key.removeprefix(prefix).partition(".")
        if key.startswith(prefix) and name == metric and bucket.isdigit():
            out[int(bucket)] = value
    return out


def plot_buckets(rows: list[Experiment], path: Path, split: str = "test") -> None:
    """Grouped bars of nDCG@10 per bucket: PAD of every experiment, plus SASRec of the first row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = [(f"{r.name} PAD", bucket_series(r, split, "pad")) for r in rows]
    if rows:
        series.insert(0, (f"{rows[0].name} SASRec", bucket_series(rows[0], split, "sasrec")))
    series = [(label, s) for label, s in series if s]
    if not series:
        raise PadError(f"no per-bucket metrics (`{split}.pad.buckets.N.ndcg_10`) in any experiment yet")
    buckets = sorted({b for _, s in series for b in s})
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(buckets) + 0.3 * len(series)), 4.0))
    for i, (label, s) in enumerate(series):
        xs = [b - 0.4 + width * (i + 0.5) for b in buckets if b in s]
        ax.bar(xs, [s[b] for b in buckets if b in s], width=width, label=label)
    ax.set(xlabel="item frequency bucket (1 = warmest, 10 = coldest)", ylabel="nDCG@10 (%)", xticks=buckets,
           title=f"nDCG@10 per frequency bucket ({split})")
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def write_text(text: str, path: Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
