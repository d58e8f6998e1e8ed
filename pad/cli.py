"""The `pad` command line: one sub-command per pipeline stage, plus data, serving and report tools.

Stage sub-commands run the same `stages/<name>.py` script that `dvc repro` runs, from the project
root, so `pad pretrain` and `dvc repro pretrain` cannot drift apart.
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import typer

from pad.errors import PadError, friendly_errors

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Get raw data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

STAGES = ("prepare", "embed", "pretrain", "align", "finetune", "evaluate", "baselines")

def run_stage_script(name: str) -> None:
    script = Path("stages") / f"{name}.py"
    if not script.is_file():
        raise PadError(f"{script} not found: run `pad {name}` from the project root (where dvc.yaml is)")
    sys.argv = [str(script)]
    runpy.run_path(str(script), run_name="__main__")


def _stage_command(name: str) -> None:
    @friendly_errors
    def command() -> None:
        run_stage_script(name)

    command.__doc__ = f"Run the `{name}` stage (same as `dvc repro {name}` without the caching)."
    app.command(name)(command)


for _name in STAGES:
    _stage_command(_name)


@data_app.command("fetch")
@friendly_errors
def data_fetch(
    dataset: str = typer.Argument(..., help="Data set to download: prime-pantry."),
    dest: Path = typer.Option(Path("data/raw"), help="Folder to write the files into."),
    base_url: str = typer.Option("", help="Download from this URL prefix instead of the public source."),
) -> None:
    """Download a public data set (progress bar, sha256 check, atomic writes)."""
    from pad.data.fetch import fetch

    for path in fetch(dataset, dest, base_url or None):
        print(path)


exp_app = typer.Typer(help="Named experiment sets for the paper's research questions.", no_args_is_help=True)
app.add_typer(exp_app, name="exp")
_SET_PARAM = typer.Option([], "-S", "--set-param", help="Extra override for every member, e.g. -S data.source=pad_csv.")
_MEMBER = typer.Option([], "--member", help="Only this member (repeatable), e.g. --member llm2vec.")
_ALLOW_DIRTY = typer.Option(False, help="Queue even if params.yaml has uncommitted changes (they are inherited).")
_SEEDS = typer.Option("", "--seeds", help="Run every member over seeds: a count (5: the committed seed and the 4 after "
                      "it) or a list (2020,1,2); `pad report` shows mean ± std over them.")


def _seeds(text: str) -> list[int]:
    from pad.config import load_section
    from pad.experiments import parse_seeds

    return parse_seeds(text, load_section("seed")) if text else []


@app.command("report")
@friendly_errors
def report(
    out: Path | None = typer.Option(None, help="Write the Markdown table here (else print it)."),
    png: Path | None = typer.Option(None, help="Write a bar chart of nDCG@10 per bucket here."),
    source: Path | None = typer.Option(None, "--from", help="Saved `dvc exp show --json` output."),
    split: str = typer.Option("test", help="test or valid."),
    select: list[str] = typer.Option([], help="Only experiments matching this glob (repeatable), e.g. 'rq3-*'."),
    per_user: Path | None = typer.Option(None, help="Per-user scores for the paired tests (default: "
                                         "metrics/per_user.parquet if present: the workspace's run; the "
                                         "baselines' baselines_per_user.parquet beside it joins them)."),
) -> None:
    """Table 2 of the paper (HR@10, nDCG@10, PAD's gain, warm/median/cold) from `dvc exp show`, the models by
    user history length, and paired tests over users of PAD vs SASRec, the alignment expert and each baseline
    method the run trained (of the workspace's run, and of every configuration run over seeds, each user's
    scores averaged over them)."""
    from pad import report as rep

    if split not in ("test", "valid"):
        raise PadError(f"--split {split!r}: expected test or valid")
    rows = rep.select(rep.parse_exp_show(rep.load_exp_show(Path.cwd(), source)), select)
    table = rep.render_table(rows, split) + "\n" + rep.render_history_table(rows, split)
    seeds = rep.render_seed_table(rows, split)
    table += "\n" + seeds if seeds else ""
    table2 = rep.render_baselines_table(rows, split)
    table += "\n" + table2 if table2 else ""
    if per_user is None and Path(rep.PER_USER_FILE).is_file():
        per_user = Path(rep.PER_USER_FILE)
    if per_user is not None:
        table += "\n" + rep.render_significance(rep.significance(per_user, split), per_user, split)
    if source is None:  # a live project: each seed group's runs, user by user, averaged over the seeds
        try:
            for group, comparisons in rep.pooled_significance(Path.cwd(), rows, split):
                table += "\n" + rep.render_significance(comparisons, rep.pooled_title(group), split)
        except PadError as exc:
            table += f"\nPaired tests over seeds: not shown ({exc})\n"
    if out is None:
        print(table, end="")
    else:
        rep.write_text(table, out)
        print(f"wrote {out}")
    if png is not None:
        rep.plot_buckets(rows, png, split)
        print(f"wrote {png}")


@exp_app.command("list")
@friendly_errors
def exp_list() -> None:
    """Show every experiment set and the params each member sets."""
    from pad.experiments import describe_sets

    print(describe_sets())


@exp_app.command("queue")
@friendly_errors
def exp_queue(name: str, set_param: list[str] = _SET_PARAM, member: list[str] = _MEMBER,
              allow_dirty: bool = _ALLOW_DIRTY, seeds: str = _SEEDS) -> None:
    """Queue a set (`dvc exp run --queue -n <set>-<value> -S ...` per member); run with `dvc exp run --run-all`."""
    from pad.experiments import queue_set

    for queued in queue_set(name, Path.cwd(), set_param, member, allow_dirty, _seeds(seeds)):
        print(f"queued {queued}")


@exp_app.command("run")
@friendly_errors
def exp_run(name: str, set_param: list[str] = _SET_PARAM, member: list[str] = _MEMBER,
            allow_dirty: bool = _ALLOW_DIRTY, seeds: str = _SEEDS) -> None:
    """Queue a set, then run the whole queue one at a time (`dvc exp run --run-all --jobs 1`)."""
    from pad.experiments import run_set

    names = run_set(name, Path.cwd(), set_param, member, allow_dirty, _seeds(seeds))
    print(f"done: {', '.join(names)}; compare with `pad report --select '{name}-*'`")



@app.command("tau")
@friendly_errors
def tau(
    table_a: Path = typer.Argument(..., help="Table A: a .pt checkpoint or an embeddings .parquet."),
    table_b: Path = typer.Argument(..., help="Table B, same kinds."),
    sequences: Path = typer.Option(Path("data/prepared/sequences.parquet"), help="Users' item sequences."),
    items: Path = typer.Option(Path("data/prepared/items.parquet"), help="Items with their frequency bucket."),
    key: str | None = typer.Option(None, help="Which 2-D tensor of a .pt file (dotted name or suffix)."),
    key_b: str | None = typer.Option(None, help="Key for table B if it differs from --key."),
    max_pairs: int = typer.Option(200_000, help="Seeded subsample of (history, target) pairs."),
    seed: int = typer.Option(0),
    metric: str = typer.Option("euclidean", help="euclidean or cosine."),
) -> None:
    """Kendall's tau-b between two item tables' (history item, target) distances, per bucket (paper §4.3)."""
    from pad.data.buckets import read_n_buckets
    from pad.evaluation import kendall

    if metric not in ("euclidean", "cosine"):
        raise PadError(f"--metric {metric!r}: expected euclidean or cosine")
    seqs, item_bucket = kendall.load_sequences_and_buckets(sequences, items)
    n = len(item_bucket) - 1
    a = kendall.load_table(table_a, key, n)
    b = kendall.load_table(table_b, key_b or key, n)
    result = kendall.tau_discrepancy(a, b, seqs, item_bucket, read_n_buckets(items), max_pairs, seed, metric)
    print(kendall.format_tau(result), end="")

@app.command("recommend")
@friendly_errors
def recommend(
    user: str | None = typer.Option(None, help="A user_id of the sequences file: recommend the next item after all of theirs."),
    items: str | None = typer.Option(None, help="Comma-separated item ids (item_id), oldest first."),
    k: int = typer.Option(10, "-k", help="How many items."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    allow_repeats: bool = typer.Option(False, help="Keep items of the history in the ranking."),
    new_items: Path | None = typer.Option(None, help="CSV/Parquet of new items (item_id,text) to rank too."),
    model: Path | None = typer.Option(None, help="PAD checkpoint (default: paths.finetune_model)."),
    embeddings: Path | None = typer.Option(None, help="Item text embeddings (default: paths.embeddings)."),
    catalogue: Path | None = typer.Option(None, help="Items file (default: paths.items)."),
    sequences: Path | None = typer.Option(None, help="Sequences file (default: paths.sequences)."),
) -> None:
    """Top-k items (ids, titles, scores) from the trained PAD model for a user or an item list."""
    from pad.serve import recommend_command

    print(recommend_command(user, items, k, as_json, allow_repeats, new_items, model, embeddings, catalogue,
                            sequences), end="")


def main() -> None:
    app()
