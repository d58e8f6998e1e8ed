"""Named experiment sets for the paper's research questions, queued as DVC experiments.

`pad exp queue rq3` runs `dvc exp run --queue -n rq3-<value> -S align.kernel=<value>` per member;
`pad exp run rq3` then runs the queue (`dvc exp run --run-all --jobs 1`). Extra `-S key=value`
overrides go to every member (e.g. `-S data.source=pad_csv`), so each set also holds the default
value: its row is the reference under the same overrides. `pad report --select 'rq3-*'` compares.
The `scale` set is presets, not a sweep: the synthetic source at the paper's data-set sizes (DESIGN §9).
"""
from __future__ import annotations

import math
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pad.errors import PadError
from pad.report import PARAMS_FILE, Experiment, load_exp_show, parse_exp_show, run_dvc

RUN_ALL = ["exp", "run", "--run-all", "--jobs", "1"]


@dataclass(frozen=True)
class Member:
    """One experiment of a set: its name suffix and the params it sets (`section.key` -> value)."""

    name: str
    params: dict[str, Any]


@dataclass(frozen=True)
class ExperimentSet:
    name: str
    question: str
    members: tuple[Member, ...]

    @property
    def keys(self) -> set[str]:
        """The params the set varies."""
        return {k for m in self.members for k in m.params}


def _sweep(key: str, values: list[Any]) -> tuple[Member, ...]:
    return tuple(Member(str(v), {key: v}) for v in values)


# The paper's data sets after its filters: (users, items); interactions 5,137,265 and 9,667,540.
ELECTRONICS, MIND = (598_307, 423_191), (630_235, 79_707)
# Early stopping ranks a fixed sample of this many validation users per epoch at every preset (all of
# them at 1/64); the final valid and test metrics rank every user (`evaluate.valid_users`).
SCALE_VALID_USERS = 10_000
# Every preset trains with `shared_ce` (one draw of this many negatives per batch, log-Q corrected) and
# row-wise item updates, so a step costs the same at any catalogue size (benchmarks/scale.md, step cost).
SCALE_NEGATIVES = 2048
# shared_ce's first few hundred steps plateau like ce's before it improves (benchmarks/scale.md, stop 19): the
# pretrain patience covers at least this many steps, i.e. more epochs when an epoch is short (1/64: 9).
PLATEAU_STEPS = 300


def _synthetic(name: str, users: int, items: int, min_len: int, max_len: int) -> Member:
    """A `scale` preset: the synthetic source at this size. min_len/max_len set the mean sequence length
    (README, Size presets); topics grow as sqrt(items) from params.yaml's 24 topics for 1,200 items, so
    items per topic grow too while the generator's per-step cost (O(topics)) stays small."""
    steps_per_epoch = users / 256  # params.yaml's pretrain.batch_size
    return Member(name, {"data.source": "synthetic", "data.synthetic.users": users, "data.synthetic.items": items,
                         "data.synthetic.topics": round(24 * math.sqrt(items / 1200)),
                         "data.synthetic.min_len": min_len, "data.synthetic.max_len": max_len,
                         "model.loss": "shared_ce", "model.negatives": SCALE_NEGATIVES, "model.item_updates": "rows",
                         "pretrain.patience": max(3, math.ceil(PLATEAU_STEPS / steps_per_epoch)),
                         "evaluate.valid_users": SCALE_VALID_USERS})


SCALE = (  # Electronics: 8.59 interactions a user; MIND: 15.34 (lengths above data.max_items = 23 are cut)
    *(_synthetic(f"electronics-1-{f}", round(ELECTRONICS[0] / f), round(ELECTRONICS[1] / f), 5, 18)
      for f in (64, 16, 4)),
    _synthetic("electronics", *ELECTRONICS, 5, 18),
    _synthetic("mind", *MIND, 5, 52),
)

