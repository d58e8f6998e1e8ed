"""Phase 3: building PAD from the phase checkpoints, training it with every backbone, save/load."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import polars as pl
import pytest
import torch

from pad.config import AlignConfig, EvaluateConfig, FinetuneConfig, ModelConfig
from pad.data.buckets import write_items
from pad.errors import PadError
from pad.models import build_id_expert
from pad.train.align import build_align_expert, save_align_expert
from pad.train.checkpoint import save_expert
import pad.train.finetune as finetune_module
from pad.evaluation.ranking import evaluate
from pad.train.finetune import build_pad, check_experts, finetune, finetune_metrics, load_pad_model, save_pad
from pad.train.loop import FitResult
from pad.train.pretrain import Prepared, load_prepared
from tests.walk import walk_prepared, walk_text

torch.set_num_threads(1)
N_ITEMS, N_USERS, TEXT_DIM, N_BUCKETS = 30, 80, 10, 5
EV = EvaluateConfig(k=10, user_chunk=32, tau_max_pairs=1000, seed=0, valid_users=0)


def model_cfg(backbone: str = "sasrec", loss: str = "ce", dim: int = 16) -> ModelConfig:
    return ModelConfig(backbone=backbone, dim=dim, blocks=1, heads=2, dropout=0.1, max_len=6, loss=loss, negatives=2)


def ft_cfg(gate: str = "bucket", experts=("id", "align", "llm"), epochs: int = 2, check: bool = False,
           objective: str = "alone") -> FinetuneConfig:
    return FinetuneConfig(epochs=epochs, batch_size=32, lr=0.01, weight_decay=0.0, patience=0, seed=1,
                          time_budget_s=0, gate=gate, experts=tuple(experts), gate_lr=0.05, gate_epochs=2,
                          gate_check=check, llm_objective=objective)


def prepared(cfg: ModelConfig) -> Prepared:
    """The walk toy (tests/walk.py): learnable from the ID and from the text."""
    return walk_prepared(cfg, N_ITEMS, N_USERS, N_BUCKETS)


def text() -> torch.Tensor:
    return walk_text(N_ITEMS, TEXT_DIM)


@pytest.mark.parametrize("backbone,loss,gate", [("sasrec", "ce", "bucket"), ("gru4rec", "bce", "network"),
                                                ("caser", "sampled_ce", "global")])
def test_finetune_trains_every_backbone_and_keeps_text_frozen(tmp_path, backbone, loss, gate):
    cfg = model_cfg(backbone, loss)
    data = prepared(cfg)
    torch.manual_seed(0)
    model = build_pad(["llm", "id", "align"], gate, cfg, text(), data.item_buckets, n_buckets=N_BUCKETS)
    assert model.names == ["id", "align", "llm"]  # canonical order
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result, gate_losses, check = finetune(data, model, cfg, ft_cfg(gate), EV, device=torch.device("cpu"),
                                          live_dir=tmp_path / "live", resume_root=tmp_path / "cache")
    after = model.state_dict()
    assert result.epochs_run == 2 and (tmp_path / "live/plots/metrics/train_loss.tsv").read_text().startswith("step\t")
    assert len(gate_losses) == 2 and all(np.isfinite(gate_losses)) and check is None
    assert torch.equal(model.experts["llm"].items.text_emb, text())  # raw LLM embeddings frozen
    assert "text_emb" not in " ".join(after)  # ... and not saved
    for name in ("experts.llm.items.mlp.weight", next(k for k in after if k.startswith("gate."))):
        assert not torch.equal(before[name], after[name]), f"{name} did not train"
    for name in after:  # the phase-1 and phase-2 experts stay as their phases left them
        if name.startswith(("experts.id.", "experts.align.")):
            assert torch.equal(before[name], after[name]), f"{name} changed"
    metrics = finetune_metrics(model, data, result, gate_losses, EV)
    assert metrics["train"]["gate_loss"] == round(gate_losses[-1], 6)
    assert metrics["test"]["users"] == N_USERS and "cold" in metrics["valid"] and "unmasked" in metrics["test"]
    assert set(metrics["gate"]) == {"id", "align", "llm"} and len(metrics["gate"]["id"]) == 5


def test_learns_the_walk(tmp_path):
    cfg = model_cfg()
    data = prepared(cfg)
    torch.manual_seed(0)
    model = build_pad(["id", "llm"], "bucket", cfg, text(), data.item_buckets, n_buckets=N_BUCKETS)
    result, _, _ = finetune(data, model, cfg, ft_cfg(experts=("id", "llm"), epochs=8), EV, device=torch.device("cpu"),
                            live_dir=tmp_path / "live", resume_root=tmp_path)
    assert result.best_valid["hr_10"] > 60  # the LLM expert alone; 10 of 30 items would be chance (33%)


def test_without_an_llm_expert_the_log_is_empty_but_present(tmp_path):
    """No LLM expert, no epochs: the DVCLive folder still holds the stage's declared outputs (for `dvc repro`)."""
    cfg = model_cfg()
    data = prepared(cfg)
    torch.manual_seed(0)
    model = build_pad(["id", "align"], "bucket", cfg, text(), data.item_buckets, n_buckets=N_BUCKETS)
    result, _, _ = finetune(data, model, cfg, ft_cfg(experts=("id", "align")), EV, device=torch.device("cpu"),
                         live_dir=tmp_path / "live", resume_root=tmp_path)
    assert result.epochs_run == 0
    assert (tmp_path / "live/metrics.json").read_text().strip() == "{}"
    assert (tmp_path / "live/plots/metrics").is_dir() and not any((tmp_path / "live/plots/metrics").iterdir())


