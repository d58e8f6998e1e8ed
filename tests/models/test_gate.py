"""Properties of the frequency-aware gates (DESIGN §6)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pad.models.gate import BucketGate, GlobalGate, NetworkGate, build_gate, gate_table, reference_init

torch.set_num_threads(1)
KINDS = ("bucket", "network", "global")
fast = settings(max_examples=25, deadline=None)


def randomised(kind: str, n_experts: int, n_buckets: int, seed: int):
    """A gate with random (not initial) parameters, so properties do not hold by initialisation only."""
    torch.manual_seed(seed)
    gate = build_gate(kind, n_experts, n_buckets)
    with torch.no_grad():
        for p in gate.parameters():
            p.normal_(0, 0.5)
    return gate


@fast
@given(kind=st.sampled_from(KINDS), n_experts=st.integers(1, 4), n_buckets=st.integers(1, 12),
       seed=st.integers(0, 1000))
def test_weights_positive_and_sum_to_one(kind, n_experts, n_buckets, seed):
    gate = randomised(kind, n_experts, n_buckets, seed)
    buckets = torch.randint(0, n_buckets + 1, (3, 7))
    logits = [torch.randn(3, 7) * 5 for _ in range(n_experts)]
    extra = {"logits": logits} if kind == "network" else {}
    w = gate.weights(buckets, **extra)
    assert w.shape == (3, 7, n_experts)
    assert (w > 0).all()
    assert torch.allclose(w.sum(-1), torch.ones(3, 7), atol=1e-5)
    table = gate_table(gate)
    assert table.shape == (n_buckets, n_experts)
    assert (table > 0).all() and torch.allclose(table.sum(-1), torch.ones(n_buckets), atol=1e-5)


@fast
@given(kind=st.sampled_from(KINDS), n_experts=st.integers(1, 4), seed=st.integers(0, 1000))
def test_fused_is_weighted_sum_and_one_expert_is_identity(kind, n_experts, seed):
    gate = randomised(kind, n_experts, 10, seed)
    buckets = torch.randint(1, 11, (2, 5))
    logits = torch.randn(n_experts, 2, 5) * 3
    fused = gate(logits, buckets)
    w = gate.weights(buckets, logits) if kind == "network" else gate.weights(buckets)
    assert fused.shape == (2, 5)
    assert torch.allclose(fused, (w * logits.permute(1, 2, 0)).sum(-1), atol=1e-5)
    assert torch.allclose(gate(list(logits), buckets), fused)  # a list works like a stacked tensor
    if n_experts == 1:
        assert torch.allclose(fused, logits[0], atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_all_item_scoring_broadcasts_item_buckets(kind):
    """(B·L, N+1) logits per expert with one bucket per item (N+1,), as in full-catalogue scoring."""
    gate = randomised(kind, 3, 10, 0)
    item_bucket = torch.randint(1, 11, (51,))
    item_bucket[0] = 0  # the padding item
    logits = [torch.randn(8, 51) for _ in range(3)]
    fused = gate(logits, item_bucket)
    per_row = torch.stack([gate([l[r] for l in logits], item_bucket) for r in range(8)])
    assert fused.shape == (8, 51)
    assert torch.allclose(fused, per_row, atol=1e-5)


def test_global_gate_same_weights_for_every_bucket_and_bucket_gate_differs():
    glob = randomised("global", 3, 10, 1)
    table = gate_table(glob)
    assert torch.allclose(table, table[:1].expand_as(table))
    bucket = randomised("bucket", 3, 10, 1)
    table = gate_table(bucket)
    assert not torch.allclose(table, table[:1].expand_as(table))


@pytest.mark.parametrize("kind", KINDS)
def test_gates_learn(kind):
    """A gradient step moves weight towards the expert whose logits fit the labels."""
    gate = build_gate(kind, 2, 4)
    opt = torch.optim.SGD(gate.parameters(), lr=1.0)
    buckets = torch.randint(1, 5, (64,))
    labels = (torch.rand(64) < 0.5).float()
    good, bad = 6 * (labels - 0.5), torch.randn(64)
    before = gate_table(gate)[:, 0].mean()
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.binary_cross_entropy_with_logits(gate([good, bad], buckets), labels).backward()
        opt.step()
    assert gate_table(gate)[:, 0].mean() > before


def test_reference_init_and_errors():
    init = reference_init(["id", "align", "llm"], 10)
    assert init.shape == (3, 11)
    w = gate_table(BucketGate(3, 10, init))
    assert w[0, 0] > w[-1, 0] and w[0, 2] < w[-1, 2]  # warm buckets lean on ID, cold on text
    assert torch.equal(build_gate("bucket", 3, 10, ["id", "align", "llm"]).raw.detach(), init)
    with pytest.raises(ValueError, match="unknown experts"):
        reference_init(["id", "bert"], 10)
    with pytest.raises(ValueError, match="unknown gate"):
        build_gate("moe", 2, 10)
    with pytest.raises(ValueError, match="2 experts"):
        BucketGate(2, 10)([torch.zeros(3)], torch.ones(3, dtype=torch.long))
    assert isinstance(build_gate("network", 2, 10), NetworkGate)
    assert isinstance(build_gate("global", 2, 10), GlobalGate)


def test_removing_an_expert_removes_its_parameters():
    for kind in KINDS:
        three, two = build_gate(kind, 3, 10), build_gate(kind, 2, 10)
        assert sum(p.numel() for p in two.parameters()) < sum(p.numel() for p in three.parameters())


@pytest.mark.parametrize("kind", ["bucket", "network", "global"])
def test_a_pinned_gate_is_exactly_one_expert(kind):
    from pad.models.gate import build_gate, pin_gate

    gate = build_gate(kind, 3, 4, ["id", "align", "llm"])
    logits = [torch.randn(5, 7, generator=torch.Generator().manual_seed(e)) * 10 for e in range(3)]
    buckets = torch.randint(0, 5, (7,), generator=torch.Generator().manual_seed(9))
    for e in range(3):
        pin_gate(gate, e)
        w = gate.weights(buckets, logits) if kind == "network" else gate.weights(buckets)
        assert (w.argmax(-1) == e).all() and (w[..., e] == 1).all()
        assert torch.equal(gate(logits, buckets), logits[e])  # the same floats: the same ranking