SETS: dict[str, ExperimentSet] = {s.name: s for s in (
    ExperimentSet("default", "The committed params as they are (with --seeds N: the same run over N seeds)",
                  (Member("run", {}),)),
    ExperimentSet("rq2", "RQ2: alignment mode (anchored by the rec. loss, or not, frozen ID table, none)",
                  _sweep("align.mode", ["anchored", "non_anchored", "frozen", "none"])),
    ExperimentSet("rq3", "RQ3: alignment kernel / loss",
                  _sweep("align.kernel", ["gaussian", "laplacian", "linear", "cosine", "infonce"])),
    ExperimentSet("rq5", "RQ5: each expert removed, and the gate (global = no frequency awareness)", (
        Member("no-id", {"finetune.experts": ["align", "llm"]}),
        Member("no-align", {"finetune.experts": ["id", "llm"]}),
        Member("no-llm", {"finetune.experts": ["id", "align"]}),
        *(Member(f"gate-{g}", {"finetune.gate": g}) for g in ("global", "network", "bucket")),
    )),
    ExperimentSet("rq6", "RQ6: text encoder (llm2vec needs the model locally: --member llm2vec -S embed.model=PATH)", (
        Member("minilm", {"embed.encoder": "hf", "embed.model": "all-MiniLM-L6-v2"}),
        Member("llm2vec", {"embed.encoder": "llm2vec", "embed.model": "meta-llama/Meta-Llama-3-8B-Instruct"}),
    )),
    ExperimentSet("rq7", "RQ7: sequence backbone", _sweep("model.backbone", ["sasrec", "gru4rec", "caser"])),
    ExperimentSet("loss", "Recommendation loss (the paper's bce vs full-softmax ce)",
                  _sweep("model.loss", ["bce", "ce"])),
    ExperimentSet("scale", "Size presets: synthetic data at Electronics size (and 1/64, 1/16, 1/4 of it) and MIND size",
                  SCALE),
)}

_PLAIN = re.compile(r"[A-Za-z0-9_./-]+")
_QUOTE_ESCAPES = re.compile(r"(\\*)('|$)")


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def format_value(value: Any) -> str:
    """A Python value in the `-S key=value` (Hydra override) syntax: lists `[id,llm]`, odd strings quoted."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    text = str(value)
    if _PLAIN.fullmatch(text) and yaml.safe_load(text) == text and not _is_float(text):
        return text
    # Hydra quoted string: only backslashes before a quote (or the closing quote) are escapes.
    return "'" + _QUOTE_ESCAPES.sub(lambda m: m[1] * 2 + ("\\'" if m[2] else ""), text) + "'"


def parse_overrides(overrides: list[str]) -> dict[str, str]:
    """`["data.source=pad_csv"]` -> {"data.source": "pad_csv"}; values stay in the user's syntax."""
    out: dict[str, str] = {}
    for item in overrides:
        key, eq, value = item.partition("=")
        if not eq or not key.strip() or " " in key.strip():
            raise PadError(f"-S {item!r}: expected section.key=value (e.g. -S data.source=pad_csv)")
        out[key.strip()] = value
    return out


def get_set(name: str) -> ExperimentSet:
    if name not in SETS:
        raise PadError(f"unknown experiment set {name!r}; known: {', '.join(SETS)} (see `pad exp list`)")
    return SETS[name]


def parse_seeds(text: str, base: int) -> list[int]:
    """`--seeds`: a count N (the committed seed `base` and the N-1 after it) or a comma list of seeds."""
    try:
        seeds = [int(t) for t in text.split(",")] if "," in text else list(range(base, base + int(text)))
    except ValueError:
        raise PadError(f"--seeds {text!r}: give a count (5) or a comma list of seeds (2020,1,2)") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise PadError(f"--seeds {text!r}: need at least one seed, none negative or repeated")
    return seeds


