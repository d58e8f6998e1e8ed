"""The evaluate stage's report (DESIGN §7): the three phases' models side by side, Kendall's tau, plots.

Metrics layout (metrics/evaluate.json), one tree per split and model so `dvc metrics diff` lines up:
  {split}.{model}.{hr_10 | ndcg_10 | users | repeat_targets}, {split}.{model}.{warm|median|cold}.hr_10,
  {split}.{model}.buckets.{1..B}.ndcg_10, {split}.{model}.history.{short|medium|long}.ndcg_10 (users by
  training-history length, pad.evaluation.users), {split}.{model}.unmasked...    split: valid | test
  model: `sasrec` = the phase-1 ID model, whatever `model.backbone` is (the key stays fixed so runs with
  other backbones compare in one `dvc exp show` column; the backbone is in `models.backbone`), `align`
  = the phase-2 alignment expert alone, `pad` = the phase-3 PAD model.
  tau.{align | finetune | finetune_align}.{overall | buckets.{b} | n_pairs}: Kendall's tau-b (paper §4.3)
  between the phase-1 ID table and the alignment expert's ID table (`align`), the fine-tuned ID expert's
  table (`finetune`) and the fine-tuned alignment expert's ID table (`finetune_align`); a missing expert
  has no entry.
  history_groups.{short|medium|long}.{min_len | max_len | users}: the user groups' length ranges (cut points).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import polars as pl
from torch import Tensor

from pad.evaluation.joint import rank_models
from pad.evaluation.kendall import tau_discrepancy
from pad.evaluation.per_user import user_rows
from pad.evaluation.ranking import RankingSplit, hit_ndcg, rank_split, split_metrics
from pad.evaluation.users import HistoryGroups, by_history
from pad.io import atomic_path
from pad.models.expert import Expert
from pad.models.pad import EXPERTS, PAD


def evaluate_models(models: Mapping[str, PAD], splits: Mapping[str, RankingSplit], item_buckets: Tensor,
                    k: int, user_chunk: int, *, n_buckets: int,
                    groups: HistoryGroups | None = None) -> dict[str, dict[str, Any]]:
    """{split: {model name: metrics}} by full ranking (each item table computed once per split, and each
    expert that several PAD models share scored once: pad.evaluation.joint); with
    `groups`, each model's metrics also by user history length (`history`, in both protocols)."""
    return evaluate_models_per_user(models, splits, item_buckets, k, user_chunk, n_buckets=n_buckets,
                                    groups=groups)[0]


def evaluate_models_per_user(models: Mapping[str, PAD], splits: Mapping[str, RankingSplit], item_buckets: Tensor,
                             k: int, user_chunk: int, *, n_buckets: int, groups: HistoryGroups | None = None,
                             user_idx: np.ndarray | None = None) -> tuple[dict[str, dict[str, Any]], list[pl.DataFrame]]:
    """`evaluate_models`' metrics and, given `groups` and `user_idx`, the per-user rows of every split and
    model (pad.evaluation.per_user) from the same ranks."""
    if int(item_buckets.max()) > n_buckets:
        raise ValueError(f"item buckets go up to {int(item_buckets.max())}, but n_buckets is {n_buckets}")
    out: dict[str, dict[str, Any]] = {name: {} for name in splits}
    rows: list[pl.DataFrame] = []
    for split_name, split in splits.items():
        ranks = (rank_models(models, split, item_buckets, user_chunk) if all(isinstance(m, PAD) for m in models.values())
                 else {name: rank_split(model, split, item_buckets, user_chunk) for name, model in models.items()})
        for model_name, model in models.items():
            masked, unmasked = ranks[model_name]
            m = split_metrics(masked, unmasked, split, item_buckets, k, n_buckets=n_buckets)
            if groups is not None:
                m = with_history(m, masked, unmasked, groups, k)
                if user_idx is not None:
                    rows.append(user_rows(split_name, model_name, user_idx, split, masked, item_buckets, k,
                                          n_buckets, groups))
            out[split_name][model_name] = m
    return out, rows


def with_history(metrics: dict[str, Any], masked: Tensor, unmasked: Tensor, groups: HistoryGroups,
                 k: int) -> dict[str, Any]:
    """`metrics` with `history` (per user group) added after `buckets`, in both protocols."""
    out = {**metrics, "history": by_history(*hit_ndcg(masked, k), groups.group, k)}
    out["unmasked"] = {**metrics["unmasked"], "history": by_history(*hit_ndcg(unmasked, k), groups.group, k)}
    out["repeat_targets"] = out.pop("repeat_targets")  # keep the unmasked block last, as before
    out["unmasked"] = out.pop("unmasked")
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


def history_rows(metrics: Mapping[str, Any], k: int, split: str = "test") -> list[dict[str, Any]]:
    """plots/history_ndcg.tsv rows: user group (1 = short, 2 = medium, 3 = long history), then nDCG@k of each
    model (sasrec, align, pad)."""
    models = metrics[split]
    groups = next(iter(models.values()))["history"]
    return [{"group": g, **{name: m["history"][name_g][f"ndcg_{k}"] for name, m in models.items()}}
            for g, name_g in enumerate(groups, start=1)]


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
