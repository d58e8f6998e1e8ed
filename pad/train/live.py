"""The per-epoch training log of a phase, written with DVCLive so `dvc exp show`, `dvc metrics` and `dvc plots`
read it while the stage runs.

`<dir>/metrics.json` holds the last logged epoch's values and `step` (a DVC metric); `<dir>/plots/metrics/<name>.tsv`
one row per epoch, columns `step` (= the epoch, from 1) and `<name>` (DVC plots). Logged: `train_loss`, the
loss function's extra values (e.g. `align_loss`) and `valid_<metric>`. Timings (`TIMING_KEYS`) are never
logged: they differ run to run and the metrics must not (they go to `timings/<stage>.json`).

The log is rebuilt from the rows of the run's resume state every time `fit` starts, so a resumed run writes
the same files, byte for byte, as an uninterrupted one, and a line half-written by a kill never survives a
rerun (DVC caches a stage's outputs only once its command succeeds). DVCLive runs with no side effects
outside the folder and no network: no experiment saved (`save_dvc_exp=False`: `dvc exp run` records the
experiment itself), no dvc.yaml written (the project's dvc.yaml declares the files), no report, no look at
the repository (`_RepoFreeLive`), and Studio offline unless `DVC_STUDIO_OFFLINE` is set otherwise.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable

TIMING_KEYS = ("epoch_s", "samples_per_s", "eval_s", "epoch_cpu_s")


def logged_values(row: dict[str, Any]) -> dict[str, float]:
    """The values of an epoch's row that go to the log: all but the epoch number and the timings."""
    return {k: v for k, v in row.items() if k != "epoch" and k not in TIMING_KEYS}


def _repo_free_live() -> type:
    from dvclive import Live  # imports DVC: only where a log is written

    class _RepoFreeLive(Live):
        """Live without its repository hooks (`Live._init_dvc`), which this log does not need (no experiment
        to save, no dvc.yaml to write) and which misbehave here: in a git repo with no commit yet
        (`git init; dvc repro`) dvclive 3.49 stops the stage with SCMError("Empty git repo"); in a git repo
        without .dvc it runs `dvc init`; under `dvc exp run` it `git add`s the folder's files at the end."""

        def _init_dvc(self) -> None:
            self._dvc_file = "dvc.yaml"  # read only when writing a dvc.yaml or saving an experiment: neither

    return _RepoFreeLive


class EpochLog:
    """A DVCLive `Live` over `directory`, started afresh and refilled with `rows` (the epochs already run)."""

    def __init__(self, directory: str | Path, rows: Iterable[dict[str, Any]] = ()) -> None:
        os.environ.setdefault("DVC_STUDIO_OFFLINE", "true")  # nothing leaves the machine
        directory = Path(directory)
        # what an earlier (killed) run left; Live's own clean-up is skipped when DVCLIVE_RESUME is set
        shutil.rmtree(directory / "plots" / "metrics", ignore_errors=True)
        (directory / "metrics.json").unlink(missing_ok=True)
        self.live = _repo_free_live()(str(directory), resume=False, report=None, save_dvc_exp=False,
                                      dvcyaml=None, monitor_system=False)
        (directory / "plots" / "metrics").mkdir(parents=True, exist_ok=True)  # a DVC output even with no epoch
        for row in rows:
            self.add(row)

    def add(self, row: dict[str, Any]) -> None:
        """Log one epoch's row (step = its epoch) and rewrite metrics.json."""
        self.live.step = int(row["epoch"])
        for name, value in logged_values(row).items():
            self.live.log_metric(name, value)
        self.live.next_step()

    def close(self) -> None:
        self.live.end()
