"""Phase 2: train the alignment expert (recommendation loss + align.lambda × alignment loss) and evaluate it."""
from pathlib import Path

from pad.config import load_section
from pad.embed.store import load_embeddings
from pad.errors import PadError
from pad.errors import friendly_errors
from pad.memory import reuse_freed_memory
from pad.io import write_json
from pad.train.align import align, align_metrics, save_align_expert
from pad.train.checkpoint import load_pretrained
from pad.train.distributed import close_distributed, device_for, init_distributed, set_threads
from pad.train.loop import clear_resume
from pad.train.pretrain import load_prepared


@friendly_errors
def main() -> None:
    paths = load_section("paths")
    model_cfg = load_section("model")
    cfg = load_section("align")
    ev = load_section("evaluate")
    rank, world = init_distributed()
    set_threads()
    pretrained, trained_cfg = load_pretrained(paths.pretrain_model)
    if trained_cfg != model_cfg:
        raise PadError(f"{paths.pretrain_model} was trained with other `model` params; rerun `dvc repro pretrain`")
    text_emb, _ = load_embeddings(paths.embeddings)
    data = load_prepared(paths.sequences, paths.items, model_cfg)
    reuse_freed_memory(data.n_items)  # pad.memory: only for a small catalogue
    files = (paths.sequences, paths.items, paths.embeddings, paths.pretrain_model)
    expert, result = align(data, pretrained, text_emb, model_cfg, cfg, ev, device=device_for(rank),
                           live_dir=Path(paths.dvclive) / "align", resume_root=paths.train_cache,
                           world=world, files=files)
    metrics = align_metrics(expert, data, result, ev)  # every rank scores its share of the users
    if rank == 0:
        save_align_expert(expert.cpu(), model_cfg, cfg, paths.align_model,
                          best_epoch=result.best_epoch, valid=metrics["valid"], train=metrics["train"])
        write_json(metrics, Path(paths.metrics) / "align.json")
        write_json(result.timings(), Path(paths.timings) / "align.json")
        clear_resume(result)
        print(f"align ({cfg.mode}, {cfg.kernel}, lambda {cfg.lambda_}): test HR@{ev.k} "
              f"{metrics['test'][f'hr_{ev.k}']:.4f} nDCG@{ev.k} {metrics['test'][f'ndcg_{ev.k}']:.4f} "
              f"(best epoch {result.best_epoch})")
    close_distributed()


if __name__ == "__main__":
    main()
