"""Recommendation losses: hand-computed values, padding excluded, any scorer works."""
import math

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from pad.config import ModelConfig
from pad.losses.recommendation import (bce_loss, catalogue_logits, ce_loss, recommendation_loss, sampled_ce_loss,
                                       shared_ce_loss)
from pad.models import build_id_expert
from pad.train.data import Batch


def test_bce_by_hand():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0]])
    s = lambda x: 1 / (1 + math.exp(-x))
    want = (-math.log(s(2)) - math.log(1 - s(-1)) - math.log(s(0)) - math.log(1 - s(3))) / 2
    assert abs(float(bce_loss(logits)) - want) < 1e-6


def test_sampled_ce_is_softmax_over_positive_and_negatives():
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    want = -math.log(math.exp(1) / (math.exp(1) + math.exp(2) + math.exp(0.5)))
    assert abs(float(sampled_ce_loss(logits)) - want) < 1e-6


def test_shared_ce_leaves_accidental_hits_out_and_scales_the_drawn_negatives_to_the_catalogue():
    positive = torch.tensor([1.0, 0.0])
    negative = torch.tensor([[2.0, 0.5], [3.0, 1.0]])  # position 1's first shared item is its own target
    hits = torch.tensor([[False, False], [True, False]])
    n = 9  # position 0: 2 drawn stand for 8 non-targets (x4); position 1: 1 drawn stands for 8 (x8)
    want = (-math.log(math.exp(1) / (math.exp(1) + 4 * (math.exp(2) + math.exp(0.5))))
            - math.log(math.exp(0) / (math.exp(0) + 8 * math.exp(1)))) / 2
    assert abs(float(shared_ce_loss(positive, negative, hits, n)) - want) < 1e-6


def test_ce_is_softmax_over_the_real_items():
    logits = torch.tensor([[1.0, 2.0]])  # items 1 and 2; the padding item has no column
    want = -math.log(math.exp(1) / (math.exp(1) + math.exp(2)))
    assert abs(float(ce_loss(logits, torch.tensor([1]))) - want) < 1e-6


def test_catalogue_logits_leave_out_padding_for_any_scorer():
    """An Expert's own matmul and the generic path (column 0 of `score` dropped) agree; a huge padding
    logit never reaches the loss."""
    torch.manual_seed(0)
    expert = build_id_expert(ModelConfig("sasrec", 8, 1, 2, 0.0, 4, "ce", 2), 10).eval()

    class Generic:  # a scorer without `catalogue_scores`, padding logit huge
        encode = expert.encode

        def score(self, query, candidates=None):
            out = expert.score(query, candidates)
            out[..., 0] = 100.0
            return out

    query = expert.encode(torch.tensor([[0, 1, 2, 3]]))
    own = catalogue_logits(expert, query)
    assert own.shape == (1, 4, 10)
    torch.testing.assert_close(own, expert.score(query)[..., 1:])
    torch.testing.assert_close(catalogue_logits(Generic(), query), own)
    batch = Batch(torch.tensor([[0, 1, 2, 3]]), torch.tensor([[0, 2, 3, 4]]), None, torch.arange(1))
    torch.testing.assert_close(recommendation_loss(Generic(), batch, "ce"), recommendation_loss(expert, batch, "ce"))


def test_recommendation_loss_uses_only_real_positions():
    torch.manual_seed(0)
    cfg = ModelConfig("sasrec", 8, 1, 2, 0.0, 4, "ce", 2)
    expert = build_id_expert(cfg, 10).eval()
    inputs = torch.tensor([[0, 1, 2, 3], [0, 0, 4, 5]])
    targets = torch.tensor([[0, 2, 3, 4], [0, 0, 5, 6]])
    negatives = torch.tensor([[[7, 8]] * 4, [[9, 10]] * 4])
    batch = Batch(inputs, targets, negatives, torch.arange(2))
    logits = expert.score(expert.encode(inputs))  # (B, L, N+1)
    mask = targets != 0
    logits_all = logits[mask].clone()
    logits_all[:, 0] = -math.inf
    want_ce = F.cross_entropy(logits_all, targets[mask])
    torch.testing.assert_close(recommendation_loss(expert, batch, "ce"), want_ce)
    cand = torch.cat([targets[mask][:, None], negatives[mask]], -1)
    picked = logits[mask].gather(1, cand)
    torch.testing.assert_close(recommendation_loss(expert, batch, "sampled_ce"), sampled_ce_loss(picked))
    torch.testing.assert_close(recommendation_loss(expert, batch, "bce"), bce_loss(picked))
    shared = torch.tensor([5, 7, 9])  # one draw for the batch; 5 is the target of one position
    shared_batch = Batch(inputs, targets, shared, torch.arange(2), 10)
    flat = logits[mask]  # (M, N+1)
    hits = targets[mask][:, None] == shared
    kept = 3 - hits.sum(1, keepdim=True)
    neg = (flat[:, shared] + torch.log(9 / kept)).masked_fill(hits, -math.inf)
    want_shared = sampled_ce_loss(torch.cat([flat.gather(1, targets[mask][:, None]), neg], 1))
    torch.testing.assert_close(recommendation_loss(expert, shared_batch, "shared_ce"), want_shared)

    class Generic:  # a scorer without `shared_scores`: the shared ids are scored per position
        encode = expert.encode
        score = expert.score

    torch.testing.assert_close(recommendation_loss(Generic(), shared_batch, "shared_ce"), want_shared)


