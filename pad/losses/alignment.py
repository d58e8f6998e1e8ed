"""Phase-2 alignment losses between the text side MLP(e_text) and the ID side e_id (DESIGN §5).

The paper (PAD, SIGIR 2025, Eq. of phase 2) aligns the two batch distributions with the multi-kernel
maximum mean discrepancy of Gretton et al. 2012 ("A Kernel Two-Sample Test", JMLR 13): a characteristic
kernel makes MMD zero only when the distributions are equal. `linear`, `cosine` and `infonce` are the
paper's RQ3 alternatives. Every function takes (n, d) text rows and (m, d) ID rows and returns a scalar.
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

Kernel = Literal["gaussian", "laplacian"]
AlignKind = Literal["gaussian", "laplacian", "linear", "cosine", "infonce"]

ALPHAS: tuple[float, ...] = (2**-3, 2**-2, 2**-1, 1.0, 2.0)
_EPS = 1e-12  # floor for bandwidths and squared distances: keeps 1/σ and sqrt'(0) finite


def distinct_batch_items(seqs: Tensor, limit: int | None = None, generator: torch.Generator | None = None) -> Tensor:
    """The batch's distinct non-padding item ids (padding = 0), sorted: the rows MMD is computed over.

    With `limit`, a uniform random subset of at most `limit` of them (still sorted): MK-MMD costs
    O(M²) time and memory in the M = 2·items rows, so a cap bounds the cost of large batches.
    """
    items = torch.unique(seqs[seqs != 0])
    if limit is None or items.numel() <= limit:
        return items
    keep = torch.randperm(items.numel(), generator=generator, device=items.device)[:limit]
    return items[keep.sort().values]


def _squared_distances(z: Tensor) -> Tensor:
    """(M, d) -> (M, M) squared Euclidean distances, centred first so ||a||²+||b||²-2ab does not cancel."""
    z = z - z.mean(0, keepdim=True).detach()  # distances are shift-invariant; centring cuts rounding error
    sq = (z * z).sum(1)  # (M,)
    d2 = torch.addmm(sq[:, None] + sq[None, :], z, z.T, alpha=-2.0).clamp_min(0.0)  # (M, M)
    return d2.fill_diagonal_(0.0)  # exact zeros, not rounding noise (which sqrt would blow up)


def mk_mmd(x: Tensor, y: Tensor, kernel: Kernel = "gaussian", alphas: Sequence[float] = ALPHAS) -> Tensor:
    """Multi-kernel MMD² between the rows of x (n, d) and y (m, d) (Gretton et al. 2012, Eq. 3 / Lemma 6).

    MMD² = 1/(n(n-1)) Σ_{i≠j} k(x_i,x_j) + 1/(m(m-1)) Σ_{i≠j} k(y_i,y_j) - 2/(nm) Σ_{i,j} k(x_i,y_j),
    the quadratic estimator with unbiased within-domain terms, k = Σ_α k_α (5 kernels by default):
      gaussian:  k_α(a,b) = exp(-||a-b||² / (2σ_α²)),  σ_α² = α · mean ||z_i-z_j||²
      laplacian: k_α(a,b) = exp(-||a-b|| / (2α·s)),    s   = mean ||z_i-z_j||
    where z = [x; y] stacked and the means run over all (n+m)² pairs, diagonal included, detached (as in
    the reference code's tllib GaussianKernel). The Laplacian bandwidth is chosen so that at the mean
    pairwise distance both kernels take the same value exp(-1/(2α)) (the reference code's unused
    LapKernel takes exp(-L1 / (α · mean L1)); we keep the Euclidean norm of DESIGN §5). Bandwidths are
    floored at 1e-12 and the square root's gradient is cut below d² = 1e-12, so identical rows give
    finite values and gradients.
    Computed in at least float32. Needs n, m >= 2.
    """
    n, m = x.shape[0], y.shape[0]
    if n < 2 or m < 2:
        raise ValueError(f"mk_mmd needs at least 2 rows per side, got {n} and {m}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    d2 = _squared_distances(torch.cat([x, y]).to(dtype))  # (n+m, n+m)
    if kernel == "gaussian":
        dist = d2
    elif kernel == "laplacian":
        dist = torch.where(d2 > 0, d2.clamp_min(_EPS).sqrt(), 0.0)  # finite sqrt'(0)
    else:
        raise ValueError(f"unknown MMD kernel {kernel!r}: use gaussian or laplacian")
    base = dist.mean().detach().clamp_min(_EPS)
    k = _kernel_sum(dist, -0.5 / base, alphas)  # (n+m, n+m)
    return torch.dot(k.reshape(-1), _estimator_weights(n, m, k).reshape(-1))


def _kernel_sum(dist: Tensor, coef: Tensor, alphas: Sequence[float]) -> Tensor:
    """Σ_α exp(coef · dist / α). For a halving chain of α (the default) one exp and repeated squaring,
    exp(c/(α/2)) = exp(c/α)², which saves most of the memory traffic of 5 full (M, M) passes."""
    alphas = sorted(alphas, reverse=True)
    if any(a != 2.0 * b for a, b in zip(alphas, alphas[1:])):
        return sum(torch.exp(dist * (coef / a)) for a in alphas)
    power = torch.exp(dist * (coef / alphas[0]))
    total = power
    for _ in alphas[1:]:
        power = power * power
        total = total + power
    return total


def _estimator_weights(n: int, m: int, like: Tensor) -> Tensor:
    """(n+m, n+m) weights w so that Σ w ⊙ K is the estimator: 1/(n(n-1)) and 1/(m(m-1)) off the diagonal
    of the within-domain blocks, -1/(nm) in both cross blocks, 0 on the diagonal."""
    w = torch.full((n + m, n + m), -1.0 / (n * m), dtype=like.dtype, device=like.device)
    w[:n, :n] = 1.0 / (n * (n - 1))
    w[n:, n:] = 1.0 / (m * (m - 1))
    return w.fill_diagonal_(0.0)


def linear_mmd(x: Tensor, y: Tensor) -> Tensor:
    """MMD² with the linear kernel k(a,b) = a·b (biased V-statistic): ||mean x - mean y||² (paper RQ3)."""
    return (x.mean(0) - y.mean(0)).pow(2).sum()


def cosine_alignment(x: Tensor, y: Tensor) -> Tensor:
    """MMD² with the cosine kernel k(a,b) = cos(a,b) (paper RQ3): ||mean x̂ - mean ŷ||², x̂ = x/||x||.

    Distributional (unpaired), like the other kernels: it compares the mean directions of the two sides.
    The reference code plugs the distance 1 - cos into its MMD, which is not a kernel and (up to the
    estimator's diagonal terms) is minus this quantity; we use the kernel itself, so minimising the
    loss aligns the two sides.
    """
    return linear_mmd(F.normalize(x, dim=-1), F.normalize(y, dim=-1))


def info_nce(text: Tensor, ids: Tensor, temperature: float = 0.1) -> Tensor:
    """Symmetric InfoNCE (van den Oord et al. 2018) over n paired rows (paper RQ3).

    Row i of `text` and row i of `ids` are the same item (positives); the other n-1 items of the batch
    are negatives. Cosine similarity / temperature, cross-entropy averaged over text→ID and ID→text.
    """
    if text.shape != ids.shape:
        raise ValueError(f"info_nce needs paired rows, got {tuple(text.shape)} and {tuple(ids.shape)}")
    logits = F.normalize(text, dim=-1) @ F.normalize(ids, dim=-1).T / temperature  # (n, n)
    labels = torch.arange(text.shape[0], device=text.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def alignment_loss(kind: AlignKind, text_vecs: Tensor, id_vecs: Tensor, temperature: float = 0.1) -> Tensor:
    """The phase-2 alignment term for `align.kernel` = kind (the λ-weighted part of the loss, DESIGN §5).

    text_vecs = MLP(e_text), id_vecs = e_id of the batch's distinct items (same order: row i = item i).
    """
    if kind in ("gaussian", "laplacian"):
        return mk_mmd(text_vecs, id_vecs, kernel=kind)
    if kind == "linear":
        return linear_mmd(text_vecs, id_vecs)
    if kind == "cosine":
        return cosine_alignment(text_vecs, id_vecs)
    if kind == "infonce":
        return info_nce(text_vecs, id_vecs, temperature)
    raise ValueError(f"unknown alignment kind {kind!r}: use gaussian, laplacian, linear, cosine or infonce")