def test_experts_start_from_their_checkpoints_and_round_trip(tmp_path):
    cfg = model_cfg()
    data = prepared(cfg)
    torch.manual_seed(0)
    pre = build_id_expert(cfg, N_ITEMS)
    save_expert(pre, cfg, N_ITEMS, tmp_path / "pretrain.pt")
    acfg = AlignConfig(epochs=1, batch_size=8, lr=0.01, weight_decay=0.0, patience=0, seed=0, time_budget_s=0,
                       lambda_=0.2, kernel="gaussian", mode="anchored", temperature=0.1, fusion="sum", id_scale=0.1)
    aligned = build_align_expert(pre, cfg, text(), id_scale=0.1)
    with torch.no_grad():
        aligned.items.mlp.weight.add_(1.0)  # a trained tower, unlike a fresh one
    save_align_expert(aligned, cfg, acfg, tmp_path / "align.pt")
    model = build_pad(["id", "align", "llm"], "bucket", cfg, text(), data.item_buckets, n_buckets=N_BUCKETS,
                      pretrain_path=tmp_path / "pretrain.pt", align_path=tmp_path / "align.pt")
    assert torch.equal(model.experts["id"].item_vectors(), pre.item_vectors())
    assert torch.equal(model.experts["align"].items.id_side(), aligned.items.id_side())
    llm = model.experts["llm"]  # starts as the alignment expert's text-only view
    assert torch.equal(llm.items.mlp.weight, aligned.items.mlp.weight)
    assert torch.equal(llm.items(), aligned.items.text_side().masked_fill(torch.arange(N_ITEMS + 1)[:, None] == 0, 0))
    for (k, a), b in zip(llm.backbone.state_dict().items(), aligned.backbone.state_dict().values()):
        assert torch.equal(a, b), k
    save_pad(model, cfg, ft_cfg(), tmp_path / "finetune.pt", best_epoch=1)
    loaded = load_pad_model(tmp_path / "finetune.pt", text())
    s = data.splits["test"].inputs[:5]
    with torch.no_grad():
        assert torch.equal(model.eval().score(model.encode(s)), loaded.score(loaded.encode(s)))
    with pytest.raises(PadError, match="model.dim=16"):
        build_pad(["id"], "bucket", dataclasses.replace(cfg, dim=8), text(), data.item_buckets, n_buckets=N_BUCKETS,
                  pretrain_path=tmp_path / "pretrain.pt")
    with pytest.raises(PadError, match="shape"):
        load_pad_model(tmp_path / "finetune.pt", text()[:, :4])
    with pytest.raises(PadError, match="not a PAD model"):
        load_pad_model(tmp_path / "pretrain.pt", text())


