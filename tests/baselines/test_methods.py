"""Each baseline's own mechanism does what its docstring says (pad/baselines/<method>.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pad.baselines import alphafuse, ctrl, disco, hybrid, llmesr, llminit, make, morec, smem
from pad.baselines.harness import OBJECTIVES, PRETRAINS, train_method
from pad.baselines.whiten import whitened_pca
from pad.errors import PadError
from pad.losses.alignment import info_nce
from pad.losses.recommendation import recommendation_loss
from pad.models import IdEmbedding
from pad.train.loop import fit, seed_everything
from pad.train.pretrain import valid_headline
from tests.baselines.conftest import DIM, EV, N_ITEMS, TEXT_DIM, base_cfg, model_cfg, prepared, sequences, text


def trained(method: str, tmp_path, **kw):
    return fitted(method, tmp_path, **kw)[0]


def fitted(method: str, tmp_path, **kw):
    cfg = model_cfg()
    torch.manual_seed(0)
    return train_method(method, prepared(cfg), sequences(), text(), cfg, base_cfg(epochs=2, **kw), EV,
                        device=torch.device("cpu"), resume_root=tmp_path)


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
    assert len(seen) == 2  # the batch once (rec loss and student), the teachers once
    teachers = seen[-1]  # (n, L): each distinct neighbour once, its training part (no valid / test target)
    near = llmesr.similar_users(seqs, text(), 3)[batch.users]  # (B, 3)
    assert len(teachers) == len(torch.unique(near))
    for row, u in zip(teachers, torch.unique(near).tolist()):
        assert row[row != 0].tolist() == seqs[u][:-2][-cfg.max_len:].tolist()
    without = llmesr.objective(seqs, text(), cfg, base_cfg(llmesr_alpha=0.0))
    expert.eval()
    a = loss_fn(expert, batch)[0]
    b = without(expert, batch)[0]
    torch.testing.assert_close(a - b, 0.5 * loss_fn(expert, batch)[1]["distill_loss"])
    # the teacher of a user is the mean of its neighbours' own last states (stop-gradient)
    inputs = llmesr.left_pad(llmesr.training_parts(seqs), cfg.max_len)
    brute = torch.stack([encode(inputs[row])[:, -1].mean(0) for row in near])  # (B, 2d)
    got = llmesr.teacher_states(expert, near, inputs, "train", torch.device("cpu"))
    torch.testing.assert_close(got, brute)
    assert not got.requires_grad


def test_llmesr_eval_teachers_are_encoded_without_dropout_and_leave_the_model_training():
    cfg = model_cfg()
    seqs = sequences()
    expert = llmesr.build(text(), cfg, base_cfg()).train()
    inputs = llmesr.left_pad(llmesr.training_parts(seqs), cfg.max_len)
    near = llmesr.similar_users(seqs, text(), 3)[:8]
    ev = [llmesr.teacher_states(expert, near, inputs, "eval", torch.device("cpu")) for _ in range(2)]
    tr = [llmesr.teacher_states(expert, near, inputs, "train", torch.device("cpu")) for _ in range(2)]
    assert expert.training
    torch.testing.assert_close(ev[0], ev[1])  # no dropout: deterministic
    assert not torch.allclose(tr[0], tr[1])  # dropout on: two draws differ
    torch.testing.assert_close(ev[0], llmesr.teacher_states(expert.eval(), near, inputs, "train", torch.device("cpu")))


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


def own_text_rank(ids: torch.Tensor, tower: nn.Module) -> float:
    """Share of the items whose ID row is nearer (cosine) to their own projected text than to any other item's."""
    sims = torch.nn.functional.normalize(ids[1:], dim=1) @ torch.nn.functional.normalize(tower(text()[1:]), dim=1).T
    return (sims.argmax(1) == torch.arange(N_ITEMS)).float().mean().item()


