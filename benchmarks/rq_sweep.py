"""RQ2/RQ3 (align variants) and RQ5 (finetune ablations), one run after another, as in RESULTS.md.

    python benchmarks/rq_sweep.py BASE OUT [variant ...]

BASE is a project folder where the default pipeline has run (params.yaml, data/prepared, data/embeddings,
models/pretrain.pt, models/align.pt: e.g. a clone after `dvc repro` on Prime Pantry). Each variant runs
its stage (align or finetune) in OUT/<name> with a copy of BASE's params changed as listed, reading BASE's
upstream outputs; one JSON line per run. (`pad exp run rq3 ...` runs the same variants as DVC experiments,
with the downstream stages too.)"""
import json, subprocess, sys, time, yaml
from pathlib import Path
BASE = Path(sys.argv[1]).resolve()
ROOT = Path(sys.argv[2]).resolve()
STAGES = Path(__file__).resolve().parents[1] / "stages"
runs = [("align", "kernel-laplacian", {"align": {"kernel": "laplacian"}}),
        ("align", "kernel-linear", {"align": {"kernel": "linear"}}),
        ("align", "kernel-cosine", {"align": {"kernel": "cosine"}}),
        ("align", "kernel-infonce", {"align": {"kernel": "infonce"}}),
        ("align", "mode-none", {"align": {"mode": "none"}}),
        ("align", "mode-frozen", {"align": {"mode": "frozen"}}),
        ("align", "mode-non_anchored", {"align": {"mode": "non_anchored"}}),
        ("finetune", "no-llm", {"finetune": {"experts": ["id", "align"]}}),
        ("finetune", "gate-global", {"finetune": {"gate": "global"}}),
        ("finetune", "no-id", {"finetune": {"experts": ["align", "llm"]}}),
        ("finetune", "no-align", {"finetune": {"experts": ["id", "llm"]}})]
only = sys.argv[3:]
for stage, name, edit in runs:
    if only and name not in only:
        continue
    d = ROOT / name
    (d / "models").mkdir(parents=True, exist_ok=True)
    p = yaml.safe_load((BASE / "params.yaml").read_text())
    for sec, kv in edit.items():
        p[sec].update(kv)
    p["paths"].update(items=str(BASE / "data/prepared/items.parquet"), sequences=str(BASE / "data/prepared/sequences.parquet"),
                      embeddings=str(BASE / "data/embeddings/items.parquet"), pretrain_model=str(BASE / "models/pretrain.pt"),
                      align_model=str(BASE / "models/align.pt") if stage == "finetune" else "models/align.pt",
                      train_cache="cache/train")
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    t = time.time()
    r = subprocess.run([sys.executable, str(STAGES / f"{stage}.py")], cwd=d, capture_output=True, text=True)
    m = json.loads((d / f"metrics/{stage}.json").read_text()) if r.returncode == 0 else {}
    t_ = m.get("test", {})
    row = {"name": name, "stage": stage, "rc": r.returncode, "s": round(time.time() - t),
           "hr": t_.get("hr_10"), "ndcg": t_.get("ndcg_10"),
           "cold": (t_.get("cold", {}).get("hr_10"), t_.get("cold", {}).get("ndcg_10")),
           "warm": (t_.get("warm", {}).get("hr_10"), t_.get("warm", {}).get("ndcg_10")),
           "best_epoch": m.get("train", {}).get("best_epoch"), "align_loss": m.get("train", {}).get("align_loss")}
    print(json.dumps(row), flush=True)
    if r.returncode:
        print(r.stderr[-800:], flush=True)
