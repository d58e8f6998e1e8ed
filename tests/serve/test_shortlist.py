"""pad/serve/shortlist.py: int8 scores within their stated bound, and a top-k equal to the fp32 one,
whether or not the certificate needs the fallback; the Recommender serves through it when asked."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pad.serve import recommender
from pad.serve.recommender import INT8_FROM, int8_by_default
from pad.serve.shortlist import ShortlistScorer, int8_available

pytestmark = pytest.mark.skipif(not int8_available(), reason="torch has no fbgemm int8 kernels on this CPU")


def table_and_query(seed: int, n: int = 3000, dim: int = 48, spread: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randn(n, dim, generator=gen) * torch.rand(n, 1, generator=gen) * spread  # rows of unequal norms
    rows[0] = 0  # the padding row
    return rows.T.contiguous(), torch.randn(1, dim, generator=gen) * 2  # (D, N+1), (1, D)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), spread=st.floats(0.01, 100.0))
def test_int8_scores_are_within_the_bound(seed, spread):
    table, query = table_and_query(seed, spread=spread)
    scorer = ShortlistScorer(table)
    exact = (query @ table)[0]
    error = (exact - scorer.approx(query)).abs()
    assert (error <= scorer.error_bound(query)).all()
    assert error.max() > 0  # int8 is not exact: the bound has work to do


@pytest.mark.parametrize("shortlist", [64, 10])  # 10 = k: the certificate fails, the fallback rescores
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_k_equals_the_fp32_top_k(seed, shortlist):
    table, query = table_and_query(seed)
    scorer = ShortlistScorer(table, shortlist=shortlist)
    excluded = [0, 5, 17, *torch.topk((query @ table)[0], 3).indices.tolist()]  # the best three are "history"
    idx, values = scorer.top_k(query, 10, excluded)
    full = (query @ table)[0]
    full[excluded] = -float("inf")
    want_values, want_idx = torch.topk(full, 10)
    assert idx.tolist() == want_idx.tolist() and not set(idx.tolist()) & set(excluded)
    torch.testing.assert_close(values, want_values, rtol=1e-5, atol=1e-5)


def test_fallback_when_the_shortlist_cannot_certify():
    """Items differ by far less than int8's step: the int8 order is noise, a shortlist of k misses true top
    items and cannot certify; the fallback rescores what the bound cannot rule out."""
    gen = torch.Generator().manual_seed(4)
    rows = torch.randn(1, 32, generator=gen) + 1e-4 * torch.randn(2000, 32, generator=gen)  # (N+1, D) near-copies
    rows[0] = 0
    table, query = rows.T.contiguous(), torch.randn(1, 32, generator=gen)
    scorer = ShortlistScorer(table, shortlist=5)
    full = (query @ table)[0]
    full[0] = -float("inf")
    want = torch.topk(full, 5).indices
    assert set(torch.topk(scorer.approx(query)[1:], 5).indices.add(1).tolist()) != set(want.tolist())  # int8 alone misses
    idx, _ = scorer.top_k(query, 5, [0])
    assert idx.tolist() == want.tolist()


def test_recommender_top_k_through_int8_equals_fp32(ws, load):
    fp32, int8 = load(ws, int8=False), load(ws, int8=True)
    assert fp32.shortlist is None and int8.shortlist is not None
    for seq in ws["seqs"]:
        for repeats in (False, True):
            a, va = fp32.top_k(seq.tolist(), 7, allow_repeats=repeats)
            b, vb = int8.top_k(seq.tolist(), 7, allow_repeats=repeats)
            assert a.tolist() == b.tolist()
            torch.testing.assert_close(va, vb, rtol=1e-5, atol=1e-5)


def test_int8_by_default_only_for_a_large_catalogue_and_a_wide_table():
    assert not int8_by_default(INT8_FROM - 1, 192)  # small catalogue: fp32 is not the cost
    assert int8_by_default(INT8_FROM, 192)  # PAD's three d=64 experts folded: int8 measured faster
    assert not int8_by_default(423_191, 64)  # one d=64 expert (SASRec): int8 measured slower


def test_recommender_default_follows_the_catalogue_and_the_width(ws, load, monkeypatch):
    fp32 = load(ws)
    assert fp32.shortlist is None  # the fixture's catalogue is far below INT8_FROM
    n, width = fp32.n_items, len(fp32.folded)
    monkeypatch.setattr(recommender, "INT8_FROM", n)
    monkeypatch.setattr(recommender, "INT8_MIN_WIDTH", width)
    assert load(ws).shortlist is not None
    monkeypatch.setattr(recommender, "INT8_MIN_WIDTH", width + 1)
    assert load(ws).shortlist is None
