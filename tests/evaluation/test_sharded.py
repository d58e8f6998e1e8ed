"""Evaluation under torchrun: each of 2 CPU ranks (gloo) scores its block of users, every rank gets all
ranks back, and the metrics equal one process's exactly (the same scores, only split among processes)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPT = '''
import json, sys
import numpy as np, torch
import torch.distributed as dist
from pad.config import ModelConfig
from pad.evaluation.ranking import evaluate, flatten
from pad.models import build_id_expert
from pad.train.data import ranking_splits
from pad.train.distributed import close_distributed, init_distributed

rank, world = init_distributed()
torch.manual_seed(0)
expert = build_id_expert(ModelConfig("sasrec", 8, 1, 2, 0.0, 6, "ce", 1), 30).eval()
rng = np.random.default_rng(0)
seqs = [rng.integers(1, 31, size=int(rng.integers(3, 9))) for _ in range(53)]
buckets = torch.tensor([0] + [1 + i % 5 for i in range(30)])
seen = []  # the users this rank encodes
encode = expert.encode
expert.encode = lambda seqs: (seen.append(len(seqs)), encode(seqs))[1]
m = flatten(evaluate(expert, ranking_splits(seqs, 6), buckets, k=10, user_chunk=4, n_buckets=5))
per_rank = [None] * world
if world > 1:
    dist.all_gather_object(per_rank, sum(seen))
else:
    per_rank = [sum(seen)]
if rank == 0:
    json.dump({**m, "encoded_per_rank": per_rank}, open(sys.argv[1], "w"))
close_distributed()
'''


def test_two_ranks_give_one_process_metrics(tmp_path):
    script = tmp_path / "ev.py"
    script.write_text(SCRIPT)
    env_run = {"timeout": 240, "capture_output": True, "text": True}
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one.json")], **env_run)
    assert one.returncode == 0, one.stderr[-2000:]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path / "two.json")],
                         **env_run)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("one.json", "two.json"))
    assert a.pop("encoded_per_rank") == [2 * 53]  # valid + test, every user
    assert b.pop("encoded_per_rank") == [2 * 26, 2 * 27]  # each rank only its block
    assert a["test.users"] == 53 and a["test.hr_10"] > 0
    assert a == b
