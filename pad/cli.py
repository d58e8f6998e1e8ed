"""The `pad` command line: one sub-command per pipeline stage, plus data, serving and report tools.

Stage sub-commands run the same `stages/<name>.py` script that `dvc repro` runs, from the project
root, so `pad pretrain` and `dvc repro pretrain` cannot drift apart.
"""
from __future__ import annotations

import functools
import runpy
import sys
from pathlib import Path
from typing import Callable, TypeVar

import typer

from pad.errors import PadError

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
data_app = typer.Typer(help="Get raw data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")

STAGES = ("prepare", "embed", "pretrain", "align", "finetune", "evaluate")

F = TypeVar("F", bound=Callable)


def friendly_errors(fn: F) -> F:
    """Turn a `PadError` into one line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except PadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted: finished work is kept; rerun to resume", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]


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


def main() -> None:
    app()
