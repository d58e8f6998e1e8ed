"""Properties of the phase-2 alignment losses (DESIGN §5, Gretton et al. 2012)."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pad.losses.alignment import (
    ALPHAS,
    alignment_loss,
    cosine_alignment,
    distinct_batch_items,
    info_nce,
    linear_mmd,
    mk_mmd,
)

torch.set_num_threads(1)
KERNELS = ("gaussian", "laplacian")
fast = settings(max_examples=20, deadline=None)


def reference_mmd(x: torch.Tensor, y: torch.Tensor, kernel: str) -> float:
    """MK-MMD² written from the formula with Python loops, in float64."""
    z = [r.tolist() for r in torch.cat([x, y]).double()]
    n, m = len(x), len(y)

    def dist(a, b):
        d2 = sum((p - q) ** 2 for p, q in zip(a, b))
        return d2 if kernel == "gaussian" else math.sqrt(d2)

    pairs = [dist(a, b) for a in z for b in z]
    base = sum(pairs) / len(pairs)

    def k(a, b):
        d = dist(a, b)
        return sum(math.exp(-d / (2 * al * base)) for al in ALPHAS)

    xs, ys = z[:n], z[n:]
    kxx = sum(k(xs[i], xs[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    kyy = sum(k(ys[i], ys[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    kxy = sum(k(a, b) for a in xs for b in ys) / (n * m)
    return kxx + kyy - 2 * kxy


@fast
@given(seed=st.integers(0, 10_000), n=st.integers(2, 7), m=st.integers(2, 7), d=st.integers(1, 5),
       kernel=st.sampled_from(KERNELS))
def test_mmd_matches_float64_reference(seed, n, m, d, kernel):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, d, generator=g), torch.randn(m, d, generator=g) + 0.5
    got = mk_mmd(x.double(), y.double(), kernel=kernel).item()
    assert got == pytest.approx(reference_mmd(x, y, kernel), rel=1e-9, abs=1e-9)
    got32 = mk_mmd(x, y, kernel=kernel).item()
    assert got32 == pytest.approx(reference_mmd(x, y, kernel), rel=1e-4, abs=1e-5)


@fast
@given(seed=st.integers(0, 10_000), kernel=st.sampled_from(KERNELS), d=st.sampled_from([2, 16, 64]))
def test_mmd_near_zero_for_one_distribution_and_positive_for_shift_or_scale(seed, kernel, d):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(200, d, generator=g), torch.randn(150, d, generator=g)
    same = mk_mmd(x, y, kernel=kernel).item()
    shifted = mk_mmd(x, y + 1.0, kernel=kernel).item()
    scaled = mk_mmd(x, 3.0 * y, kernel=kernel).item()
    assert abs(same) < 0.1  # estimator noise of 5 summed kernels at n = 150-200 (seen up to 0.06)
    assert shifted > 0.2 and shifted > 5 * abs(same)
    assert scaled > 0.2 and scaled > 5 * abs(same)


@fast
@given(seed=st.integers(0, 10_000), kernel=st.sampled_from(KERNELS))
def test_mmd_symmetric(seed, kernel):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(9, 4, generator=g), 2 * torch.randn(5, 4, generator=g)
    assert mk_mmd(x, y, kernel).item() == pytest.approx(mk_mmd(y, x, kernel).item(), rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("kernel", KERNELS)
def test_mmd_gradient_reduces_mmd(kernel):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=g, requires_grad=True)
    y = torch.randn(64, 8, generator=g) + 2.0
    before = mk_mmd(x, y, kernel)
    before.backward()
    with torch.no_grad():
        after = mk_mmd(x - 0.5 * x.grad / x.grad.norm() * 8, y, kernel)
    assert after < before


@pytest.mark.parametrize("kernel", KERNELS)
def test_mmd_stable_at_llm_width_and_identical_rows(kernel):
    g = torch.Generator().manual_seed(2)
    big_x = (5 * torch.randn(64, 4096, generator=g)).requires_grad_()
    big_y = (5 * torch.randn(48, 4096, generator=g) + 1).requires_grad_()
    value = mk_mmd(big_x, big_y, kernel)
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert torch.isfinite(big_x.grad).all() and torch.isfinite(big_y.grad).all()

    row = torch.randn(1, 4096, generator=g)
    for x, y in [(row.repeat(8, 1), row.repeat(6, 1)),  # all rows identical: zero bandwidth
                 (torch.randn(8, 4096, generator=g), row.repeat(6, 1))]:  # one side collapsed
        x, y = x.clone().requires_grad_(), y.clone().requires_grad_()
        value = mk_mmd(x, y, kernel)
        value.backward()
        assert torch.isfinite(value)
        assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
    same = mk_mmd(row.repeat(8, 1), row.repeat(6, 1), kernel)
    assert same.item() == pytest.approx(0.0, abs=1e-5)


def test_mmd_low_precision_inputs_are_upcast():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(16, 32, generator=g), torch.randn(16, 32, generator=g) + 1
    half = mk_mmd(x.bfloat16(), y.bfloat16())
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(mk_mmd(x, y).item(), rel=0.05)


def test_mmd_needs_two_rows_per_side():
    with pytest.raises(ValueError, match="at least 2 rows"):
        mk_mmd(torch.randn(1, 3), torch.randn(4, 3))


@fast
@given(seed=st.integers(0, 10_000), kernel=st.sampled_from(KERNELS + ("linear", "cosine", "infonce")))
def test_padding_rows_do_not_change_alignment_loss(seed, kernel):
    g = torch.Generator().manual_seed(seed)
    n_items, d = 30, 6
    text_table, id_table = torch.randn(n_items + 1, d, generator=g), torch.randn(n_items + 1, d, generator=g)
    seqs = torch.randint(1, n_items + 1, (4, 7), generator=g)
    padded = torch.cat([torch.zeros(4, 5, dtype=torch.long), seqs, torch.zeros(4, 1, dtype=torch.long)], 1)
    items, items_padded = distinct_batch_items(seqs), distinct_batch_items(padded)
    assert items_padded.tolist() == sorted(set(seqs.flatten().tolist()))
    assert torch.equal(items, items_padded)
    value = alignment_loss(kernel, text_table[items_padded], id_table[items_padded], 0.1)
    assert torch.isfinite(value)
    with_padding = torch.cat([items, torch.zeros(3, dtype=torch.long)])  # what counting padding would do
    assert alignment_loss(kernel, text_table[with_padding], id_table[with_padding], 0.1) != value


@fast
@given(seed=st.integers(0, 10_000), temperature=st.sampled_from([0.05, 0.1, 1.0]))
def test_info_nce_prefers_true_pairing(seed, temperature):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randn(32, 16, generator=g)
    text = ids + 0.1 * torch.randn(32, 16, generator=g)
    perm = torch.roll(torch.arange(32), 1)  # a derangement: every pair broken
    assert info_nce(text, ids, temperature) < info_nce(text[perm], ids, temperature)
    assert info_nce(text, ids, temperature).item() == pytest.approx(info_nce(ids, text, temperature).item(), rel=1e-5)


def test_linear_and_cosine_zero_iff_means_match():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(50, 8, generator=g)
    assert linear_mmd(x, x[torch.randperm(50, generator=g)]).item() == pytest.approx(0.0, abs=1e-10)
    assert linear_mmd(x, x + 1).item() == pytest.approx(8.0, rel=1e-5)
    assert cosine_alignment(x, 7 * x).item() == pytest.approx(0.0, abs=1e-10)  # scale-free
    assert cosine_alignment(x + 1, -(x + 1)).item() > 1.0
    zero = torch.zeros(3, 8, requires_grad=True)
    cosine_alignment(zero, torch.ones(3, 8)).backward()
    assert torch.isfinite(zero.grad).all()


def test_alignment_loss_dispatch():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    assert alignment_loss("gaussian", x, y) == mk_mmd(x, y, "gaussian")
    assert alignment_loss("laplacian", x, y) == mk_mmd(x, y, "laplacian")
    assert alignment_loss("linear", x, y) == linear_mmd(x, y)
    assert alignment_loss("cosine", x, y) == cosine_alignment(x, y)
    assert alignment_loss("infonce", x, y, 0.5) == info_nce(x, y, 0.5)
    with pytest.raises(ValueError, match="unknown alignment kind"):
        alignment_loss("rbf", x, y)


def test_distinct_batch_items_limit_is_a_seeded_sorted_subset():
    seqs = torch.arange(0, 100).reshape(4, 25)
    everything = distinct_batch_items(seqs)
    assert everything.tolist() == list(range(1, 100))
    sub = distinct_batch_items(seqs, limit=10, generator=torch.Generator().manual_seed(0))
    again = distinct_batch_items(seqs, limit=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(sub, again) and sub.numel() == 10
    assert sub.tolist() == sorted(set(sub.tolist())) and set(sub.tolist()) <= set(everything.tolist())
    assert torch.equal(distinct_batch_items(seqs, limit=500), everything)


def test_non_halving_alphas_use_the_general_path():
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(6, 3, generator=g), torch.randn(5, 3, generator=g) + 1
    alphas = (0.3, 1.0, 3.0)
    manual = sum(mk_mmd(x.double(), y.double(), "gaussian", alphas=(a,)) for a in alphas)
    assert mk_mmd(x.double(), y.double(), "gaussian", alphas=alphas).item() == pytest.approx(manual.item(), rel=1e-9)
