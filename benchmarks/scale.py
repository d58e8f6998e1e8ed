"""The cost curve (issue 13): wall time and peak RSS of every stage at the `scale` presets.

Each preset runs in its own project folder under --work (a copy of pad/, stages/, dvc.yaml and params.yaml
with the preset's `-S` values written into params.yaml), stage by stage exactly as `dvc repro` runs them
(`python stages/<stage>.py`), each under `/usr/bin/time -v`. A row is appended to --out (JSON lines) as soon
as its stage finishes, with the machine's load average before the stage; --md regenerates the Markdown
table and, per stage, the exponent b of a least-squares fit  seconds ∝ interactions^b  over the presets
measured so far. A preset's folder keeps its outputs, so a killed benchmark resumes at the first stage
without a row (`--resume`); every run, resumed or not, first copies this checkout's pad/ and stages/ into the
folder (a resumed stage runs today's code, not the code the folder was made with), and each row records the
commit it ran (`code`, with `+dirty` when pad/ or stages/ had uncommitted changes).

    nohup python benchmarks/scale.py --preset electronics-1-64 --preset electronics-1-16 \\
        --work /tmp/scale --out benchmarks/scale.jsonl --md benchmarks/scale.md > /tmp/scale.log 2>&1 &

Equivalent for one preset through DVC: `pad exp run scale --member <preset>`.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "embed", "pretrain", "align", "finetune", "evaluate")
sys.path.insert(0, str(REPO))


def preset_params(name: str) -> dict[str, object]:
    from pad.experiments import SETS

    members = {m.name: m.params for m in SETS["scale"].members}
    if name not in members:
        raise SystemExit(f"unknown preset {name!r}; known: {', '.join(members)}")
    return members[name]


def make_project(folder: Path, overrides: dict[str, object], resume: bool = False) -> None:
    """The preset's project folder: this checkout's pad/ and stages/ (always copied afresh) and params.yaml with
    the preset's values. Resuming keeps the folder's params.yaml, which must equal the preset's: outputs made
    under other params are not resumed."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("pad", "stages"):
        shutil.rmtree(folder / name, ignore_errors=True)
        shutil.copytree(REPO / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for key, value in overrides.items():
        *path, last = key.split(".")
        node = params
        for part in path:
            node = node[part]
        node[last] = value
    target = folder / "params.yaml"
    if resume and target.exists():
        if yaml.safe_load(target.read_text()) != params:
            raise SystemExit(f"{target}: params differ from the preset's with today's params.yaml; "
                             "rerun without --resume (or move the folder away)")
        return
    target.write_text(yaml.safe_dump(params, sort_keys=False))


def code_version() -> str:
    """This checkout's commit, `+dirty` when pad/ or stages/ have uncommitted changes ("unknown" outside git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "pad", "stages"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def timed(cmd: list[str], cwd: Path, log: Path) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds (user + system), peak RSS GiB, exit code) of `cmd` under /usr/bin/time -v;
    output appended to `log`."""
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    with log.open("a") as out:
        done = subprocess.run(["/usr/bin/time", "-v", *cmd], cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE,
                              text=True)
        out.write(done.stderr)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    parts = [float(p) for p in wall.group(1).split(":")] if wall else [math.nan]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): (\S+)", done.stderr))
    return seconds, cpu, (int(rss.group(1)) / 2**20 if rss else math.nan), done.returncode


def run_preset(name: str, work: Path, out: Path, resume: bool) -> None:
    done = {(r["preset"], r["stage"]) for r in read_rows(out)} if resume else set()
    folder = work / name
    overrides = preset_params(name)
    make_project(folder, overrides, resume)
    code = code_version()
    for stage in STAGES:
        if (name, stage) in done:
            continue
        load = os.getloadavg()[0]
        seconds, cpu, rss, rc = timed([sys.executable, f"stages/{stage}.py"], folder, work / f"{name}.log")
        row = {"preset": name, "stage": stage, "seconds": round(seconds, 1), "cpu_s": round(cpu, 1),
               "peak_rss_gib": round(rss, 2), "load_before": round(load, 2), "exit": rc,
               "cores": len(os.sched_getaffinity(0)), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "command": f"cd {folder} && python stages/{stage}.py", "code": code,
               "loss": overrides.get("model.loss"),
               **size_of(folder), **outcome(folder, stage)}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)
        if rc != 0:
            print(f"{name}/{stage} failed (exit {rc}); see {work / f'{name}.log'}", flush=True)
            return