def test_ctrl_pretraining_pulls_each_items_id_row_to_its_own_text_and_away_from_the_others():
    torch.manual_seed(0)
    ids = IdEmbedding(N_ITEMS, DIM)
    start = ids().detach().clone()
    cfg = base_cfg(ctrl_epochs=40, ctrl_temperature=0.1)
    torch.manual_seed(1)
    fresh = nn.Linear(TEXT_DIM, DIM)  # what an untrained text tower gives: no alignment
    assert own_text_rank(start, fresh) < 0.2
    tower, losses = ctrl.align(ids, text(), cfg)
    table = ids().detach()
    assert len(losses) == 40 and losses[-1] < 0.5 * losses[0], losses
    assert own_text_rank(table, tower) > 0.9  # chance: 1/50
    every = torch.arange(1, N_ITEMS + 1)
    with torch.no_grad():
        assert info_nce(tower(text()[every]), ids(every), 0.1) < info_nce(fresh(text()[every]), start[every], 0.1)
    assert (table[0] == 0).all() and not torch.equal(table, start)
    same = IdEmbedding(N_ITEMS, DIM)
    before = same().detach().clone()
    assert ctrl.align(same, text(), base_cfg(ctrl_epochs=0))[1] == []  # 0 epochs: no pre-training ...
    assert torch.equal(same().detach(), before)  # ... and the table as built


def test_ctrl_serves_the_id_model_fine_tuned_from_the_aligned_table_without_the_text_tower(tmp_path):
    cfg = model_cfg()
    own = base_cfg(epochs=2, ctrl_epochs=30)
    seed_everything(own.seed)  # as the harness does before building
    expert = ctrl.build(text(), cfg, own)
    start = expert.item_vectors().detach().clone()
    losses = ctrl.pretrain(expert, text(), cfg, own)
    aligned = expert.item_vectors().detach().clone()
    assert losses[-1] < losses[0] and not torch.equal(aligned, start)
    served = fitted("ctrl", tmp_path, ctrl_epochs=30)[0]
    assert isinstance(served.items, IdEmbedding)  # the plain ID model ...
    assert all(k == "items.embedding.weight" or k.startswith("backbone.") for k in served.state_dict())
    assert not [b for b in served.buffers() if b.dim() == 2 and b.shape[0] == N_ITEMS + 1]  # ... no text kept
    assert not any(p.shape[-1] == TEXT_DIM for p in served.parameters())  # no text tower
    final = served.item_vectors().detach()
    # fine-tuning started from the pre-trained table, not from the fresh one
    assert (final - aligned).norm() < (final - start).norm()
    assert not torch.equal(final, trained("ctrl", tmp_path / "none", ctrl_epochs=0).item_vectors().detach())


def test_smem_scores_are_the_sum_of_an_id_and_a_text_expert_that_share_one_table():
    cfg = model_cfg()
    expert = smem.build(text(), cfg, base_cfg()).eval()
    items = expert.items
    one = llminit.build(text(), cfg, base_cfg()).backbone  # a plain model.backbone
    assert sum(p.numel() for p in expert.backbone.parameters()) == 2 * sum(p.numel() for p in one.parameters())
    seqs = torch.tensor([[0, 0, 1, 3, 5, 7]])
    state = expert.encode(seqs)[:, -1]  # (1, 2d)
    shared = items.shared()
    id_view = shared + items.id_specific()
    text_view = shared + items.text_specific.mlp(text()) * (torch.arange(N_ITEMS + 1) > 0)[:, None]
    torch.testing.assert_close(expert.score(state[:, None], None)[:, 0],
                               state[:, :DIM] @ id_view.T + state[:, DIM:] @ text_view.T)
    torch.testing.assert_close(expert.item_vectors(), torch.cat([id_view, text_view], 1))
    assert (expert.item_vectors()[0] == 0).all()
    with torch.no_grad():  # the ID-specific table feeds the ID expert only, the shared one both
        items.id_specific.embedding.weight[1:] += 1.0
        table = expert.item_vectors()
        torch.testing.assert_close(table[:, DIM:], text_view)
        assert not torch.allclose(table[:, :DIM], id_view)
        items.shared.embedding.weight[1:] += 1.0
        moved = expert.item_vectors()
        assert not torch.allclose(moved[:, DIM:], text_view) and not torch.allclose(moved[:, :DIM], table[:, :DIM])
    assert "text_emb" not in " ".join(expert.state_dict()) and not items.text_specific.text_emb.requires_grad


