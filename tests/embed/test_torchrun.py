"""The embed stage under `torchrun --nproc_per_node 2` (gloo on CPU) equals a single-process run."""
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from pad.config import PathsConfig
from pad.embed.catalogue import embed_catalogue
from pad.embed.store import load_embeddings

STAGE = Path(__file__).resolve().parents[2] / "stages" / "embed.py"


def test_two_ranks_match_one_process(tmp_path, texts, write_items, llm2vec_cfg):
    write_items(tmp_path / "items.parquet", texts)
    paths = {f.name: "unused" for f in dataclasses.fields(PathsConfig)}
    paths.update(items="items.parquet", embeddings="emb/items.parquet", embed_cache="cache", metrics="metrics")
    params = {"paths": paths, "embed": dataclasses.asdict(llm2vec_cfg)}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(STAGE)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(STAGE.parents[1])}
    proc = subprocess.Popen(torchrun, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=300)
    finally:  # never leave rank processes behind
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 5  # both ranks wrote their shards
    matrix, meta = load_embeddings(tmp_path / "emb/items.parquet")
    single = embed_catalogue(np.arange(1, 24, dtype=np.int32), texts, llm2vec_cfg, tmp_path / "single")
    np.testing.assert_allclose(matrix[1:], single.vectors, atol=1e-5)
    assert (matrix[0] == 0).all() and meta["dim"] == "32"
    assert (tmp_path / "metrics/embed.json").is_file()