def queue_commands(set_name: str, overrides: list[str] = (), members: list[str] = (),
                   seeds: list[int] = ()) -> list[list[str]]:
    """The `dvc exp run --queue` argument lists for a set (pure: nothing runs). With `seeds`, every member
    runs once per seed (`-S seed=<s>`, named `<set>-<member>-s<s>`; `pad report` averages them)."""
    exp_set = get_set(set_name)
    known = {m.name: m for m in exp_set.members}
    unknown = [m for m in members if m not in known]
    if unknown:
        raise PadError(f"set {set_name} has no member {', '.join(unknown)}; members: {', '.join(known)}")
    chosen = [known[m] for m in members] if members else list(exp_set.members)
    extra = parse_overrides(list(overrides))
    clash = sorted(set(extra) & exp_set.keys)
    if clash and len(chosen) > 1:
        raise PadError(f"-S {clash[0]} sets the param that set {set_name} varies; "
                       f"pick one member with --member ({', '.join(known)})")
    if seeds and "seed" in extra:
        raise PadError("-S seed=... and --seeds both set the seed; use one of them")
    commands = []
    for member in chosen:
        params = {k: format_value(v) for k, v in member.params.items()} | extra
        for seed in seeds or [None]:
            name = f"{set_name}-{member.name}" if seed is None else f"{set_name}-{member.name}-s{seed}"
            seeded = params if seed is None else params | {"seed": str(seed)}
            sets = [arg for k, v in seeded.items() for arg in ("-S", f"{k}={v}")]
            commands.append(["exp", "run", "--queue", "-n", name, *sets])
    return commands


def check_params_committed(root: Path) -> None:
    """Queued experiments start from the workspace: uncommitted params.yaml edits (often left by
    `dvc exp run -S`) would silently leak into every member, so refuse them."""
    head = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True, text=True)
    if head.returncode != 0:
        raise PadError(f"{root} is not a git repository with a commit: DVC experiments need one "
                       f"(`git init && git add -A && git commit`)")
    diff = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", PARAMS_FILE], cwd=root, capture_output=True)
    if diff.returncode != 0:
        raise PadError(f"{root / PARAMS_FILE} has uncommitted changes that every queued experiment would "
                       f"inherit: commit them, undo them (`git checkout {PARAMS_FILE}`), or pass --allow-dirty")


def queue_set(set_name: str, root: Path, overrides: list[str] = (), members: list[str] = (),
              allow_dirty: bool = False, seeds: list[int] = ()) -> list[str]:
    """Queue a set's experiments in the DVC project at `root`; returns their names."""
    commands = queue_commands(set_name, overrides, members, seeds)
    if not allow_dirty:
        check_params_committed(root)
    for args in commands:
        run_dvc(args, root)
    return [args[args.index("-n") + 1] for args in commands]


def run_set(set_name: str, root: Path, overrides: list[str] = (), members: list[str] = (),
            allow_dirty: bool = False, seeds: list[int] = ()) -> list[str]:
    """Queue a set, run the whole queue one experiment at a time, and fail if any of the set failed."""
    names = queue_set(set_name, root, overrides, members, allow_dirty, seeds)
    run_dvc(RUN_ALL, root, stream=True)
    failed = failed_names(parse_exp_show(load_exp_show(root)), names)
    if failed:
        raise PadError(f"experiment(s) failed: {', '.join(failed)}; see `dvc queue logs {failed[0]}`")
    return names


def failed_names(rows: list[Experiment], names: list[str]) -> list[str]:
    """Which of `names` failed (`dvc exp run --run-all` exits 0 even then); the latest run of a name counts."""
    latest = {row.name: row.status for row in rows}  # rows are oldest first
    return [n for n in names if latest.get(n) == "failed"]


def describe_sets() -> str:
    """`pad exp list`: every set, its question, and each member's experiment name and params."""
    lines = []
    width = max(len(s.name + "-" + m.name) for s in SETS.values() for m in s.members)
    for exp_set in SETS.values():
        lines.append(f"{exp_set.name}: {exp_set.question}")
        for m in exp_set.members:
            sets = " ".join(f"-S {shlex.quote(f'{k}={format_value(v)}')}" for k, v in m.params.items())
            lines.append(f"  {exp_set.name + '-' + m.name:<{width}} {sets}")
    return "\n".join(lines)
