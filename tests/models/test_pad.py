"""The PAD model: one expert = that expert, removed experts own no parameters, cached tables = uncached."""
from __future__ import annotations

import pytest
import torch

from pad.config import ModelConfig
from pad.evaluation.ranking import RankingSplit, evaluate_split
from pad.models import Expert, build_backbone, build_id_expert
from pad.models import pad as pad_module
from pad.models.gate import BucketGate, build_gate
from pad.models.pad import PAD
from pad.models.text import AlignedItems, TextItems

torch.set_num_threads(1)
N_ITEMS, N_BUCKETS, TEXT_DIM = 30, 5, 12


def cfg(backbone: str = "sasrec") -> ModelConfig:
    return ModelConfig(backbone=backbone, dim=8, blocks=1, heads=2, dropout=0.2, max_len=6, loss="ce", negatives=3)


def experts(backbone: str = "sasrec", seed: int = 0) -> dict[str, Expert]:
    torch.manual_seed(seed)
    text = torch.randn(N_ITEMS + 1, TEXT_DIM)
    c = cfg(backbone)
    return {"id": build_id_expert(c, N_ITEMS),
            "align": Expert(AlignedItems(text, c.dim, c.dropout), build_backbone(c)),
            "llm": Expert(TextItems(text, c.dim, c.dropout), build_backbone(c))}


def buckets() -> torch.Tensor:
    return torch.cat([torch.zeros(1, dtype=torch.long), torch.arange(N_ITEMS) % N_BUCKETS + 1])


def seqs(batch: int = 4, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    s = torch.randint(1, N_ITEMS + 1, (batch, 6), generator=g)
    s[0, :3] = 0  # left padding
    return s


def randomise(gate: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in gate.parameters():
            p.normal_(0, 0.7)


@pytest.mark.parametrize("backbone", ["sasrec", "gru4rec", "caser"])
@pytest.mark.parametrize("kind", ["bucket", "network", "global"])
def test_one_expert_scores_like_that_expert(backbone, kind):
    expert = experts(backbone)["llm"].eval()
    model = PAD({"llm": expert}, build_gate(kind, 1, N_BUCKETS), buckets()).eval()
    randomise(model.gate)
    s = seqs()
    cand = torch.randint(1, N_ITEMS + 1, (4, 6, 3))
    with torch.no_grad():
        q, qe = model.encode(s), expert.encode(s)
        assert torch.allclose(model.score(q, cand), expert.score(qe, cand), atol=1e-5)
        assert torch.allclose(model.score(q, None), expert.score(qe, None), atol=1e-5)
        single = PAD.single(expert, buckets(), N_BUCKETS)
        assert torch.equal(single.score(single.encode(s), None), expert.score(qe, None))


def test_fused_score_is_the_gate_weighted_sum_per_candidate_bucket():
    ex = {k: e.eval() for k, e in experts().items()}
    model = PAD(ex, BucketGate(3, N_BUCKETS), buckets()).eval()
    randomise(model.gate)
    s = seqs()
    with torch.no_grad():
        fused = model.score(model.encode(s), None)  # (B, L, N+1)
        w = model.gate.table()[buckets()]  # (N+1, E)
        manual = sum(w[:, e] * ex[name].score(ex[name].encode(s), None) for e, name in enumerate(ex))
    assert fused.shape == (4, 6, N_ITEMS + 1)
    assert torch.allclose(fused, manual, atol=1e-5)


@pytest.mark.parametrize("removed", ["id", "align", "llm"])
def test_removing_an_expert_removes_its_parameters(removed):
    full = experts()
    kept = {k: e for k, e in full.items() if k != removed}
    model = PAD(kept, build_gate("bucket", 2, N_BUCKETS, list(kept)), buckets())
    names = [n for n, _ in model.named_parameters()]
    assert not any(n.startswith(f"experts.{removed}.") for n in names)
    assert all(any(n.startswith(f"experts.{k}.") for n in names) for k in kept)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == sum(p.numel() for e in kept.values() for p in e.parameters()) + 2 * (N_BUCKETS + 1)


def test_global_gate_gives_every_bucket_the_same_weights():
    model = PAD(experts(), build_gate("global", 3, N_BUCKETS), buckets())
    randomise(model.gate)
    w = model.gate_weights()
    assert w.shape == (N_BUCKETS, 3) and torch.allclose(w, w[:1].expand_as(w))
    assert not torch.allclose(w[0], torch.full((3,), 1 / 3))  # learned, not uniform


@pytest.mark.parametrize("kind", ["bucket", "network"])
def test_cached_item_tables_rank_like_uncached(kind, monkeypatch):
    monkeypatch.setattr(pad_module, "_NETWORK_CHUNK", 200)  # forces several row chunks in the network gate
    model = PAD(experts(), build_gate(kind, 3, N_BUCKETS, ["id", "align", "llm"]), buckets())
    randomise(model.gate)
    model.train()
    s = seqs(16, seed=3)
    model.eval()
    with torch.no_grad():
        plain = model.score(model.encode(s), None)
    with model.cached_items() as cached:
        assert not cached.training
        fast = cached.score(cached.encode(s), None)
        tables = cached._tables
    assert tables is not None and set(tables) == {"id", "align", "llm"}
    assert model._tables is None and not model.training  # restored (it was put in eval above)
    assert torch.allclose(plain, fast, atol=1e-5)
    assert torch.equal(plain.argsort(-1, descending=True)[..., :5], fast.argsort(-1, descending=True)[..., :5])
    split = RankingSplit(s, torch.randint(1, N_ITEMS + 1, (16,)), s)
    with model.cached_items():
        m_cached = evaluate_split(model, split, buckets(), 5, 5, n_buckets=N_BUCKETS)
    assert evaluate_split(model, split, buckets(), 5, 5, n_buckets=N_BUCKETS) == m_cached


def test_cached_items_restores_training_mode_and_needs_no_grad():
    model = PAD(experts(), build_gate("bucket", 3, N_BUCKETS), buckets()).train()
    with model.cached_items():
        assert all(not t.requires_grad for t in model._tables.values())
    assert model.training and model._tables is None


def test_gate_must_match_the_experts():
    with pytest.raises(ValueError, match="gate built for 2"):
        PAD(experts(), build_gate("bucket", 2, N_BUCKETS), buckets())
    with pytest.raises(ValueError, match="at least one"):
        PAD({}, build_gate("bucket", 1, N_BUCKETS), buckets())
