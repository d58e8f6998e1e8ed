"""Evaluate the three phases' models (full ranking, per bucket, item group and user group), Kendall's tau, plots,
and the per-user scores the paired tests of `pad report` read."""
import time
from pathlib import Path

import torch

from pad.config import load_section
from pad.embed.store import load_embeddings
from pad.errors import PadError
from pad.errors import friendly_errors
from pad.memory import reuse_freed_memory
from pad.evaluation.kendall import load_sequences_and_buckets
from pad.evaluation.per_user import read_user_idx, write_per_user
from pad.evaluation.phases import (bucket_rows, evaluate_models_per_user, gate_rows, history_rows, phase_tables,
                                   tau_report, write_tsv)
from pad.evaluation.users import describe_groups, history_groups
from pad.io import write_json
from pad.models.pad import PAD
from pad.train.align import load_align_expert
from pad.train.checkpoint import load_pretrained
from pad.train.data import ranking_splits, read_item_buckets
from pad.train.distributed import close_distributed, init_distributed, set_threads
from pad.train.finetune import load_pad_model


@friendly_errors
def main() -> None:
    start = time.perf_counter()
    paths = load_section("paths")
    ev = load_section("evaluate")
    rank, _ = init_distributed()  # under torchrun every rank scores its share of the users
    set_threads()
    text_emb, _ = load_embeddings(paths.embeddings)
    pretrained, model_cfg = load_pretrained(paths.pretrain_model)
    aligned = load_align_expert(paths.align_model, text_emb)
    pad = load_pad_model(paths.finetune_model, text_emb)
    buckets, n_buckets = read_item_buckets(paths.items)
    reuse_freed_memory(len(buckets) - 1)  # pad.memory: only for a small catalogue (ranking keeps it at any size)
    if not torch.equal(buckets, pad.item_buckets) or pad.gate.n_buckets != n_buckets:
        raise PadError(f"{paths.finetune_model} was trained with other item buckets; rerun `dvc repro`")
    sequences, item_bucket = load_sequences_and_buckets(paths.sequences, paths.items)
    models = {"sasrec": PAD.single(pretrained, buckets, n_buckets), "align": PAD.single(aligned, buckets, n_buckets),
              "pad": pad}
    groups = history_groups(sequences)
    metrics, per_user = evaluate_models_per_user(
        models, ranking_splits(sequences, model_cfg.max_len), buckets, ev.k, ev.user_chunk, n_buckets=n_buckets,
        groups=groups, user_idx=read_user_idx(paths.sequences, len(sequences)))
    metrics["history_groups"] = describe_groups(groups)
    metrics["tau"] = tau_report(pretrained.item_vectors().detach(), phase_tables(pretrained, aligned, pad),
                                sequences, item_bucket, n_buckets, ev.tau_max_pairs, ev.seed)
    metrics["models"] = {"backbone": model_cfg.backbone, "experts": "+".join(pad.names)}
    if rank == 0:
        write_json(metrics, Path(paths.metrics) / "evaluate.json")
        write_json({"seconds": round(time.perf_counter() - start, 1)}, Path(paths.timings) / "evaluate.json")
        write_tsv(bucket_rows(metrics, ev.k), Path(paths.plots) / "buckets_ndcg.tsv")
        write_tsv(gate_rows(pad), Path(paths.plots) / "gate_weights.tsv")
        write_tsv(history_rows(metrics, ev.k), Path(paths.plots) / "history_ndcg.tsv")
        write_per_user(per_user, Path(paths.metrics) / "per_user.parquet", ev.k, n_buckets, groups)
        test = metrics["test"]
        print("evaluate (test, history excluded): " + ", ".join(
            f"{name} HR@{ev.k} {m[f'hr_{ev.k}']:.4f} nDCG@{ev.k} {m[f'ndcg_{ev.k}']:.4f}" for name, m in test.items()))
    close_distributed()


if __name__ == "__main__":
    main()
