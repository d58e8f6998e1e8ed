"""Backbones and the ID expert: causality, padding invariance, shared-table scoring."""
import pytest
import torch

from pad.config import ModelConfig
from pad.losses.recommendation import recommendation_loss
from pad.models import build_backbone, build_id_expert
from pad.train.data import Batch

BACKBONES = ["sasrec", "gru4rec", "caser"]


def cfg(backbone: str) -> ModelConfig:
    return ModelConfig(backbone=backbone, dim=16, blocks=2, heads=2, dropout=0.0, max_len=6, loss="ce", negatives=3)


def seqs() -> torch.Tensor:
    return torch.tensor([[0, 0, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [0, 0, 0, 0, 0, 7]])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_future_items_do_not_change_earlier_states(backbone):
    torch.manual_seed(0)
    expert = build_id_expert(cfg(backbone), 20).eval()
    s = seqs()
    before = expert.user_states(s)
    for t in range(1, 6):
        changed = s.clone()
        changed[:, t:] = torch.where(changed[:, t:] > 0, (changed[:, t:] + 7) % 20 + 1, 0)
        after = expert.user_states(changed)
        torch.testing.assert_close(after[:, :t], before[:, :t])
        assert not torch.allclose(after[:, t:], before[:, t:])


@pytest.mark.parametrize("backbone", BACKBONES)
def test_left_padding_changes_nothing(backbone):
    torch.manual_seed(0)
    c = cfg(backbone)
    backbone_module = build_backbone(c).eval()
    x = torch.randn(3, 6, 16)
    mask = seqs() != 0
    out = backbone_module(x, mask)
    noisy = torch.where(mask.unsqueeze(-1), x, torch.randn_like(x))  # garbage in padding slots
    torch.testing.assert_close(backbone_module(noisy, mask), out)
    longer = torch.cat([torch.randn(3, 3, 16), x], 1)  # three more leading pads (window > max_len)
    longer_mask = torch.cat([torch.zeros(3, 3, dtype=torch.bool), mask], 1)
    torch.testing.assert_close(backbone_module(longer, longer_mask)[:, 3:], out)
    assert (out[~mask] == 0).all()


@pytest.mark.parametrize("backbone", BACKBONES)
def test_candidate_scores_match_all_item_scores(backbone):
    torch.manual_seed(0)
    expert = build_id_expert(cfg(backbone), 20).eval()
    query = expert.encode(seqs())
    everything = expert.score(query)
    assert everything.shape == (3, 6, 21)
    cands = torch.randint(1, 21, (3, 6, 4))
    torch.testing.assert_close(expert.score(query, cands), everything.gather(-1, cands))


def test_padding_row_is_zero_and_gets_no_gradient():
    expert = build_id_expert(cfg("sasrec"), 20)
    expert.train()
    s = seqs()
    batch = Batch(s, torch.roll(s, -1, 1) * (s != 0), torch.randint(1, 21, (3, 6, 2)), torch.arange(3))
    loss = sum(recommendation_loss(expert, batch, kind) for kind in ("ce", "bce", "sampled_ce"))
    loss.backward()
    assert (expert.item_vectors()[0] == 0).all()
    assert (expert.items.embedding.weight.grad[0] == 0).all()


def test_unknown_backbone_is_rejected():
    with pytest.raises(ValueError):
        build_backbone(cfg("bert4rec"))
