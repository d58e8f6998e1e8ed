"""Does PAD stay at or above its best single expert where data is thin? (issue 14, DESIGN §6)

Runs the whole pipeline on small data over seeds, each configuration in its own project folder under
--work (a copy of pad/, stages/ and params.yaml with the configuration's values, stages run as `dvc repro`
runs them): `prepare` and `embed` once per configuration, then `pretrain`, `align`, `finetune`, `evaluate`
per seed (the top-level `seed`). A JSON row per (configuration, seed) is appended to --out as it finishes;
--md writes the mean ± std table and, per configuration, whether PAD's mean test nDCG@10 is at or above its
best single expert's (SASRec or the alignment expert; the LLM expert alone is only in the gate check's
cross-fitted validation numbers), overall and on cold items.

    nohup python benchmarks/small_data.py --work /tmp/small --out benchmarks/small_data.jsonl \\
        --md benchmarks/small_data.md > /tmp/small.log 2>&1 &
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from scale import make_project  # noqa: E402  (the same project copy the cost curve uses)

PP = str((REPO / "../shared/datasets/prime_pantry").resolve())
CONFIGS = {  # name -> params.yaml overrides
    "prime-pantry-1000": {"data.source": "pad_csv", "data.path": PP, "data.name": "Prime_Pantry",
                          "data.sample_users": 1000, "data.sample_seed": 0},
    "synthetic-1000": {"data.source": "synthetic", "data.synthetic.users": 1000},
}
MODELS = ("sasrec", "align", "pad")


def run(stage: str, folder: Path) -> None:
    proc = subprocess.run([sys.executable, f"stages/{stage}.py"], cwd=folder, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{folder}: {stage} failed:\n{proc.stderr[-3000:]}")


def one(config: str, seed: int, work: Path) -> dict:
    base = work / config / "data-source"
    if not (base / "data/embeddings/items.parquet").is_file():
        make_project(base, CONFIGS[config])
        for stage in ("prepare", "embed"):
            run(stage, base)
    folder = work / config / f"seed-{seed}"
    make_project(folder, {**CONFIGS[config], "seed": seed})
    shutil.copytree(base / "data", folder / "data", dirs_exist_ok=True)
    t0 = time.perf_counter()
    for stage in ("pretrain", "align", "finetune", "evaluate"):
        run(stage, folder)
    ev = json.loads((folder / "metrics/evaluate.json").read_text())
    ft = json.loads((folder / "metrics/finetune.json").read_text())
    prep = json.loads((base / "metrics/prepare.json").read_text())
    row = {"config": config, "seed": seed, "users": prep["users"], "items": prep["items"],
           "seconds": round(time.perf_counter() - t0, 1), "gate_check": ft.get("gate_check")}
    for split in ("valid", "test"):
        for m in MODELS:
            row[f"{split}.{m}.ndcg_10"] = ev[split][m]["ndcg_10"]
            row[f"{split}.{m}.cold.ndcg_10"] = ev[split][m]["cold"]["ndcg_10"]
    return row


def markdown(rows: list[dict]) -> str:
    out = ["| configuration | seeds | users / items | " + " | ".join(
        f"{m} test nDCG@10 ({part})" for part in ("all", "cold") for m in MODELS) + " | PAD ≥ best expert (all / cold) "
        "| gate check choices |", "|" + "---|" * 11]
    for config in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == config]

        def ms(key: str) -> tuple[float, float]:
            xs = [r[key] for r in rs]
            return statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0

        cells = []
        verdict = []
        for part in ("", "cold."):
            means = {m: ms(f"test.{m}.{part}ndcg_10") for m in MODELS}
            cells += [f"{means[m][0]:.3f} ± {means[m][1]:.3f}" for m in MODELS]
            best = max(means["sasrec"][0], means["align"][0])
            verdict.append("yes" if means["pad"][0] >= best else f"no ({means['pad'][0] - best:+.3f})")
        choices = ", ".join(f"{r['seed']}: {(r['gate_check'] or {}).get('choice', '-')}" for r in rs)
        out.append(f"| {config} | {len(rs)} | {rs[0]['users']} / {rs[0]['items']} | " + " | ".join(cells)
                   + f" | {' / '.join(verdict)} | {choices} |")
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", action="append", default=[], help=f"one of {', '.join(CONFIGS)} (default: all)")
    ap.add_argument("--seeds", default="2020,1,2")
    ap.add_argument("--work", type=Path, default=Path("/tmp/pad-small"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/small_data.jsonl")
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args()
    done = {(r["config"], r["seed"]) for r in map(json.loads, args.out.read_text().splitlines())} \
        if args.out.is_file() else set()
    for config in args.config or list(CONFIGS):
        for seed in map(int, args.seeds.split(",")):
            if (config, seed) in done:
                continue
            row = one(config, seed, args.work)
            with args.out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
            if args.md:
                rows = [json.loads(line) for line in args.out.read_text().splitlines()]
                args.md.write_text("# PAD against its best single expert on small data\n\n"
                                   "Generated by `benchmarks/small_data.py` (command in its docstring).\n\n"
                                   + markdown(rows))


if __name__ == "__main__":
    main()
