"""Exact top-k over a large catalogue from an int8 copy of the scoring table (issue 13, serving at scale).

At 423k items a request's time is the scoring matmul, bound by memory bandwidth: PAD's folded table holds
E·d = 192 floats per item against SASRec's 64. Here the table is also kept as int8 rows (one scale per
item, fbgemm's dynamic int8 linear, 4× fewer bytes read), and the answer stays exact:

1. ŝ = int8 scores of every item; |s_i - ŝ_i| ≤ ε_i, where, with ŵ_i the dequantised row and q̂ the
   query as fbgemm quantises it (7-bit, `reduce_range`, so its int16 pair sums cannot saturate),
   s - ŝ = q·(w - ŵ) + (q - q̂)·ŵ, hence ε_i = |q|·|w_i - ŵ_i| + |q - q̂|·|ŵ_i| (Cauchy-Schwarz),
   |q - q̂| ≤ √D · step / 2 (rounding to the query's step), plus a 1e-5 relative slack for fp32 rounding;
2. the `shortlist` items of highest ŝ are rescored exactly in fp32; τ = their k-th exact score;
3. certificate: every other item has ŝ_j + ε_j ≤ τ, so none can beat the k-th: the top-k is exact.
   Where the certificate fails, every item with ŝ_j + ε_j > τ is rescored too (still exact, slower).

`tests/serve/test_shortlist.py` checks the bound and the exactness, with and without the fallback.
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import Tensor

# torch ships fbgemm's int8 kernels for x86 only; elsewhere the fp32 matmul serves.
ENGINES = {"x86", "fbgemm"}


def int8_available() -> bool:
    return bool(ENGINES & set(torch.backends.quantized.supported_engines))


class ShortlistScorer:
    """Exact top-k of `query @ table` for a (D, M+1) fp32 table (the Recommender's folded table), read
    through its int8 copy plus a certified rescoring of `shortlist` items."""

    def __init__(self, table: Tensor, shortlist: int = 256) -> None:
        self.table, self.shortlist = table, shortlist  # (D, M+1), as Recommender.folded
        self.requests = self.fallbacks = 0  # how often the certificate failed (benchmarks/serve.md)
        rows = table.T.contiguous()  # (M+1, D)
        scale = (rows.abs().amax(1) / 127).clamp_min(torch.finfo(torch.float32).tiny)  # (M+1,) one step per item
        codes = torch.round(rows / scale[:, None]).clamp(-127, 127)  # (M+1, D), in int8's symmetric range
        dequantised = codes * scale[:, None]
        self.residual = (rows - dequantised).norm(dim=1)  # (M+1,) |w_i - ŵ_i|
        self.norm = dequantised.norm(dim=1)  # (M+1,) |ŵ_i|
        with warnings.catch_warnings():  # the quantized-tensor constructors are marked deprecated in torch 2.13
            warnings.simplefilter("ignore")
            weight = torch.quantize_per_channel(rows, scale.double(), torch.zeros(len(rows), dtype=torch.long), 0,
                                                torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(weight, None)

    def approx(self, query: Tensor) -> Tensor:
        """(M+1,) int8 scores ŝ of a (1, D) query."""
        return torch.ops.quantized.linear_dynamic(query, self.packed, True)[0]  # reduce_range: 7-bit query

    def error_bound(self, query: Tensor) -> Tensor:
        """(M+1,) ε with |query @ table - approx(query)| ≤ ε, elementwise (module docstring, step 1)."""
        a, b = self._bound_weights(query)
        return self.residual * a + self.norm * b

    @staticmethod
    def _bound_weights(query: Tensor) -> tuple[float, float]:
        """(a, b) with ε = a·|w_i - ŵ_i| + b·|ŵ_i|: a = |q|, b = |q - q̂| bound + fp32 slack."""
        q = query[0]
        step = (q.max().clamp_min(0) - q.min().clamp_max(0)) / 127  # fbgemm's reduce_range query step
        q_norm = float(q.norm())
        return q_norm, math.sqrt(len(q)) * float(step) / 2 + 1e-5 * q_norm

    def top_k(self, query: Tensor, k: int, excluded: Sequence[int]) -> tuple[Tensor, Tensor]:
        """(k,) item indices and their exact scores, best first, never an `excluded` index. The caller
        ensures k ≤ the number of items left."""
        approx = self.approx(query)
        excluded = list(set(excluded))
        approx[excluded] = -math.inf
        short = torch.topk(approx, min(max(self.shortlist, k), len(approx) - len(excluded))).indices  # (S,)
        exact = (query @ self.table[:, short])[0]  # (S,)
        kth = torch.topk(exact, k).values[-1]
        a, b = self._bound_weights(query)
        bound = approx.add_(self.residual, alpha=a).add_(self.norm, alpha=b)  # (M+1,) ŝ + ε, in place
        bound[short] = -math.inf
        self.requests += 1
        if bound.max() > kth:  # the certificate fails: rescore every item it cannot rule out
            self.fallbacks += 1
            short = torch.cat([short, (bound > kth).nonzero()[:, 0]])
            exact = (query @ self.table[:, short])[0]
        values, at = torch.topk(exact, k)
        return short[at], values
