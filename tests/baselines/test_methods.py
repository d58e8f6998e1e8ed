"""Each baseline's own mechanism does what its docstring says (pad/baselines/<method>.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pad.baselines import alphafuse, hybrid, llmesr, llminit, morec
from pad.baselines.harness import train_method
from pad.baselines.whiten import whitened_pca
from pad.errors import PadError
from tests.baselines.conftest import DIM, EV, N_ITEMS, TEXT_DIM, base_cfg, model_cfg, prepared, sequences, text


def trained(method: str, tmp_path, **kw):
    cfg = model_cfg()
    torch.manual_seed(0)
    return train_method(method, prepared(cfg), sequences(), text(), cfg, base_cfg(epochs=2, **kw), EV,
                        device=torch.device("cpu"), resume_root=tmp_path)[0]


def principal(t: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, eigenvalues descending, eigenvectors as columns) of the items' text covariance (ddof 1), by numpy."""
    x = t[1:].double().numpy()
    mean = x.mean(0)
    vals, vecs = np.linalg.eigh(np.cov(x - mean, rowvar=False))
    return mean, vals[::-1], vecs[:, ::-1]


def test_whitened_pca_is_the_scaled_projection_on_the_top_principal_directions():
    t = text()
    table = whitened_pca(t, DIM, std=0.5).double().numpy()
    mean, vals, vecs = principal(t)
    want = (t[1:].double().numpy() - mean) @ vecs[:, :DIM] / np.sqrt(vals[:DIM]) * 0.5
    signs = np.sign((table[1:] * want).sum(0))  # an eigenvector's sign is arbitrary
    np.testing.assert_allclose(table[1:], want * signs, atol=1e-4)
    assert (table[0] == 0).all()
    np.testing.assert_allclose(table[1:].std(0, ddof=1), 0.5, rtol=1e-4)
    with pytest.raises(PadError, match="fewer than model.dim"):
        whitened_pca(t, TEXT_DIM + 1)
    flat = t.clone()
    flat[1:, 3:] = 0  # the texts span 3 directions
    with pytest.raises(PadError, match="span only 3 directions"):
        whitened_pca(flat, DIM)


def test_hybrid_sums_a_trained_id_table_and_a_trained_projection_of_the_frozen_text(tmp_path):
    cfg = model_cfg()
    torch.manual_seed(0)
    before = hybrid.build(text(), cfg, base_cfg())
    expert = trained("hybrid", tmp_path)
    items = expert.items
    assert torch.equal(items.text.text_emb, text())  # the text is a frozen buffer ...
    assert all(p is not items.text.text_emb for p in expert.parameters())
    assert "text_emb" not in " ".join(expert.state_dict())  # ... not saved with the weights
    for name in ("items.ids.embedding.weight", "items.text.mlp.weight"):
        assert not torch.equal(before.state_dict()[name], expert.state_dict()[name]), f"{name} did not train"
    table = expert.item_vectors()
    torch.testing.assert_close(table, items.ids() + items.text.mlp(text()) * (torch.arange(N_ITEMS + 1) > 0)[:, None])
    assert (table[0] == 0).all()


def test_morec_has_no_id_table_and_items_of_equal_text_get_equal_vectors(tmp_path):
    cfg = model_cfg()
    expert = morec.build(text(), cfg, base_cfg(morec_tower="mlp"))
    assert not any(isinstance(m, nn.Embedding) for m in expert.items.modules())  # (SASRec has position embeddings)
    t = text()
    t[2] = t[1]
    twin = morec.build(t, cfg, base_cfg(morec_tower="linear")).eval()
    table = twin.item_vectors()
    assert torch.equal(table[1], table[2]) and (table[0] == 0).all()


def test_llminit_starts_from_the_text_pca_and_then_trains_it(tmp_path):
    cfg = model_cfg()
    start = llminit.build(text(), cfg, base_cfg(text_std=0.3)).item_vectors().detach()
    torch.testing.assert_close(start, whitened_pca(text(), DIM, 0.3))
    expert = trained("llminit", tmp_path, text_std=0.3)
    after = expert.item_vectors().detach()
    assert not torch.equal(after, start) and (after[0] == 0).all()
    assert not any(isinstance(b, torch.Tensor) and b.shape[0] == N_ITEMS + 1 for b in expert.buffers())  # no text kept