def size_of(folder: Path) -> dict[str, int]:
    metrics = folder / "metrics/prepare.json"
    if not metrics.exists():
        return {}
    m = json.loads(metrics.read_text())
    return {"users": m["users"], "items": m["items"], "interactions": m["interactions"]}


def outcome(folder: Path, stage: str) -> dict[str, object]:
    """What the stage reached: epochs run / best epoch for a training stage; valid and test nDCG@10 of the
    models for evaluate (so a faster row cannot hide a worse model)."""
    metrics = folder / f"metrics/{stage}.json"
    if not metrics.exists():
        return {}
    m = json.loads(metrics.read_text())
    if stage == "evaluate":
        return {"ndcg_10": {split: {name: m[split][name]["ndcg_10"] for name in m[split]}
                            for split in ("valid", "test")}}
    return dict(m["train"]) if "train" in m else {}


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def markdown(rows: list[dict], notes: str = "") -> str:
    """The page: how it was made, one row per (preset, stage), the fitted exponents, then `notes` (the
    page's own `## Notes` section, kept across regenerations)."""
    lines = ["# Cost curve: every stage at the `scale` presets (issue 13)", "",
             "Generated by `benchmarks/scale.py` from `benchmarks/scale.jsonl` (one JSON row per stage, written as it",
             "finishes); each row's exact command is in the JSON (`cd <preset folder> && python stages/<stage>.py`,",
             "params = the repo's params.yaml + the preset's `-S` values, see `pad exp list`). Machine: the project's",
             "2-core, 24 GiB CPU box; `load before` = 1-minute load average when the stage started; `CPU s` = user +",
             "system seconds (about 2 x wall s when both cores work); `epochs` = run (best) for a training stage;",
             "evaluate's row gives test nDCG@10 of SASRec / PAD. Rows without a loss are stop 18's (`ce`, dense).", "",
             "| preset | loss | users | items | interactions | stage | wall s | CPU s | peak RSS GiB | epochs | load before "
             "| exit | finished |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['preset']} | {r.get('loss', 'ce')} | {r.get('users', '')} | {r.get('items', '')} | "
                     f"{r.get('interactions', '')} | {r['stage']} | {r['seconds']} | {r.get('cpu_s', '')} | "
                     f"{r['peak_rss_gib']} | {_reached(r)} | {r['load_before']} | {r['exit']} | {r['when']} |")
    lines += ["", "| stage | exponent b (seconds ∝ interactions^b), shared_ce rows | presets |", "|---|---|---|"]
    for stage in STAGES:
        pts = [(r["interactions"], r["seconds"]) for r in rows
               if r["stage"] == stage and r["exit"] == 0 and r.get("interactions") and r.get("loss") == "shared_ce"]
        if len({p[0] for p in pts}) >= 2:
            b = np.polyfit(np.log([p[0] for p in pts]), np.log([max(p[1], 0.1) for p in pts]), 1)[0]
            lines.append(f"| {stage} | {b:.2f} | {len(pts)} |")
        else:
            lines.append(f"| {stage} | (needs 2 sizes) | {len(pts)} |")
    return "\n".join(lines) + "\n" + (f"\n{notes}" if notes else "")


def _reached(row: dict) -> str:
    if "epochs" in row:
        return f"{row['epochs']} ({row['best_epoch']})"
    if "ndcg_10" in row:
        test = row["ndcg_10"]["test"]
        return f"test {test.get('sasrec', '')} / {test.get('pad', '')}"
    return ""


def own_notes(page: Path) -> str:
    """The `## Notes` section of an existing page (hand-written commentary), or ""."""
    text = page.read_text() if page.exists() else ""
    return text[text.index("## Notes"):] if "## Notes" in text else ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", action="append", default=[], help="a member of the `scale` set (repeatable)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/pad-scale"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/scale.jsonl")
    ap.add_argument("--md", type=Path, default=None, help="rewrite this table after every preset")
    ap.add_argument("--resume", action="store_true", help="skip stages that already have a row in --out")
    args = ap.parse_args()
    for name in args.preset:
        run_preset(name, args.work, args.out, args.resume)
        if args.md:
            args.md.write_text(markdown(read_rows(args.out), own_notes(args.md)))


if __name__ == "__main__":
    main()
