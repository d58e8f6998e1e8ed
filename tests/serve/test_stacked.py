"""StackedSASRec (pad/serve/stacked.py): E SASRec backbones as one batched pass equal each module's last state."""
from __future__ import annotations

import pytest
import torch

from pad.models.gru4rec import GRU4Rec
from pad.models.sasrec import SASRec
from pad.serve import StackedSASRec


def _backbones(n: int, max_len: int = 6) -> list[SASRec]:
    torch.manual_seed(0)
    out = []
    for _ in range(n):
        b = SASRec(dim=8, blocks=2, heads=2, dropout=0.3, max_len=max_len).eval()
        with torch.no_grad():  # away from the N(0, 0.02) init, so every weight matters
            for p in b.parameters():
                p.normal_(0, 0.5)
        out.append(b)
    return out


@pytest.mark.parametrize("t", [1, 3, 6])  # one item, a short history, a full max_len window
def test_equals_each_modules_last_state(t):
    backbones = _backbones(3)
    x = torch.randn(3, t, 8)  # (E, T, d) the T real items' vectors per expert
    length = 6  # the modules see the history left-padded to max_len positions
    padded = torch.zeros(3, length, 8)
    padded[:, length - t:] = x
    mask = torch.arange(length) >= length - t  # (L,) True on real tokens
    want = torch.stack([b(padded[e, None], mask[None])[0, -1] for e, b in enumerate(backbones)])  # (E, d)
    got = StackedSASRec(backbones)(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_supports_only_same_shape_sasrec():
    assert StackedSASRec.supports(_backbones(2))
    assert not StackedSASRec.supports(_backbones(1) + _backbones(1, max_len=7))
    assert not StackedSASRec.supports(_backbones(1) + [GRU4Rec(dim=8, blocks=1, dropout=0.1)])