def test_smem_trains_the_shared_and_both_specific_parts_with_the_recommendation_loss_alone(tmp_path):
    assert "smem" not in OBJECTIVES and "smem" not in PRETRAINS  # no alignment or other auxiliary term
    cfg = model_cfg()
    seed_everything(1)  # base_cfg's seed, as the harness does before building
    before = smem.build(text(), cfg, base_cfg()).state_dict()
    # one step's gradient: the shared table gets the text expert's gradient as well as the ID expert's
    probe = smem.build(text(), cfg, base_cfg())
    recommendation_loss(probe, next(prepared(cfg).train.batches(1, 32, seed=0)), cfg.loss).backward()
    shared, id_specific = probe.items.shared.embedding.weight.grad, probe.items.id_specific.embedding.weight.grad
    assert id_specific.abs().sum() > 0 and (shared - id_specific).abs().sum() > 0
    expert, result = fitted("smem", tmp_path)
    after = expert.state_dict()
    for name in ("items.shared.embedding.weight", "items.id_specific.embedding.weight",
                 "items.text_specific.mlp.weight", "backbone.ids.", "backbone.text."):
        keys = [k for k in after if k.startswith(name)]
        assert keys and any(not torch.equal(before[k], after[k]) for k in keys), f"{name} did not train"
    assert {k for row in result.rows for k in row if k.endswith("_loss")} == {"train_loss"}


def test_make_scores_are_an_id_expert_plus_a_text_expert_each_with_its_own_backbone():
    cfg = model_cfg()
    torch.manual_seed(0)
    expert = make.build(text(), cfg, base_cfg()).eval()
    other = text()
    other[1:] = torch.randn(N_ITEMS, TEXT_DIM, generator=torch.Generator().manual_seed(9))
    torch.manual_seed(0)
    twin = make.build(other, cfg, base_cfg()).eval()  # the same weights, other texts
    seqs = torch.tensor([[0, 0, 1, 3, 5, 7]])
    state = expert.encode(seqs)[:, -1]  # (1, 2d) = [h_id ; h_text]
    items = expert.items
    torch.testing.assert_close(expert.score(state[:, None], None)[:, 0],
                               state[:, :DIM] @ items.ids().T + state[:, DIM:] @ items.text().T)
    twin_state = twin.encode(seqs)[:, -1]
    assert torch.equal(twin_state[:, :DIM], state[:, :DIM])  # the ID half reads no text ...
    assert not torch.allclose(twin_state[:, DIM:], state[:, DIM:])  # ... the text half does
    assert expert.backbone.ids is not expert.backbone.text
    assert (expert.item_vectors()[0] == 0).all() and "text_emb" not in " ".join(expert.state_dict())


def test_make_pretraining_trains_the_text_expert_alone_in_place(tmp_path):
    cfg = model_cfg()
    torch.manual_seed(0)
    expert = make.build(text(), cfg, base_cfg())
    part = make.text_expert(expert)
    text_params = {id(p) for m in (expert.items.text, expert.backbone.text) for p in m.parameters()}
    assert {id(p) for p in part.parameters()} == text_params  # shared, not copied
    before = {k: v.clone() for k, v in expert.state_dict().items()}
    data = prepared(cfg)
    fit(part, data.train, lambda m, b: recommendation_loss(m, b, cfg.loss), valid_headline(data, EV),
        base_cfg(epochs=2), desc="text")
    after = expert.state_dict()
    assert torch.equal(after["items.ids.embedding.weight"], before["items.ids.embedding.weight"])
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith("backbone.ids."))
    assert not torch.equal(after["items.text.mlp.weight"], before["items.text.mlp.weight"])
    assert any(not torch.equal(after[k], before[k]) for k in after if k.startswith("backbone.text."))


def test_make_pretrains_before_the_fusion_and_clears_both_resume_states(tmp_path, capsys):
    expert = trained("make", tmp_path)
    out = capsys.readouterr().out
    assert "make pretrain epoch 1:" in out and "make epoch 1:" in out
    assert out.index("make pretrain epoch 2:") < out.index("make epoch 1:")  # the text expert first, then both
    assert not any(tmp_path.glob("*-pretrain"))  # the pre-training's resume state is gone once the fusion trained
    assert torch.isfinite(expert.item_vectors()).all()


def test_disco_chunks_one_modality_each_and_a_shared_one():
    cfg = model_cfg()
    torch.manual_seed(0)
    expert = disco.build(text(), cfg, base_cfg(disco_unique=4)).eval()
    items = expert.items
    assert {c: (p.stop - p.start) for c, p in ((c, range(DIM)[p]) for c, p in items.chunks.items())} == \
        {"id": 4, "shared": 8, "text": 4}
    table = expert.item_vectors().detach()  # (N+1, d)
    assert table.shape == (N_ITEMS + 1, DIM) and (table[0] == 0).all()
    id_rows, text_rows = items.ids().detach(), items.text().detach()  # (N+1, 12) each
    assert id_rows.shape[1] == text_rows.shape[1] == 12
    torch.testing.assert_close(table[:, :4], id_rows[:, :4])  # u_id: the ID table alone
    torch.testing.assert_close(table[:, 4:12], id_rows[:, 4:] + text_rows[:, :8])  # s: both
    torch.testing.assert_close(table[:, 12:], text_rows[:, 8:])  # u_text: the text alone
    with torch.no_grad():
        items.ids.embedding.weight.zero_()
    assert torch.equal(expert.item_vectors()[:, 12:], table[:, 12:]) and (expert.item_vectors()[:, :4] == 0).all()
    with pytest.raises(PadError, match="'baselines.disco_unique' is 8"):
        disco.build(text(), cfg, base_cfg(disco_unique=8))


