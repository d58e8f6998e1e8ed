"""Where to fit PAD's gate: on the last *training* targets or on the held-out validation targets?
Judged on validation data only (DESIGN §11): the validation users are split in two seeded halves; a gate
fitted on the last training targets (seq[-3] of every user, which every expert has trained on) and a gate
fitted on the validation targets of one half are both scored on the other half's validation targets, and
the other way round (2-fold cross-fitting). The test split is not read.

    python benchmarks/gate_fit_data.py PROJECT      # a project folder after `dvc repro` (models/finetune.pt)

Prints, per way of fitting, the held-out validation HR@10 / nDCG@10 (history excluded, mean over the
two folds' users) and the gate weights of the last fit, plus each expert alone on the same users.
"""
import json
import sys
from pathlib import Path

import torch

from pad.config import load_section
from pad.embed.store import load_embeddings
from pad.evaluation.ranking import hit_ndcg, rank_split
from pad.models.gate import build_gate
from pad.train.data import ranking_splits, read_sequences
from pad.train.finetune import load_pad_model
from pad.train.gate import _subset, fit_gate, user_ndcg
from pad.train.pretrain import load_prepared

root = Path(sys.argv[1]).resolve()
params = root / "params.yaml"
paths, model_cfg, cfg, ev = (load_section(s, params) for s in ("paths", "model", "finetune", "evaluate"))
at = lambda p: root / p  # noqa: E731
data = load_prepared(at(paths.sequences), at(paths.items), model_cfg)
text, _ = load_embeddings(at(paths.embeddings))
seqs = read_sequences(at(paths.sequences))
valid = data.splits["valid"]
train_targets = ranking_splits([s[:-1] for s in seqs], model_cfg.max_len)["valid"]  # target seq[-3], every user
fold = torch.randperm(len(valid.targets), generator=torch.Generator().manual_seed(cfg.seed)) % 2  # (U,)


def held_out_hits(model, split) -> tuple[torch.Tensor, torch.Tensor]:
    masked, _ = rank_split(model, split, model.item_buckets, ev.user_chunk)
    return hit_ndcg(masked, ev.k)


base = load_pad_model(at(paths.finetune_model), text)
for name, fit_split in (("train targets (seq[-3], all users)", lambda f: train_targets),
                        ("validation targets of the other half", lambda f: _subset(valid, fold != f))):
    hit, ndcg = torch.zeros(len(valid.targets)), torch.zeros(len(valid.targets))
    for f in (0, 1):
        model = load_pad_model(at(paths.finetune_model), text)
        model.gate = build_gate(cfg.gate, len(model.names), model.gate.n_buckets, model.names)
        fit_gate(model, fit_split(f), lr=cfg.gate_lr, epochs=cfg.gate_epochs, batch_size=cfg.batch_size,
                 seed=cfg.seed, user_chunk=ev.user_chunk)
        hit[fold == f], ndcg[fold == f] = held_out_hits(model, _subset(valid, fold == f))
    weights = model.gate_weights()
    print(json.dumps({"gate fitted on": name, f"held-out valid hr_{ev.k}": round(100 * float(hit.mean()), 4),
                      f"held-out valid ndcg_{ev.k}": round(100 * float(ndcg.mean()), 4),
                      "gate bucket 1": {n: round(w, 3) for n, w in zip(model.names, weights[0].tolist())},
                      "gate bucket B": {n: round(w, 3) for n, w in zip(model.names, weights[-1].tolist())}}),
          flush=True)
for name, expert in base.experts.items():
    print(json.dumps({"expert alone": name, f"valid ndcg_{ev.k}": round(100 * float(
        user_ndcg(expert, valid, base.item_buckets, ev.k, ev.user_chunk).mean()), 4)}), flush=True)
