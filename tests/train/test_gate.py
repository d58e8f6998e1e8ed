"""Fitting PAD's gate on held-out targets (pad/train/gate.py)."""
from __future__ import annotations

import torch

from pad.evaluation.ranking import RankingSplit
from pad.models import Expert
from pad.models.expert import IdEmbedding
from pad.models.gate import BucketGate
from pad.models.pad import PAD
from pad.train.gate import fit_gate, gate_loss

torch.set_num_threads(1)
N_ITEMS, N_USERS = 20, 120


class LastItem(torch.nn.Module):
    """A backbone whose user state is the last item's vector (so an identity table predicts that item)."""

    def forward(self, rows: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return rows


def expert(table: torch.Tensor) -> Expert:
    items = IdEmbedding(N_ITEMS, table.shape[1])
    with torch.no_grad():
        items.embedding.weight.copy_(table)
    return Expert(items, LastItem())


def split() -> RankingSplit:
    """Each user's target is the item after its last one (i -> i+1): an 'oracle' table can encode that."""
    gen = torch.Generator().manual_seed(0)
    last = torch.randint(1, N_ITEMS, (N_USERS,), generator=gen)
    inputs = torch.stack([torch.zeros_like(last), last], 1)  # (U, 2) left-padded
    return RankingSplit(inputs, last + 1, inputs.clone())


def models() -> PAD:
    """`good`: item i's vector overlaps i-1's and i+1's, so the state after i scores i+1 (and i-1) above the
    rest; `noise`: random vectors."""
    eye = torch.eye(N_ITEMS + 1)
    good = expert(5 * (eye + torch.roll(eye, 1, 1)))  # row i = e_i + e_{i+1}
    noise = expert(5 * torch.randn(N_ITEMS + 1, N_ITEMS + 1, generator=torch.Generator().manual_seed(1)))
    buckets = torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(N_ITEMS) % 2 + 1])
    return PAD({"good": good, "noise": noise}, BucketGate(2, 2), buckets)


def test_fitting_lowers_the_loss_and_trusts_the_expert_that_predicts_held_out_targets():
    model, data = models(), split()
    before = model.gate_weights().clone()
    losses = fit_gate(model, data, lr=0.1, epochs=5, batch_size=32, seed=0)
    assert losses[-1] < losses[0]
    after = model.gate_weights()
    assert torch.allclose(before, torch.full_like(before, 0.5))
    torch.testing.assert_close(after.sum(1), torch.ones(2))
    assert (after[:, 0] > after[:, 1]).all()  # more weight on the informative expert in every bucket


def test_only_the_gate_changes_and_history_items_are_never_the_answer():
    model, data = models(), split()
    experts = {k: v.clone() for k, v in model.experts.state_dict().items()}
    fit_gate(model, data, lr=0.1, epochs=2, batch_size=50, seed=0)
    assert all(torch.equal(v, model.experts.state_dict()[k]) for k, v in experts.items())
    with model.cached_items():
        query = {n: s[:, -1:] for n, s in model.encode(data.inputs).items()}
        finite = gate_loss(model, query, data.targets, data.history)
        assert torch.isfinite(finite)
        # a target inside the history would be masked out: the loss becomes infinite
        assert torch.isinf(gate_loss(model, query, data.inputs[:, -1], data.history))