def test_disco_decorrelation_is_the_mean_squared_correlation_between_chunks():
    x = torch.tensor([[1.0], [2.0], [3.0], [5.0]])
    assert disco.decorrelation(x, 3 * x - 2).item() == pytest.approx(1.0)
    assert disco.decorrelation(x, -x).item() == pytest.approx(1.0)
    a = torch.tensor([[1.0], [-1.0], [1.0], [-1.0]])
    b = torch.tensor([[1.0], [1.0], [-1.0], [-1.0]])
    assert disco.decorrelation(a, b).item() == pytest.approx(0.0, abs=1e-7)
    assert disco.decorrelation(torch.cat([a, x], 1), b).item() == pytest.approx(
        (0 + np.corrcoef(x[:, 0], b[:, 0])[0, 1] ** 2) / 2)
    assert disco.decorrelation(x[:1], x[:1]).item() == 0  # one item: no correlation to measure


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_disco_sufficiency_terms_are_each_chunks_own_recommendation_loss(loss):
    cfg = model_cfg(loss=loss)
    torch.manual_seed(0)
    expert = disco.build(text(), cfg, base_cfg()).eval()
    batch = next(prepared(cfg).train.batches(1, 16, seed=0))
    full, extra = disco.objective(sequences(), text(), cfg, base_cfg(disco_sufficiency=0.7, disco_disentangle=2.0))(
        expert, batch)
    rec = recommendation_loss(expert, batch, loss)
    torch.testing.assert_close(full, rec + 0.7 * extra["sufficiency_loss"] + 2.0 * extra["disentangle_loss"])
    mask = batch.targets != 0
    states = expert.encode(batch.inputs)[mask]  # (M, d)
    table = expert.item_vectors()  # (N+1, d)
    own = []
    for part in expert.items.chunks.values():  # by hand: the chunk's logits and the loss on them
        if loss == "ce":
            own.append(F.cross_entropy(states[:, part] @ table[1:, part].T, batch.targets[mask] - 1))
        else:
            cand = torch.cat([batch.targets[mask][:, None], batch.negatives[mask]], -1)  # (M, 2)
            logits = (states[:, None, part] * table[cand][..., part]).sum(-1)
            own.append((F.softplus(-logits[:, 0]) + F.softplus(logits[:, 1:]).sum(-1)).mean())
    torch.testing.assert_close(extra["sufficiency_loss"], torch.stack(own).mean())
    assert all(o > 0 for o in own) and len(set(round(o.item(), 6) for o in own)) == 3
    targets = torch.unique(batch.targets[mask])
    torch.testing.assert_close(extra["disentangle_loss"],
                               disco.disentanglement_loss(table[targets], expert.items.chunks))


def test_disco_disentanglement_loss_decorrelates_the_chunks(tmp_path):
    def chunk_correlation(gamma: float) -> tuple[float, float, list[float]]:
        cfg = model_cfg()
        torch.manual_seed(0)
        start = disco.build(text(), cfg, base_cfg())
        before = disco.disentanglement_loss(start.item_vectors()[1:].detach(), start.items.chunks).item()
        expert, result = train_method("disco", prepared(cfg), sequences(), text(), cfg,
                                      base_cfg(epochs=6, disco_disentangle=gamma), EV, device=torch.device("cpu"),
                                      resume_root=tmp_path / str(gamma))
        expert.eval()
        after = disco.disentanglement_loss(expert.item_vectors()[1:].detach(), expert.items.chunks).item()
        return before, after, [r["disentangle_loss"] for r in result.rows]

    before, after, per_epoch = chunk_correlation(10.0)
    assert after < 0.5 * before and per_epoch[-1] < 0.5 * per_epoch[0]
    _, free, _ = chunk_correlation(0.0)
    assert free > 2 * after  # without the loss the chunks stay (or grow) correlated
