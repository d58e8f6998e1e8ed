"""Rank several PAD models over one split in one pass, scoring each distinct expert once per user chunk.

The evaluate stage ranks the phase-1 model, the alignment expert and PAD. Phase 3 keeps the ID and the
alignment experts fixed (DESIGN §6), so PAD's `id` and `align` experts are the phase-1 and phase-2 models
themselves, and their (users × items) logits, the bulk of a full-ranking pass, need computing only once
for all three models: three matmuls a user chunk instead of five. Experts are matched by content
(`same_expert`: classes, configuration, parameters and item table), never by name, so an expert that was
fine-tuned is scored on its own. Each model's ranks are those `rank_split` gives it alone, bit for bit:
the same chunks, the same backbone pass, the same (C, 1, d) × (d, N+1) matmul and the same gate (skipped
where it multiplies one expert by exactly 1: `weight_one`).
"""
from __future__ import annotations

from typing import Any, Iterator, Mapping

import torch
from torch import Tensor, nn

from pad.evaluation.ranking import RankingSplit, chunked_ranks, last_state, users_per_chunk
from pad.models.expert import Expert
from pad.models.gate import GlobalGate
from pad.models.pad import PAD

_CONFIG_TYPES = (bool, int, float, str, tuple)


def _config(module: nn.Module) -> list[tuple[str, str, dict[str, Any]]]:
    """Every submodule's class and plain settings (e.g. attention heads, which no parameter records)."""
    return [(name, type(m).__qualname__, {k: v for k, v in vars(m).items()
                                          if not k.startswith("_") and k != "training" and isinstance(v, _CONFIG_TYPES)})
            for name, m in module.named_modules()]


@torch.no_grad()
def same_expert(a: Expert, b: Expert) -> bool:
    """True when the two experts score every sequence and item alike: same classes and settings, equal
    parameters and buffers, and equal item tables (which also covers text inputs held outside the
    state dict)."""
    if a is b:
        return True
    if _config(a) != _config(b):
        return False
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys() or not all(torch.equal(sa[k], sb[k]) for k in sa):
        return False
    return torch.equal(a.item_vectors(), b.item_vectors())


def distinct_experts(models: Mapping[str, PAD]) -> tuple[list[Expert], dict[str, list[int]]]:
    """The distinct experts of all `models` and, per model, the index of each of its experts (`names` order)."""
    experts: list[Expert] = []
    index: dict[str, list[int]] = {}
    for model_name, model in models.items():
        index[model_name] = []
        for expert in model.experts.values():
            found = next((i for i, seen in enumerate(experts) if same_expert(seen, expert)), None)
            if found is None:
                experts.append(expert)
                found = len(experts) - 1
            index[model_name].append(found)
    return experts, index


@torch.no_grad()
def weight_one(model: PAD) -> bool:
    """A one-expert model whose gate multiplies by exactly 1 (`PAD.single`): its fused scores are its expert's
    logits, bit for bit (x · 1.0 = x for every float, NaN and inf included), so the multiply is skipped."""
    return (len(model.experts) == 1 and isinstance(model.gate, GlobalGate)
            and bool(model.gate.expert_weights()[0] == 1.0))


@torch.no_grad()
def rank_models(models: Mapping[str, PAD], split: RankingSplit, item_buckets: Tensor,
                user_chunk: int) -> dict[str, tuple[Tensor, Tensor]]:
    """{model name: (history-excluded ranks, unmasked ranks)} of every user's target (`rank_split` per
    model), each distinct expert's logits computed once per user chunk and shared by the models that hold it."""
    experts, index = distinct_experts(models)
    modes = [m.training for m in models.values()]
    for m in models.values():
        m.eval()
    try:
        tables = [e.item_vectors() for e in experts]  # (N+1, d) each
        device = tables[0].device
        moved = RankingSplit(split.inputs.to(device), split.targets, split.history)
        unit = {name: weight_one(model) for name, model in models.items()}  # once, not per chunk

        def score_chunk(inputs: Tensor) -> Iterator[tuple[str, Tensor]]:
            mask = inputs != 0
            logits = [last_state(e.backbone(t[inputs], mask)) @ t.T for e, t in zip(experts, tables)]  # (C, 1, N+1)
            for name, model in models.items():
                mine = [logits[i] for i in index[name]]
                yield name, (mine[0] if unit[name] else model.fuse(mine))[:, 0]  # (C, N+1)

        return chunked_ranks(score_chunk, list(models), moved, users_per_chunk(user_chunk, len(item_buckets)))
    finally:
        for m, mode in zip(models.values(), modes):
            m.train(mode)
