"""Phase 3: fine-tune PAD (ID + alignment + LLM experts, frequency-aware gate) and evaluate it."""
from pathlib import Path

import torch

from pad.config import load_section
from pad.embed.store import load_embeddings
from pad.errors import friendly_errors
from pad.memory import reuse_freed_memory
from pad.io import write_json
from pad.train.distributed import close_distributed, device_for, init_distributed, set_threads
from pad.train.finetune import build_pad, finetune, finetune_metrics, save_pad
from pad.train.loop import clear_resume
from pad.train.pretrain import load_prepared


@friendly_errors
def main() -> None:
    paths = load_section("paths")
    model_cfg = load_section("model")
    cfg = load_section("finetune")
    ev = load_section("evaluate")
    rank, world = init_distributed()
    set_threads()
    data = load_prepared(paths.sequences, paths.items, model_cfg)
    reuse_freed_memory(data.n_items)  # pad.memory: only for a small catalogue
    text_emb, _ = load_embeddings(paths.embeddings)
    torch.manual_seed(cfg.seed)  # fresh modules (the gate) start from seeded weights
    model = build_pad(cfg.experts, cfg.gate, model_cfg, text_emb, data.item_buckets, n_buckets=data.n_buckets,
                      pretrain_path=paths.pretrain_model, align_path=paths.align_model)
    files = (paths.sequences, paths.items, paths.embeddings, paths.pretrain_model, paths.align_model)
    result, gate_losses, check = finetune(data, model, model_cfg, cfg, ev, device=device_for(rank),
                                          live_dir=Path(paths.dvclive) / "finetune", resume_root=paths.train_cache,
                                          world=world, files=files)
    metrics = finetune_metrics(model, data, result, gate_losses, ev, check)  # every rank scores its share of the users
    if rank == 0:
        save_pad(model, model_cfg, cfg, paths.finetune_model, best_epoch=result.best_epoch, valid=metrics["valid"])
        write_json(metrics, Path(paths.metrics) / "finetune.json")
        write_json(result.timings(), Path(paths.timings) / "finetune.json")
        clear_resume(result)
        gate = cfg.gate if check is None or check.choice == "gate" else f"pinned to {check.choice} by gate_check"
        print(f"finetune ({'+'.join(model.names)}, gate {gate}): test HR@{ev.k} "
              f"{metrics['test'][f'hr_{ev.k}']:.4f} nDCG@{ev.k} {metrics['test'][f'ndcg_{ev.k}']:.4f} "
              f"(LLM expert best epoch {result.best_epoch})")
    close_distributed()


if __name__ == "__main__":
    main()
