"""Joint ranking of the evaluate stage's models: shared experts are scored once, and every model's ranks
are those it gets alone, bit for bit."""
from __future__ import annotations

import copy

import torch

from pad.evaluation.joint import distinct_experts, rank_models, same_expert, weight_one
from pad.evaluation.ranking import rank_split
from pad.models import Expert, build_backbone
from pad.models.gate import build_gate
from pad.models.pad import PAD
from pad.models.text import AlignedItems
from pad.train.data import ranking_splits
from tests.evaluation.test_phases import CFG, N_BUCKETS, N_ITEMS, setup


def phase_models():
    """sasrec, align and a PAD whose id and align experts are loaded copies (other objects, same content)."""
    seqs, buckets, pre, aligned = setup()
    llm = Expert(AlignedItems(torch.randn(N_ITEMS + 1, 6), CFG.dim, CFG.dropout), build_backbone(CFG))
    pad = PAD({"id": copy.deepcopy(pre), "align": copy.deepcopy(aligned), "llm": llm},
              build_gate("bucket", 3, N_BUCKETS, ["id", "align", "llm"]), buckets)
    with torch.no_grad():
        pad.gate.raw.normal_()
    models = {"sasrec": PAD.single(pre, buckets, N_BUCKETS), "align": PAD.single(aligned, buckets, N_BUCKETS),
              "pad": pad}
    return seqs, buckets, models


def assert_same_ranks_as_alone(models, seqs, buckets, user_chunk):
    split = ranking_splits(seqs, CFG.max_len)["test"]
    joint = rank_models(models, split, buckets, user_chunk)
    for name, model in models.items():
        alone = rank_split(model, split, buckets, user_chunk)
        assert all(torch.equal(a, b) for a, b in zip(joint[name], alone)), name
    return joint


def test_fixed_experts_are_scored_once_and_every_model_ranks_as_alone():
    seqs, buckets, models = phase_models()
    experts, index = distinct_experts(models)
    assert len(experts) == 3 and index == {"sasrec": [0], "align": [1], "pad": [0, 1, 2]}
    joint = assert_same_ranks_as_alone(models, seqs, buckets, user_chunk=7)
    assert not torch.equal(joint["pad"][0], joint["sasrec"][0])  # the models still differ
    models["pad"].train()  # each model's mode is restored afterwards
    models["sasrec"].eval()
    rank_models(models, ranking_splits(seqs, CFG.max_len)["valid"], buckets, 16)
    assert models["pad"].training and not models["sasrec"].training


def test_a_fine_tuned_expert_is_not_mistaken_for_its_starting_point():
    seqs, buckets, models = phase_models()
    with torch.no_grad():
        models["pad"].experts["id"].backbone.blocks[0].qkv.weight.mul_(1.01)
    experts, index = distinct_experts(models)
    assert len(experts) == 4 and index["pad"][0] == 2
    assert_same_ranks_as_alone(models, seqs, buckets, user_chunk=16)


def test_same_expert_reads_settings_and_text_inputs_as_well_as_parameters():
    _, _, pre, aligned = setup()
    assert same_expert(pre, copy.deepcopy(pre)) and not same_expert(pre, aligned)
    one_head = copy.deepcopy(pre)
    one_head.backbone.blocks[0].heads = 1  # same parameters, other attention
    assert not same_expert(pre, one_head)
    other_text = copy.deepcopy(aligned)
    other_text.items.text_emb.add_(1.0)
    assert not same_expert(aligned, other_text)


def test_the_unit_gate_of_a_single_expert_is_skipped_only_where_it_is_exactly_one():
    seqs, buckets, models = phase_models()
    assert weight_one(models["sasrec"]) and not weight_one(models["pad"])
    models["sasrec"].experts["id"].items.embedding.weight.data[3, 0] = float("nan")  # NaN and inf pass through alike
    models["align"].experts["id"].items.id_emb.weight.data[5, 1] = float("-inf")
    assert_same_ranks_as_alone(models, seqs, buckets, user_chunk=9)
