"""Finetune variants (ablations) on a workspace with models/pretrain.pt + align.pt; test metrics in %. Run from the workspace:
   PYTHONPATH=/work/main python /work/main/benchmarks/finetune_variants.py --experts id,align --tag no-llm
"""
import argparse, dataclasses, json, time, sys
import torch
from pad.config import load_section
from pad.embed.store import load_embeddings
from pad.train.finetune import build_pad, finetune, finetune_metrics
from pad.train.pretrain import load_prepared

ap = argparse.ArgumentParser()
ap.add_argument("--experts", default="id,align,llm"); ap.add_argument("--gate", default="bucket")
ap.add_argument("--lr", type=float, default=None); ap.add_argument("--budget", type=float, default=None)
ap.add_argument("--epochs", type=int, default=None); ap.add_argument("--loss", default=None)
ap.add_argument("--wd", type=float, default=None); ap.add_argument("--gate-lr", type=float, default=None); ap.add_argument("--tag", default="run")
a = ap.parse_args()
torch.set_num_threads(2)
paths = load_section("paths"); mc = load_section("model"); cfg = load_section("finetune"); ev = load_section("evaluate")
if a.loss: mc = dataclasses.replace(mc, loss=a.loss)
cfg = dataclasses.replace(cfg, gate=a.gate, experts=tuple(a.experts.split(",")),
                          **{k: v for k, v in dict(lr=a.lr, time_budget_s=a.budget, epochs=a.epochs, weight_decay=a.wd).items() if v is not None})
data = load_prepared(paths.sequences, paths.items, mc)
emb, _ = load_embeddings(paths.embeddings)
torch.manual_seed(cfg.seed)
model = build_pad(cfg.experts, cfg.gate, mc, emb, data.item_buckets, pretrain_path=paths.pretrain_model, align_path=paths.align_model)
if a.gate_lr:  # probe: the gate's parameters in their own AdamW group with a larger lr
    _adamw = torch.optim.AdamW
    gate_ids = {id(p) for p in model.gate.parameters()}
    def _grouped(params, lr, weight_decay):
        params = list(params)
        return _adamw([{"params": [p for p in params if id(p) not in gate_ids]},
                       {"params": [p for p in params if id(p) in gate_ids], "lr": a.gate_lr}], lr=lr, weight_decay=weight_decay)
    torch.optim.AdamW = _grouped
t = time.time()
res = finetune(data, model, mc, cfg, ev, device=torch.device("cpu"), log_path=f"runs/{a.tag}.tsv", resume_root="cache/tune")
m = finetune_metrics(model, data, res, ev)
m["wall_s"] = round(time.time() - t, 1); m["args"] = vars(a)
json.dump(m, open(f"runs/{a.tag}.json", "w"), indent=1)
T = m["test"]
print(f"{a.tag}: test HR {T['hr_10']:.2f} nDCG {T['ndcg_10']:.2f} | cold {T['cold']['hr_10']:.2f} / {T['cold']['ndcg_10']:.2f} "
      f"| warm {T['warm']['hr_10']:.2f} / {T['warm']['ndcg_10']:.2f} | valid nDCG {m['valid']['ndcg_10']:.2f} "
      f"| epochs {res.epochs_run} best {res.best_epoch} {m['wall_s']}s | gate {json.dumps(m['gate'])}", flush=True)
