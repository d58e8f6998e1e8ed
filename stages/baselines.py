"""The baselines of Table 2 and newer peers (DESIGN §12): train each of `baselines.methods` under PAD's protocol
and write metrics/baselines.json and their per-user scores, metrics/baselines_per_user.parquet ({} and no rows
when the list is empty: the stage then reads no data and trains nothing)."""
from pathlib import Path

from pad.baselines.harness import run_baselines
from pad.config import load_section
from pad.embed.store import load_embeddings
from pad.evaluation.per_user import read_user_idx, write_per_user
from pad.evaluation.users import history_groups
from pad.errors import friendly_errors
from pad.memory import reuse_freed_memory
from pad.io import write_json
from pad.train.data import read_sequences
from pad.train.distributed import close_distributed, device_for, init_distributed, set_threads
from pad.train.pretrain import load_prepared


@friendly_errors
def main() -> None:
    paths = load_section("paths")
    cfg = load_section("baselines")
    model_cfg = load_section("model")
    ev = load_section("evaluate")
    rank, world = init_distributed()
    set_threads()
    metrics, timings, rows, n_buckets, groups = {}, {}, [], 0, None
    if cfg.methods:
        text_emb, _ = load_embeddings(paths.embeddings)
        data = load_prepared(paths.sequences, paths.items, model_cfg)
        reuse_freed_memory(data.n_items)  # pad.memory: only for a small catalogue
        sequences = read_sequences(paths.sequences)
        n_buckets, groups = data.n_buckets, history_groups(sequences)
        metrics, timings, rows = run_baselines(data, sequences, text_emb, model_cfg, cfg, ev, device=device_for(rank),
                                               resume_root=paths.train_cache, groups=groups,
                                               user_idx=read_user_idx(paths.sequences, len(sequences)), world=world,
                                               files=(paths.sequences, paths.items, paths.embeddings))
    if rank == 0:
        write_json(metrics, Path(paths.metrics) / "baselines.json")
        write_json(timings, Path(paths.timings) / "baselines.json")
        write_per_user(rows, Path(paths.metrics) / "baselines_per_user.parquet", ev.k, n_buckets, groups)
        print(f"baselines: {', '.join(cfg.methods) or 'none'} -> {Path(paths.metrics) / 'baselines.json'}")
    close_distributed()


if __name__ == "__main__":
    main()
