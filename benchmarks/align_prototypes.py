"""Prototypes of the alignment expert's item side (RESULTS.md, "How it got there"), outside the pipeline.

    python benchmarks/align_prototypes.py PROJECT --tag NAME [--init pre|prebb|scratch] [--idscale S]
        [--tower linear|mlp] [--tdrop P] [--epochs N] [--lam L] [--lr LR]

PROJECT: a folder after `dvc repro` on Prime Pantry (data/prepared, data/embeddings, models/pretrain.pt).
Item vector = e_id + tower(text); `--init pre` starts e_id (× --idscale) and the backbone from phase 1,
`prebb` only the backbone (fresh e_id), `scratch` nothing. Loss: `ce` (+ --lam × Gaussian MK-MMD).
Prints one JSON line (valid nDCG@10 of the kept epoch, test HR/nDCG, cold, warm); per-epoch log (DVCLive) in dvclive/NAME.
Rows of RESULTS.md: --epochs 4 (full table); --init prebb --epochs 8; --idscale 0.1 --epochs 8;
--init scratch --epochs 20; --init prebb --tower mlp --tdrop 0.1 --epochs 8 (one thread each:
OMP_NUM_THREADS=1).
"""
import copy, json, argparse
import torch
from torch import nn
from pad.config import ModelConfig, TrainConfig, EvaluateConfig
from pad.train.pretrain import load_prepared, valid_headline
from pad.train.checkpoint import load_pretrained
from pad.embed.store import load_embeddings
from pad.train.loop import fit, seed_everything
from pad.losses.recommendation import recommendation_loss
from pad.losses.alignment import alignment_loss, distinct_batch_items
from pad.models import Expert, build_backbone
from pad.models.text import TextMLP, _zero_padding
from pad.evaluation.ranking import evaluate

p = argparse.ArgumentParser()
p.add_argument("project")
p.add_argument("--tower", default="linear")  # linear | mlp
p.add_argument("--tdrop", type=float, default=0.0)
p.add_argument("--init", default="pre")  # pre | scratch
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--text_lr", type=float, default=0)
p.add_argument("--id_lr", type=float, default=0)
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--lam", type=float, default=0.0)
p.add_argument("--wd", type=float, default=0.0)
p.add_argument("--idscale", type=float, default=1.0)
p.add_argument("--tag", default="x")
a = p.parse_args()
torch.set_num_threads(int(__import__("os").environ.get("OMP_NUM_THREADS", "2")))
W = a.project
cfg = ModelConfig(backbone="sasrec", dim=64, blocks=2, heads=2, dropout=0.5, max_len=20, loss="ce", negatives=100)
data = load_prepared(f"{W}/data/prepared/sequences.parquet", f"{W}/data/prepared/items.parquet", cfg)
text, _ = load_embeddings(f"{W}/data/embeddings/items.parquet")
text = torch.as_tensor(text)
ev = EvaluateConfig(k=10, user_chunk=2048, tau_max_pairs=1000, seed=0, valid_users=0)

class Items(nn.Module):
    def __init__(self, id_init):
        super().__init__()
        self.register_buffer("text_emb", text.clone(), persistent=False)
        self.id_emb = nn.Embedding(text.shape[0], 64, padding_idx=0)
        if id_init is not None:
            with torch.no_grad(): self.id_emb.weight.copy_(id_init * a.idscale)
        else:
            nn.init.normal_(self.id_emb.weight, std=0.02)
        if a.tower == "linear":
            self.mlp = nn.Sequential(nn.Dropout(a.tdrop), nn.Linear(text.shape[1], 64))
        else:
            self.mlp = TextMLP(text.shape[1], 64, a.tdrop)
    def text_side(self, ids=None):
        t = self.text_emb if ids is None else self.text_emb[ids]
        return self.mlp(t)
    def id_side(self, ids=None):
        return self.id_emb.weight if ids is None else self.id_emb(ids)
    def forward(self, ids=None):
        return _zero_padding(self.id_side(ids) + self.text_side(ids), ids)

pre, _ = load_pretrained(f"{W}/models/pretrain.pt")
torch.manual_seed(2020)
if a.init == "pre":
    ex = Expert(Items(pre.item_vectors().detach()), copy.deepcopy(pre.backbone))
elif a.init == "prebb":
    ex = Expert(Items(None), copy.deepcopy(pre.backbone))
else:
    ex = Expert(Items(None), build_backbone(cfg))
def loss_fn(m, b):
    l = recommendation_loss(m, b, "ce")
    if a.lam:
        ids = distinct_batch_items(torch.cat([b.inputs, b.targets], 1), limit=512)
        l = l + a.lam * alignment_loss("gaussian", m.items.text_side(ids), m.items.id_side(ids), 0.1)
    return l
lrs = {}
if a.text_lr: lrs["items.mlp."] = a.text_lr
if a.id_lr: lrs["items.id_emb."] = a.id_lr
seed_everything(2020)
tc = TrainConfig(epochs=a.epochs, batch_size=256, lr=a.lr, weight_decay=a.wd, patience=3, seed=2020, time_budget_s=0)
r = fit(ex, data.train, loss_fn, valid_headline(data, ev), tc, live_dir=f"dvclive/{a.tag}", desc=a.tag, lr_by_prefix=lrs)
m = evaluate(ex, data.splits, data.item_buckets, 10, 2048, n_buckets=data.n_buckets)
t = m["test"]
print(json.dumps({"tag": a.tag, "args": vars(a), "best": r.best_epoch, "valid": m["valid"]["ndcg_10"], "test": [t["hr_10"], t["ndcg_10"]], "cold": [t["cold"]["hr_10"], t["cold"]["ndcg_10"]], "warm": [t["warm"]["hr_10"], t["warm"]["ndcg_10"]]}))