def test_subset_round_trip_without_text_experts(tmp_path):
    cfg = model_cfg()
    data = prepared(cfg)
    model = build_pad(["id"], "global", cfg, text(), data.item_buckets, n_buckets=N_BUCKETS)
    save_pad(model, cfg, ft_cfg("global", ["id"]), tmp_path / "m.pt")
    loaded = load_pad_model(tmp_path / "m.pt", text())
    assert loaded.names == ["id"] and sum(p.numel() for p in loaded.parameters()) == sum(
        p.numel() for p in model.parameters())


@pytest.mark.parametrize("names", [[], ["id", "id"], ["id", "text"]])
def test_bad_expert_lists_are_user_errors(names):
    with pytest.raises(PadError, match="finetune.experts"):
        check_experts(names)


def test_embeddings_must_cover_the_items():
    cfg = model_cfg()
    with pytest.raises(PadError, match="embed"):
        build_pad(["llm"], "bucket", cfg, text()[:-3], prepared(cfg).item_buckets, n_buckets=N_BUCKETS)


@pytest.mark.parametrize("gate", ["bucket", "network", "global"])
def test_empty_coldest_buckets_keep_b_buckets_in_metrics_gate_and_checkpoint(tmp_path, gate):
    """Items in buckets 1..5 of B = 7 (6 and 7 empty, as when the coldest items are heavy): the data's B,
    not max() = 5, sizes the evaluation's buckets, the gate and the saved model."""
    cfg = model_cfg()
    rng = np.random.default_rng(0)
    seqs = [[(s + 2 * i - 1) % N_ITEMS + 1 for i in range(int(rng.integers(5, 10)))]
            for s in rng.integers(1, N_ITEMS + 1, N_USERS)]
    pl.DataFrame({"user_idx": np.arange(N_USERS, dtype=np.int32), "items": seqs},
                 schema_overrides={"items": pl.List(pl.Int32)}).write_parquet(tmp_path / "seq.parquet")
    write_items(pl.DataFrame({"item_idx": np.arange(1, N_ITEMS + 1, dtype=np.int32),
                              "bucket": (np.arange(N_ITEMS) // 6 + 1).astype(np.int8)}),
                tmp_path / "items.parquet", n_buckets=7)
    data = load_prepared(tmp_path / "seq.parquet", tmp_path / "items.parquet", cfg)
    assert data.n_buckets == 7 and int(data.item_buckets.max()) == 5
    model = build_pad(["id", "llm"], gate, cfg, text(), data.item_buckets, n_buckets=data.n_buckets)
    metrics = finetune_metrics(model, data, FitResult(0, {}, 0, 0.0, "epochs"), [], EV)
    assert list(metrics["test"]["buckets"]) == [str(b) for b in range(1, 8)]
    assert metrics["test"]["buckets"]["7"]["users"] == 0 and metrics["test"]["cold"]["users"] == sum(
        metrics["test"]["buckets"][b]["users"] for b in ("6", "7"))  # B = 7: cold = 6-7
    assert list(metrics["gate"]["id"]) == [str(b) for b in range(1, 8)]
    save_pad(model, cfg, ft_cfg(gate, ["id", "llm"]), tmp_path / "m.pt")
    loaded = load_pad_model(tmp_path / "m.pt", text())
    assert loaded.gate.n_buckets == 7 and loaded.gate_weights().shape == (7, 2)
    torch.testing.assert_close(loaded.gate_weights(), model.gate_weights())


def test_gate_check_keeps_the_gate_only_where_it_beats_every_expert_on_held_out_users(tmp_path):
    from pad.evaluation.ranking import evaluate_split
    from pad.models.gate import pin_gate
    from pad.train.gate import check_gate

    cfg = model_cfg()
    data = prepared(cfg)
    torch.manual_seed(0)
    model = build_pad(["id", "align", "llm"], "bucket", cfg, text(), data.item_buckets, n_buckets=N_BUCKETS)
    result, gate_losses, check = finetune(data, model, cfg, ft_cfg(check=True), EV, device=torch.device("cpu"),
                                          live_dir=tmp_path / "live", resume_root=tmp_path / "cache")
    valid = data.splits["valid"]
    alone = {n: evaluate_split(e, valid, data.item_buckets, 10, 32, n_buckets=N_BUCKETS)["ndcg_10"]
             for n, e in model.experts.items()}
    assert {n: check.valid_ndcg[n] for n in alone} == alone  # each expert alone: the evaluation's own numbers
    pad_valid = evaluate_split(model, valid, data.item_buckets, 10, 32, n_buckets=N_BUCKETS)["ndcg_10"]
    if check.choice == "gate":
        assert check.valid_ndcg["gate"] > max(alone.values()) and len(gate_losses) == 2
    else:  # pinned: PAD is exactly its best expert
        assert check.choice == max(alone, key=alone.get) and gate_losses == [] and pad_valid == alone[check.choice]
    metrics = finetune_metrics(model, data, result, gate_losses, EV, check)
    assert metrics["gate_check"] == {"choice": check.choice, "folds": 2, "valid_ndcg_10": check.valid_ndcg}

    # a gate whose fit always picks the worst expert loses the held-out check: the best expert is chosen
    worst = min(alone, key=alone.get)
    start = copy.deepcopy(model.gate.state_dict())
    forced = check_gate(model, valid, lambda m, s: pin_gate(m.gate, m.names.index(worst)), k=10, user_chunk=32, seed=0)
    assert forced.valid_ndcg["gate"] == alone[worst] and forced.choice == max(alone, key=alone.get)
    assert all(torch.equal(v, start[k]) for k, v in model.gate.state_dict().items())  # left as it was


def test_with_valid_users_the_gate_is_checked_and_fitted_on_the_seeded_sample(tmp_path):
    """At scale (`evaluate.valid_users` > 0) the gate's check and fit use early stopping's seeded sample of
    validation users, never the whole split (a gate fit is several full rankings)."""
    from pad.evaluation.ranking import evaluate_split, sample_users
    from pad.train.gate import fit_gate
    from pad.train.loop import seed_everything

    cfg = model_cfg()
    data = prepared(cfg)
    valid = data.splits["valid"]
    ev = dataclasses.replace(EV, valid_users=len(valid.targets) // 2)
    sample = sample_users(valid, ev.valid_users, ev.seed)
    assert len(sample.targets) == ev.valid_users < len(valid.targets)
    torch.manual_seed(0)
    model = build_pad(["id", "align", "llm"], "bucket", cfg, text(), data.item_buckets, n_buckets=N_BUCKETS)
    _, _, check = finetune(data, model, cfg, ft_cfg(check=True), ev, device=torch.device("cpu"),
                           live_dir=tmp_path / "live", resume_root=tmp_path / "cache")
    on_sample = {n: evaluate_split(e, sample, data.item_buckets, 10, 32, n_buckets=N_BUCKETS)["ndcg_10"]
                 for n, e in model.experts.items()}
    on_all = {n: evaluate_split(e, valid, data.item_buckets, 10, 32, n_buckets=N_BUCKETS)["ndcg_10"]
              for n, e in model.experts.items()}
    assert {n: check.valid_ndcg[n] for n in on_sample} == on_sample != on_all

    # the fit itself (no LLM expert, so finetune goes straight to the gate): the gate fitted on the sample
    torch.manual_seed(0)
    two = build_pad(["id", "align"], "bucket", cfg, text(), data.item_buckets, n_buckets=N_BUCKETS)
    on_sample_fit, on_all_fit = copy.deepcopy(two), copy.deepcopy(two)
    cfg_ft = ft_cfg(experts=("id", "align"))
    _, losses, _ = finetune(data, two, cfg, cfg_ft, ev, device=torch.device("cpu"), live_dir=tmp_path / "live2",
                            resume_root=tmp_path / "cache2")
    for ref, split in ((on_sample_fit, sample), (on_all_fit, valid)):
        seed_everything(cfg_ft.seed)
        ref_losses = fit_gate(ref, split, lr=cfg_ft.gate_lr, epochs=cfg_ft.gate_epochs, batch_size=cfg_ft.batch_size,
                              seed=cfg_ft.seed, user_chunk=ev.user_chunk)
        if split is sample:
            assert losses == ref_losses
            torch.testing.assert_close(two.gate_weights(), ref.gate_weights(), rtol=0, atol=0)
        else:
            assert not torch.equal(two.gate_weights(), ref.gate_weights())


@pytest.mark.parametrize("loss", ["ce", "sampled_ce", "shared_ce"])
def test_fused_objective_trains_only_the_llm_expert_through_the_fused_score(tmp_path, monkeypatch, loss):
    cfg = model_cfg("sasrec", loss)
    data = prepared(cfg)
    torch.manual_seed(0)
    model = build_pad(["id", "align", "llm"], "bucket", cfg, text(), data.item_buckets, n_buckets=N_BUCKETS)
    prior = model.gate.raw.detach().clone()
    fixed = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith(("experts.llm.", "gate."))}
    llm_before = {k: v.clone() for k, v in model.experts["llm"].state_dict().items()}
    real_fit = finetune_module.fit

    def watched_fit(scorer, *args, **kwargs):  # the real fit, after a look at what it is given
        assert torch.equal(scorer.pad.gate.raw, prior)
        assert not any(p.requires_grad for n, p in scorer.named_parameters() if not n.startswith("pad.experts.llm."))
        scorer.train()
        assert scorer.pad.experts["llm"].training and not scorer.pad.experts["id"].training
        return real_fit(scorer, *args, **kwargs)

    monkeypatch.setattr(finetune_module, "fit", watched_fit)
    result, gate_losses, _ = finetune(data, model, cfg, ft_cfg(objective="fused", epochs=3), EV,
                                      device=torch.device("cpu"), live_dir=tmp_path / "live",
                                      resume_root=tmp_path / "cache")
    assert result.epochs_run == 3
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in fixed.items())  # ID and alignment experts untouched
    assert any(not torch.equal(v, model.experts["llm"].state_dict()[k]) for k, v in llm_before.items())
    assert all(p.requires_grad for p in model.parameters())  # unfrozen again: the gate is fitted next
    assert len(gate_losses) == 2 and not torch.equal(model.gate.raw.detach(), prior)
    # early stopping ranked PAD's fused scores (gate at its prior), not the LLM expert's own
    at_prior = copy.deepcopy(model)
    with torch.no_grad():
        at_prior.gate.raw.copy_(prior)
    valid = {"valid": data.splits["valid"]}
    fused = evaluate(at_prior, valid, data.item_buckets, 10, 32, n_buckets=N_BUCKETS)["valid"]["ndcg_10"]
    alone = evaluate(model.experts["llm"], valid, data.item_buckets, 10, 32, n_buckets=N_BUCKETS)["valid"]["ndcg_10"]
    assert result.best_valid["ndcg_10"] == fused != alone
