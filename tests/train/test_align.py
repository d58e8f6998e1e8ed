"""Phase 2: the alignment expert, its loss per mode and kernel, training and the checkpoint round trip."""
import copy

import numpy as np
import pytest
import torch

from pad.config import AlignConfig, EvaluateConfig, ModelConfig
from pad.data.buckets import write_items
from pad.errors import PadError
from pad.losses.alignment import alignment_loss, distinct_batch_items
from pad.losses.recommendation import recommendation_loss
from pad.models import build_id_expert
from pad.models.text import AlignedItems
from pad.train.align import align, align_metrics, align_objective, build_align_expert, load_align_expert, save_align_expert
from pad.train.loop import seed_everything
from pad.train.pretrain import load_prepared

torch.set_num_threads(1)
N_ITEMS, TEXT_DIM = 30, 12
MODEL = ModelConfig("sasrec", 8, 1, 2, 0.1, 8, "ce", 2)
EV = EvaluateConfig(10, 64, 1000, 0, 0)


def align_cfg(**kw) -> AlignConfig:
    base = dict(epochs=2, batch_size=16, lr=0.01, weight_decay=0.0, patience=0, seed=3, time_budget_s=0.0,
                lambda_=0.2, kernel="gaussian", mode="anchored", temperature=0.1, fusion="sum", id_scale=0.1)
    return AlignConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Prepared Parquet files (40 users), a text matrix and a phase-1 expert (random weights)."""
    import polars as pl

    root = tmp_path_factory.mktemp("align")
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, N_ITEMS + 1, size=int(rng.integers(5, 12))).astype(np.int32) for _ in range(40)]
    pl.DataFrame({"user_idx": np.arange(40, dtype=np.int32), "user_id": [f"u{i}" for i in range(40)], "items": seqs},
                 schema_overrides={"items": pl.List(pl.Int32)}).write_parquet(root / "seq.parquet")
    items = pl.DataFrame({"item_idx": np.arange(1, N_ITEMS + 1, dtype=np.int32), "item_id": [f"i{i}" for i in range(N_ITEMS)],
                          "text": [""] * N_ITEMS, "train_freq": np.ones(N_ITEMS, dtype=np.int32),
                          "bucket": (np.arange(N_ITEMS) // 3 + 1).astype(np.int8)})
    write_items(items, root / "items.parquet", n_buckets=N_ITEMS // 3)
    data = load_prepared(root / "seq.parquet", root / "items.parquet", MODEL)
    text = torch.randn(N_ITEMS + 1, TEXT_DIM, generator=torch.Generator().manual_seed(1))
    text[0] = 0.0
    seed_everything(0)
    return data, text, build_id_expert(MODEL, N_ITEMS)


def run(project, tmp_path, **kw):
    data, text, pretrained = project
    return align(data, pretrained, text, MODEL, align_cfg(**kw), EV, device=torch.device("cpu"),
                 live_dir=tmp_path / "live", resume_root=tmp_path / "cache")


def test_expert_starts_from_a_copy_of_phase_1(project):
    _, text, pretrained = project
    expert = build_align_expert(pretrained, MODEL, text)
    assert isinstance(expert.items, AlignedItems)
    assert torch.equal(expert.items.id_side(), pretrained.item_vectors())
    for (k, a), b in zip(expert.backbone.state_dict().items(), pretrained.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    with torch.no_grad():
        expert.items.id_emb.weight.add_(1.0)
        next(expert.backbone.parameters()).add_(1.0)
    assert not torch.equal(expert.items.id_side(), pretrained.item_vectors())  # a deep copy, not shared
    assert not torch.equal(next(expert.backbone.parameters()), next(pretrained.backbone.parameters()))
    with pytest.raises(PadError, match="items"):
        build_align_expert(pretrained, MODEL, text[:-1])
    scaled = build_align_expert(pretrained, MODEL, text, id_scale=0.1)
    torch.testing.assert_close(scaled.items.id_side(), 0.1 * pretrained.item_vectors())


def test_frozen_keeps_the_id_table_bit_identical_and_anchored_changes_it(project, tmp_path):
    start = 0.1 * project[2].item_vectors().detach()  # align_cfg's id_scale
    frozen, _ = run(project, tmp_path / "f", mode="frozen", weight_decay=0.1)
    anchored, _ = run(project, tmp_path / "a", mode="anchored")
    assert torch.equal(frozen.items.id_emb.weight, start)
    assert not torch.equal(anchored.items.id_emb.weight, start)
    fresh = build_align_expert(project[2], MODEL, project[1], id_scale=0.1)
    assert not torch.equal(frozen.items.mlp.weight, fresh.items.mlp.weight)  # the text side still trains


def test_none_mode_is_the_recommendation_loss_alone(project, tmp_path):
    data, text, pretrained = project
    expert = build_align_expert(pretrained, MODEL, text).eval()
    batch = next(data.train.batches(1, 16, 0))
    out = align_objective(align_cfg(mode="none"), "ce")(expert, batch)
    assert isinstance(out, torch.Tensor)
    torch.testing.assert_close(out, recommendation_loss(expert, batch, "ce"))
    _, result = run(project, tmp_path, mode="none")
    assert all("align_loss" not in row for row in result.rows)
    assert not (tmp_path / "live/plots/metrics/align_loss.tsv").exists()
    assert "align_loss" not in (tmp_path / "live/metrics.json").read_text()


@pytest.mark.parametrize("kernel", ["gaussian", "laplacian", "linear", "cosine", "infonce"])
def test_every_kernel_trains_and_anchored_loss_is_rec_plus_lambda_align(project, kernel):
    data, text, pretrained = project
    expert = build_align_expert(pretrained, MODEL, text).eval()
    batch = next(data.train.batches(1, 16, 0))
    loss, extra = align_objective(align_cfg(kernel=kernel, lambda_=0.5), "ce")(expert, batch)
    ids = distinct_batch_items(torch.cat([batch.inputs, batch.targets], 1))
    want = alignment_loss(kernel, expert.items.text_side(ids), expert.items.id_side(ids), 0.1)
    torch.testing.assert_close(extra["align_loss"], want)
    torch.testing.assert_close(loss, recommendation_loss(expert, batch, "ce") + 0.5 * want)
    expert.train()
    opt = torch.optim.AdamW(expert.parameters(), lr=0.01)
    before = copy.deepcopy(expert.items.mlp.state_dict())
    loss, _ = align_objective(align_cfg(kernel=kernel), "ce")(expert, batch)
    loss.backward()
    assert expert.items.mlp.weight.grad.abs().sum() > 0 and torch.isfinite(loss)
    opt.step()
    assert not torch.equal(before["weight"], expert.items.mlp.weight)


def test_non_anchored_trains_only_the_two_aligned_sides(project, tmp_path):
    data, text, pretrained = project
    expert = build_align_expert(pretrained, MODEL, text).eval()
    batch = next(data.train.batches(1, 16, 0))
    loss, extra = align_objective(align_cfg(mode="non_anchored"), "ce")(expert, batch)
    assert torch.equal(loss, extra["align_loss"])
    seed_everything(3)  # what `align` does before building, so the fresh fusion layer is the same
    start = build_align_expert(pretrained, MODEL, text, "non_anchored", "residual")
    trained, result = run(project, tmp_path, mode="non_anchored", lr=0.01, epochs=3, fusion="residual", id_scale=1.0)
    for k, v in start.backbone.state_dict().items():
        assert torch.equal(trained.backbone.state_dict()[k], v), k
    assert not torch.equal(trained.items.id_emb.weight, start.items.id_emb.weight)
    for k, v in start.items.fuse.state_dict().items():
        assert torch.equal(trained.items.fuse.state_dict()[k], v), k
    assert result.rows[-1]["align_loss"] < result.rows[0]["align_loss"]


def test_metrics_checkpoint_round_trip_and_resume(project, tmp_path):
    data, text, _ = project
    expert, result = run(project, tmp_path, epochs=2)
    metrics = align_metrics(expert, data, result, EV)
    assert {"valid", "test", "train"} <= set(metrics) and "cold" in metrics["test"] and "10" in metrics["test"]["buckets"]
    assert metrics["train"]["align_loss"] >= 0 and "align_loss_last" in metrics["train"]
    logged = {f.stem for f in (tmp_path / "live/plots/metrics").glob("*.tsv")}
    assert logged == {"train_loss", "valid_ndcg_10", "valid_hr_10", "align_loss"}
    save_align_expert(expert, MODEL, align_cfg(), tmp_path / "align.pt", best_epoch=result.best_epoch)
    loaded = load_align_expert(tmp_path / "align.pt", text.numpy())
    expert.eval()
    seqs = data.splits["test"].inputs[:5]
    torch.testing.assert_close(loaded.score(loaded.encode(seqs)), expert.score(expert.encode(seqs)))
    with pytest.raises(PadError, match="shape"):
        load_align_expert(tmp_path / "align.pt", text[:, :5])
    with pytest.raises(PadError, match="not found"):
        load_align_expert(tmp_path / "missing.pt", text)
    again, result2 = run(project, tmp_path, epochs=2)  # a finished run's state is reused as is
    assert result2.rows == result.rows


@pytest.mark.parametrize("fusion", ["residual", "reference"])
def test_checkpoint_rebuilds_the_fusion_it_was_trained_with(project, tmp_path, fusion):
    data, text, _ = project
    expert, _ = run(project, tmp_path, epochs=1, fusion=fusion, id_scale=1.0)
    save_align_expert(expert, MODEL, align_cfg(fusion=fusion, id_scale=1.0), tmp_path / "align.pt")
    loaded = load_align_expert(tmp_path / "align.pt", text)
    assert loaded.items.fusion == fusion
    seqs = data.splits["test"].inputs[:5]
    expert.eval()
    torch.testing.assert_close(loaded.score(loaded.encode(seqs)), expert.score(expert.encode(seqs)))


@pytest.mark.parametrize("mode", ["anchored", "non_anchored"])
def test_row_updates_train_the_id_table_through_sparse_gradients(project, mode):
    import dataclasses

    data, text, pretrained = project
    rows = dataclasses.replace(MODEL, loss="sampled_ce", item_updates="rows")
    expert = build_align_expert(pretrained, rows, text, mode)
    batch = next(data.train.batches(1, 16, 0))  # the module's data has loss ce: draw the negatives here
    batch.negatives = torch.randint(1, N_ITEMS + 1, (*batch.targets.shape, 2), generator=torch.Generator().manual_seed(0))
    loss, _ = align_objective(align_cfg(mode=mode), "sampled_ce")(expert, batch)
    loss.backward()
    assert torch.isfinite(loss) and expert.items.id_emb.weight.grad.is_sparse  # SparseAdam can step it