def test_shared_ce_with_every_item_shared_is_the_full_softmax():
    """With all N items drawn, shared_ce is ce (the target's own column is the masked hit)."""
    torch.manual_seed(0)
    expert = build_id_expert(ModelConfig("sasrec", 8, 1, 2, 0.0, 4, "shared_ce", 10), 10).eval()
    inputs, targets = torch.tensor([[0, 1, 2, 3], [0, 0, 4, 5]]), torch.tensor([[0, 2, 3, 4], [0, 0, 5, 6]])
    shared = Batch(inputs, targets, torch.arange(1, 11), torch.arange(2), 10)
    torch.testing.assert_close(recommendation_loss(expert, shared, "shared_ce"),
                               recommendation_loss(expert, Batch(inputs, targets, None, torch.arange(2)), "ce"))


def test_one_table_step_gives_the_same_ce_loss_and_gradients():
    """`ce` computes a text item table once per step; the loss and gradients are those of two passes."""
    from pad.models import Expert, SASRec
    from pad.models.text import TextItems
    from pad.losses.recommendation import _recommendation_loss
    from pad.train.data import Batch

    torch.manual_seed(0)
    expert = Expert(TextItems(torch.randn(13, 6), 4, 0.0), SASRec(4, 1, 1, 0.0, 5)).eval()
    inputs = torch.tensor([[0, 3, 4, 5, 6], [0, 0, 7, 8, 9]])
    targets = torch.tensor([[0, 4, 5, 6, 7], [0, 0, 8, 9, 10]])
    batch = Batch(inputs, targets, None, torch.arange(2))
    once = recommendation_loss(expert, batch, "ce")
    once.backward()
    grads = [p.grad.clone() for p in expert.parameters()]
    expert.zero_grad()
    twice = _recommendation_loss(expert, batch, "ce")
    twice.backward()
    assert torch.allclose(once, twice)
    assert all(torch.allclose(a, p.grad, atol=1e-6) for a, p in zip(grads, expert.parameters()))


@settings(max_examples=25, deadline=None)
@given(m=st.integers(1, 9), n=st.integers(1, 40), chunk=st.integers(1, 50), seed=st.integers(0, 10_000))
def test_chunked_ce_equals_ce_value_and_gradients(m, n, chunk, seed):
    """Any item chunking gives the full-softmax loss and its gradients (h and the item table)."""
    from pad.losses.recommendation import chunked_ce_loss

    g = torch.Generator().manual_seed(seed)
    h = (3 * torch.randn(m, 5, generator=g, dtype=torch.float64)).requires_grad_()
    table = torch.randn(n, 5, generator=g, dtype=torch.float64).requires_grad_()
    targets = torch.randint(1, n + 1, (m,), generator=g)
    want = ce_loss(h @ table.T, targets)
    want_h, want_t = torch.autograd.grad(want, (h, table))
    got = chunked_ce_loss(h, table, targets, chunk)
    got_h, got_t = torch.autograd.grad(got, (h, table))
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got_h, want_h)
    torch.testing.assert_close(got_t, want_t)


def test_big_catalogues_take_the_chunked_path_with_bounded_memory(monkeypatch):
    """Above the logits budget `ce` never holds (positions × catalogue) logits: with a budget of 64 logits
    and 60 items, no intermediate tensor during forward and backward exceeds 64 logits (+ the d-wide ones),
    and the loss and gradients equal the one-matmul path's."""
    import pad.losses.recommendation as rec
    from pad.models import build_id_expert
    from pad.config import ModelConfig
    from pad.train.data import Batch

    torch.manual_seed(0)
    expert = build_id_expert(ModelConfig("sasrec", 4, 1, 1, 0.0, 5, "ce", 1), 60).eval()
    batch = Batch(torch.tensor([[0, 3, 4, 5, 6], [0, 0, 7, 8, 9]]), torch.tensor([[0, 4, 5, 6, 7], [0, 0, 8, 9, 10]]),
                  None, torch.arange(2))
    sizes = []

    def track(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(track, lambda t: t):
        full = recommendation_loss(expert, batch, "ce")
    assert max(sizes) >= 7 * 60  # the one-matmul path keeps the (positions × items) logits for backward
    full_grads = torch.autograd.grad(full, list(expert.parameters()))
    monkeypatch.setattr(rec, "CE_CHUNK_LOGITS", 64)  # 7 positions -> chunks of 9 items
    sizes.clear()
    with torch.autograd.graph.saved_tensors_hooks(track, lambda t: t):
        chunked = recommendation_loss(expert, batch, "ce")
    chunked_grads = torch.autograd.grad(chunked, list(expert.parameters()))
    torch.testing.assert_close(chunked, full)
    for a, b in zip(chunked_grads, full_grads):
        torch.testing.assert_close(a, b)
    assert max(sizes) < 7 * 60  # the full (positions × items) logits were never saved for backward
