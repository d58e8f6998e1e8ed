"""RQ2/RQ3 (align variants), RQ5 (finetune ablations), the loss and the backbones (RQ7), as in RESULTS.md.

    python benchmarks/rq_sweep.py BASE OUT [variant ...]

BASE is a project folder where the default pipeline has run (params.yaml, data/prepared, data/embeddings,
models/pretrain.pt, models/align.pt: e.g. a clone after `dvc repro` on Prime Pantry). Each variant runs
its stage (align or finetune) in OUT/<name> with a copy of BASE's params changed as listed, reading BASE's
upstream outputs; `pipeline` variants run pretrain, align, finetune and evaluate there (new phase-1 model)
and report SASRec-or-backbone / alignment expert / PAD from metrics/evaluate.json. One JSON line per run. (`pad exp run rq3 ...` runs the same variants as DVC experiments,
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
        ("finetune", "no-align", {"finetune": {"experts": ["id", "llm"]}}),
        ("finetune", "only-align", {"finetune": {"experts": ["align"]}}),
        ("finetune", "gate-network", {"finetune": {"gate": "network"}}),
        ("pipeline", "loss-bce", {"model": {"loss": "bce"}}),
        ("pipeline", "backbone-gru4rec", {"model": {"backbone": "gru4rec"}}),
        ("pipeline", "backbone-caser", {"model": {"backbone": "caser"}})]
PIPELINE = ("pretrain", "align", "finetune", "evaluate")
only = sys.argv[3:]
by_name = {name: (stage, name, edit) for stage, name, edit in runs}
unknown = [n for n in only if n not in by_name]
if unknown:
    sys.exit(f"unknown variants {unknown}; known: {list(by_name)}")
for stage, name, edit in [by_name[n] for n in only] if only else runs:  # in the order given
    d = ROOT / name
    (d / "models").mkdir(parents=True, exist_ok=True)
    p = yaml.safe_load((BASE / "params.yaml").read_text())
    for sec, kv in edit.items():
        p[sec].update(kv)
    p["paths"].update(items=str(BASE / "data/prepared/items.parquet"), sequences=str(BASE / "data/prepared/sequences.parquet"),
                      embeddings=str(BASE / "data/embeddings/items.parquet"),
                      pretrain_model="models/pretrain.pt" if stage == "pipeline" else str(BASE / "models/pretrain.pt"),
                      align_model=str(BASE / "models/align.pt") if stage == "finetune" else "models/align.pt",
                      train_cache="cache/train")
    (d / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    t = time.time()
    for step in PIPELINE if stage == "pipeline" else (stage,):
        r = subprocess.run([sys.executable, str(STAGES / f"{step}.py")], cwd=d, capture_output=True, text=True)
        if r.returncode:
            break
    if stage == "pipeline" and r.returncode == 0:
        ev = json.loads((d / "metrics/evaluate.json").read_text())["test"]
        print(json.dumps({"name": name, "stage": stage, "s": round(time.time() - t), **{
            model: {"hr": ev[model]["hr_10"], "ndcg": ev[model]["ndcg_10"],
                    "cold": (ev[model]["cold"]["hr_10"], ev[model]["cold"]["ndcg_10"]),
                    "warm": (ev[model]["warm"]["hr_10"], ev[model]["warm"]["ndcg_10"])}
            for model in ("sasrec", "align", "pad")}}), flush=True)
        continue
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
