"""Where to fit PAD's gate: on the last *training* targets or on the held-out validation targets?

    python benchmarks/gate_fit_data.py PROJECT      # a project folder after `dvc repro` (models/finetune.pt)

Loads the trained PAD model, resets its gate, fits it (same lr, epochs, seed as the finetune params) once on
each user's last training target (seq[-3], which every expert has trained on) and once on the validation
target (seq[-2], the default), and prints test HR@10 / nDCG@10 (history excluded) with the gate weights.
"""
import json
import sys
from pathlib import Path

import torch

from pad.config import load_section
from pad.embed.store import load_embeddings
from pad.evaluation.ranking import evaluate_split
from pad.models.gate import build_gate
from pad.train.data import ranking_splits, read_sequences
from pad.train.finetune import load_pad_model
from pad.train.gate import fit_gate
from pad.train.pretrain import load_prepared

root = Path(sys.argv[1]).resolve()
params = root / "params.yaml"
paths, model_cfg, cfg, ev = (load_section(s, params) for s in ("paths", "model", "finetune", "evaluate"))
torch.set_num_threads(2)
at = lambda p: root / p  # noqa: E731
data = load_prepared(at(paths.sequences), at(paths.items), model_cfg)
text, _ = load_embeddings(at(paths.embeddings))
seqs = read_sequences(at(paths.sequences))
held_out = {"train (seq[-3])": ranking_splits([s[:-1] for s in seqs if len(s) >= 4], model_cfg.max_len)["valid"],
            "valid (seq[-2])": data.splits["valid"]}
for name, split in held_out.items():
    model = load_pad_model(at(paths.finetune_model), text)
    model.gate = build_gate(cfg.gate, len(model.names), model.gate.n_buckets, model.names)
    fit_gate(model, split, lr=cfg.gate_lr, epochs=cfg.gate_epochs, batch_size=cfg.batch_size, seed=cfg.seed,
             user_chunk=ev.user_chunk)
    test = evaluate_split(model, data.splits["test"], data.item_buckets, ev.k, ev.user_chunk, n_buckets=data.n_buckets)
    weights = model.gate_weights()
    print(json.dumps({"gate fitted on": name, f"hr_{ev.k}": test[f"hr_{ev.k}"], f"ndcg_{ev.k}": test[f"ndcg_{ev.k}"],
                      "cold": [test["cold"][f"hr_{ev.k}"], test["cold"][f"ndcg_{ev.k}"]],
                      "gate bucket 1": dict(zip(model.names, weights[0].tolist())),
                      "gate bucket B": dict(zip(model.names, weights[-1].tolist()))}), flush=True)