def test_alphafuse_id_part_stays_in_the_null_space_after_training(tmp_path):
    null = 6
    semantic = whitened_pca(text(), DIM)
    expert = trained("alphafuse", tmp_path, null_dim=null)
    items = expert.items
    table = expert.item_vectors().detach()
    assert torch.equal(items.semantic, semantic)  # the semantic part is frozen
    assert not items.semantic.requires_grad and [n for n, _ in items.named_parameters()] == ["ids.weight"]
    id_part = table - semantic
    assert (id_part[:, :DIM - null] == 0).all()  # nothing learned on the top d - n directions
    assert id_part[1:, DIM - null:].abs().min() > 0 and (table[0] == 0).all()
    # in the text space: the ID part (un-whitened) is orthogonal to the top d - n principal directions
    mean, vals, vecs = principal(text())
    in_text = id_part[1:].double().numpy() * np.sqrt(vals[:DIM]) @ vecs[:, :DIM].T  # (N, D_text)
    assert np.abs(in_text @ vecs[:, :DIM - null]).max() < 1e-6 * np.abs(in_text).max()
    assert np.abs(in_text @ vecs[:, DIM - null:DIM]).max() > 1e-3


@pytest.mark.parametrize("null_dim", [DIM, DIM + 3])
def test_alphafuse_needs_some_id_free_semantic_directions(null_dim):
    with pytest.raises(PadError, match="'baselines.null_dim' is"):
        alphafuse.build(text(), model_cfg(), base_cfg(null_dim=null_dim))


def test_llmesr_retrieves_similar_users_from_training_items_only():
    seqs = sequences()
    near = llmesr.similar_users(seqs, text(), 3)
    assert near.shape == (len(seqs), 3)
    assert not (near == torch.arange(len(seqs))[:, None]).any()  # never oneself
    changed = [np.concatenate([s[:-2], (s[-2:] + 7) % N_ITEMS + 1]) for s in seqs]  # other valid / test targets
    assert torch.equal(llmesr.similar_users(changed, text(), 3), near)
    twins = [np.array([1, 2, 3, 9, 9]), np.array([4, 5, 6, 8, 8]), np.array([1, 2, 3, 7, 7])]
    assert llmesr.similar_users(twins, text(), 1)[:, 0].tolist()[::2] == [2, 0]  # equal training items: nearest
    with pytest.raises(PadError, match="at least 2 users"):
        llmesr.similar_users(seqs[:1], text(), 3)


def test_llmesr_distils_from_the_similar_users_training_sequences(monkeypatch):
    cfg = model_cfg()
    seqs = sequences()
    seen: list[torch.Tensor] = []
    expert = llmesr.build(text(), cfg, base_cfg())
    encode = expert.encode
    monkeypatch.setattr(expert, "encode", lambda s: seen.append(s) or encode(s))
    loss_fn = llmesr.objective(seqs, text(), cfg, base_cfg(llmesr_alpha=0.5))
    batch = next(prepared(cfg).train.batches(1, 8, seed=0))
    loss, extra = loss_fn(expert, batch)
    assert torch.isfinite(loss) and extra["distill_loss"] > 0
    teachers = seen[-1]  # (B*k, L): the neighbours' inputs are their training parts, no valid / test target
    near = llmesr.similar_users(seqs, text(), 3)[batch.users].flatten()
    for row, u in zip(teachers, near.tolist()):
        assert row[row != 0].tolist() == seqs[u][:-2][-cfg.max_len:].tolist()
    without = llmesr.objective(seqs, text(), cfg, base_cfg(llmesr_alpha=0.0))
    torch.manual_seed(0)
    expert.eval()
    a = loss_fn(expert, batch)[0]
    b = without(expert, batch)[0]
    torch.testing.assert_close(a - b, 0.5 * loss_fn(expert, batch)[1]["distill_loss"])


def test_llmesr_scores_are_the_sum_of_its_two_views_through_one_shared_backbone():
    cfg = model_cfg()
    expert = llmesr.build(text(), cfg, base_cfg()).eval()
    one = llminit.build(text(), cfg, base_cfg()).backbone  # a plain model.backbone
    assert sum(p.numel() for p in expert.backbone.parameters()) == sum(p.numel() for p in one.parameters())
    seqs = torch.tensor([[0, 0, 1, 3, 5, 7]])
    state = expert.encode(seqs)[:, -1]  # (1, 2d)
    table = expert.item_vectors()  # (N+1, 2d)
    items = expert.items
    id_part = state[:, :DIM] @ items.ids().T
    llm_part = state[:, DIM:] @ items.llm_view().T
    torch.testing.assert_close(expert.score(state[:, None], None)[:, 0], id_part + llm_part)
    torch.testing.assert_close(table[:, :DIM], whitened_pca(text(), DIM))  # the ID view starts from the text PCA
    assert "text_emb" not in " ".join(expert.state_dict()) and not items.text_emb.requires_grad
