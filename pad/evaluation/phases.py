"""The evaluate stage's report (DESIGN §7): the three phases' models side by side, Kendall's tau, plots.

Metrics layout (metrics/evaluate.json), one tree per split and model so `dvc metrics diff` lines up:
  {split}.{model}.{hr_10 | ndcg_10 | users | repeat_targets}, {split}.{model}.{warm|median|cold}.hr_10,
  {split}.{model}.buckets.{1..B}.ndcg_10, {split}.{model}.unmasked...    split: valid | test
  model: `sasrec` = the phase-1 ID model, whatever `model.backbone` is (the key stays fixed so runs with
  other backbones compare in one `dvc exp show` column; the backbone is in `models.backbone`), `align`
  = the phase-2 alignment expert alone, `pad` = the phase-3 PAD model.
  tau.{align | finetune | finetune_align}.{overall | buckets.{b} | n_pairs}: Kendall's tau-b (paper §4.3)
  between the phase-1 ID table and the alignment expert's ID table (`align`), the fine-tuned ID expert's
  table (`finetune`) and the fine-tuned alignment expert's ID table (`finetune_align`); a missing expert
  has no entry.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from torch import Tensor

from pad.evaluation.kendall import tau_discrepancy
from pad.evaluation.ranking import RankingSplit, evaluate
from pad.io import atomic_path
from pad.models.expert import Expert
from pad.models.pad import EXPERTS, PAD


def evaluate_models(models: Mapping[str, PAD], splits: Mapping[str, RankingSplit], item_buckets: Tensor,
                    k: int, user_chunk: int, *, n_buckets: int) -> dict[str, dict[str, Any]]:
    """{split: {model name: metrics}} by full ranking (`evaluate` computes each item table once per split)."""
    out: dict[str, dict[str, Any]] = {name: {} for name in splits}
    for model_name, model in models.items():
        for split, m in evaluate(model, dict(splits), item_buckets, k, user_chunk, n_buckets=n_buckets).items():
            out[split][model_name] = m
    return out


def id_table(expert: Expert) -> Tensor:
    """An expert's collaborative (ID) table: the ID embedding, or the ID side of an aligned item module."""
    items = expert.items
    return items.id_side() if hasattr(items, "id_side") else items()


def tau_report(before: Tensor, after: Mapping[str, Tensor], sequences: Sequence[np.ndarray],
               item_bucket: np.ndarray, n_buckets: int, max_pairs: int, seed: int) -> dict[str, Any]:
    """Kendall's tau discrepancy of each table in `after` against the phase-1 table `before`, per bucket."""
    return {name: tau_discrepancy(before, table, sequences, item_bucket, n_buckets, max_pairs, seed)
            for name, table in after.items()}


def phase_tables(pretrained: Expert, aligned: Expert, pad: PAD) -> dict[str, Tensor]:
    """The ID tables after alignment and after fine-tuning (where PAD has that expert)."""
    tables = {"align": id_table(aligned)}
    if "id" in pad.experts:
        tables["finetune"] = id_table(pad.experts["id"])
    if "align" in pad.experts:
        tables["finetune_align"] = id_table(pad.experts["align"])
    return {name: t.detach() for name, t in tables.items()}


def bucket_rows(metrics: Mapping[str, Any], k: int, split: str = "test") -> list[dict[str, Any]]:
    """plots/buckets_ndcg.tsv rows: bucket, then nDCG@k of each model (sasrec, align, pad)."""
    models = metrics[split]
    buckets = next(iter(models.values()))["buckets"]
    return [{"bucket": int(b), **{name: m["buckets"][b][f"ndcg_{k}"] for name, m in models.items()}}
            for b in buckets]


def gate_rows(pad: PAD) -> list[dict[str, Any]]:
    """plots/gate_weights.tsv rows: bucket, then the gate's weight per expert (0 for a removed expert)."""
    table = pad.gate_weights()  # (B, E)
    col = {name: e for e, name in enumerate(pad.names)}
    return [{"bucket": b + 1, **{name: round(float(table[b, col[name]]), 6) if name in col else 0.0
                                 for name in EXPERTS}} for b in range(len(table))]


def write_tsv(rows: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """A tab-separated file with a header (the columns of the first row), written atomically."""
    columns = list(rows[0]) if rows else []
    lines = ["\t".join(columns)] + ["\t".join(str(row[c]) for c in columns) for row in rows]
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
