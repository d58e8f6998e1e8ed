"""Phase 1: pre-train the ID expert (SASRec / GRU4Rec / Caser) and evaluate it by full ranking."""
import dataclasses
from pathlib import Path

from pad.config import load_section, train_config
from pad.errors import friendly_errors
from pad.memory import reuse_freed_memory
from pad.io import write_json
from pad.train.checkpoint import save_expert
from pad.train.distributed import close_distributed, device_for, init_distributed, set_threads
from pad.train.loop import clear_resume
from pad.train.pretrain import final_metrics, load_prepared, pretrain


@friendly_errors
def main() -> None:
    paths = load_section("paths")
    model_cfg = load_section("model")
    cfg = train_config(load_section("pretrain"))
    ev = load_section("evaluate")
    rank, world = init_distributed()
    set_threads()
    data = load_prepared(paths.sequences, paths.items, model_cfg)
    reuse_freed_memory(data.n_items)  # pad.memory: only for a small catalogue
    expert, result = pretrain(data, model_cfg, cfg, ev, device=device_for(rank),
                              live_dir=Path(paths.dvclive) / "pretrain", resume_root=paths.train_cache,
                              world=world, files=(paths.sequences, paths.items))
    metrics = final_metrics(expert, data, result, ev)  # every rank scores its share of the users
    if rank == 0:
        save_expert(expert.cpu(), model_cfg, data.n_items, paths.pretrain_model,
                    best_epoch=result.best_epoch, valid=metrics["valid"], train=dataclasses.asdict(cfg))
        write_json(metrics, Path(paths.metrics) / "pretrain.json")
        write_json(result.timings(), Path(paths.timings) / "pretrain.json")
        clear_resume(result)
        print(f"pretrain: test HR@{ev.k} {metrics['test'][f'hr_{ev.k}']:.4f} "
              f"nDCG@{ev.k} {metrics['test'][f'ndcg_{ev.k}']:.4f} (best epoch {result.best_epoch})")
    close_distributed()


if __name__ == "__main__":
    main()
