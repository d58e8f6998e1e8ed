"""The generic training loop: early stopping keeps the best weights, resume, logging, frozen params."""
import copy
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pad.config import ModelConfig, TrainConfig
from pad.losses.recommendation import recommendation_loss
from pad.models import build_id_expert
from pad.train.data import TrainData
from pad.errors import PadError
from pad.train.loop import clear_resume, fit, seed_everything


def setup(loss="ce"):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 31, size=int(rng.integers(5, 12))) for _ in range(40)]
    cfg = ModelConfig("sasrec", 8, 1, 2, 0.1, 8, loss, 2)
    seed_everything(0)
    model = build_id_expert(cfg, 30)
    data = TrainData(seqs, 30, 8, {"ce": 0, "bce": 1, "sampled_ce": 2}[loss])
    return model, data, functools.partial(recommendation_loss, kind=loss)


def live_files(folder: Path) -> dict[str, str]:
    """Every file of a DVCLive folder (relative path -> text)."""
    return {str(f.relative_to(folder)): f.read_text() for f in sorted(folder.rglob("*")) if f.is_file()}


def live_columns(folder: Path) -> dict[str, list[list[str]]]:
    """The per-epoch TSVs of a DVCLive folder: logged name -> rows (header first)."""
    return {f.stem: [line.split("\t") for line in f.read_text().splitlines()]
            for f in sorted((folder / "plots/metrics").glob("*.tsv"))}


def tcfg(**kw):
    base = dict(epochs=6, batch_size=16, lr=0.01, weight_decay=0.0, patience=2, seed=3, time_budget_s=0.0)
    return TrainConfig(**{**base, **kw})


def test_early_stopping_keeps_the_best_epoch_weights(tmp_path):
    model, data, loss_fn = setup()
    scripted = iter([1.0, 3.0, 2.0, 2.5, 9.0, 9.0])  # best at epoch 2, then 2 bad epochs -> stop
    states = []

    def valid_fn(m):
        states.append(copy.deepcopy(m.state_dict()))
        return {"ndcg_10": next(scripted), "hr_10": 0.0}

    result = fit(model, data, loss_fn, valid_fn, tcfg(), live_dir=tmp_path / "live")
    assert (result.best_epoch, result.epochs_run, result.stop_reason) == (2, 4, "patience")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, states[1][k])
    columns = live_columns(tmp_path / "live")  # one TSV per value, one row per epoch, no timings
    assert set(columns) == {"train_loss", "valid_ndcg_10", "valid_hr_10"}
    for name, rows in columns.items():
        assert rows[0] == ["step", name] and [r[0] for r in rows[1:]] == ["1", "2", "3", "4"]
    assert [float(r[1]) for r in columns["valid_ndcg_10"][1:]] == [1.0, 3.0, 2.0, 2.5]
    assert [float(r[1]) for r in columns["train_loss"][1:]] == [r["train_loss"] for r in result.rows]
    summary = json.loads((tmp_path / "live/metrics.json").read_text())  # the last epoch's values
    assert summary == {"train_loss": result.rows[-1]["train_loss"], "valid_ndcg_10": 2.5, "valid_hr_10": 0.0, "step": 4}
    assert set(live_files(tmp_path / "live")) == {"metrics.json", *(f"plots/metrics/{n}.tsv" for n in columns)}
    timings = result.timings()["epochs"]  # the timings go to timings/<stage>.json instead
    assert [t["epoch"] for t in timings] == [1, 2, 3, 4]
    assert set(timings[0]) == {"epoch", "epoch_s", "samples_per_s", "eval_s", "epoch_cpu_s"}


def test_custom_loss_with_extra_logged_values_and_frozen_params(tmp_path):
    model, data, _ = setup("bce")
    model.backbone.requires_grad_(False)
    frozen = copy.deepcopy(model.backbone.state_dict())

    def loss_fn(m, batch):
        rec = recommendation_loss(m, batch, "bce")
        extra = m.items().pow(2).mean()
        return rec + 0.1 * extra, {"align_loss": extra}

    fit(model, data, loss_fn, lambda m: {"ndcg_10": 0.0, "hr_10": 0.0}, tcfg(epochs=2, patience=0),
        live_dir=tmp_path / "live")
    assert len(live_columns(tmp_path / "live")["align_loss"]) == 3
    assert "align_loss" in json.loads((tmp_path / "live/metrics.json").read_text())
    for k, v in model.backbone.state_dict().items():
        torch.testing.assert_close(v, frozen[k])


class Killed(Exception):
    pass


def test_resume_after_a_kill_gives_the_same_result_and_log(tmp_path):
    def run(resume_dir, kill_at=None):
        model, data, loss_fn = setup("bce")
        epochs = iter(range(1, 100))

        def valid_fn(m):
            if next(epochs) == kill_at:
                raise Killed
            return {"ndcg_10": -float(m.items().detach().norm()), "hr_10": 0.0}  # deterministic, weight-dependent

        result = fit(model, data, loss_fn, valid_fn, tcfg(epochs=4, patience=0), resume_dir=resume_dir,
                     live_dir=resume_dir / "live")
        return model, result

    full, full_result = run(tmp_path / "a")
    with pytest.raises(Killed):
        run(tmp_path / "b", kill_at=3)
    killed = tmp_path / "b/live/plots/metrics/train_loss.tsv"
    assert len(killed.read_text().splitlines()) == 3  # epochs 1 and 2 logged before the kill
    killed.write_text(killed.read_text() + "3\t0.12")  # and a line half-written as the process died
    resumed, resumed_result = run(tmp_path / "b")
    assert [r["epoch"] for r in resumed_result.rows] == [1, 2, 3, 4]
    assert resumed_result.best_epoch == full_result.best_epoch
    for k, v in resumed.state_dict().items():
        torch.testing.assert_close(v, full.state_dict()[k])
    assert live_files(tmp_path / "b/live") == live_files(tmp_path / "a/live")  # byte for byte
    assert len(live_columns(tmp_path / "a/live")["train_loss"]) == 5


def test_time_budget_stops_after_the_epoch_that_passes_it():
    model, data, loss_fn = setup()
    result = fit(model, data, loss_fn, lambda m: {"ndcg_10": 0.0, "hr_10": 0.0},
                 tcfg(epochs=50, patience=0, time_budget_s=1e-9))
    assert (result.epochs_run, result.stop_reason) == (1, "time_budget")


def test_lr_by_prefix_gives_a_parameter_group_its_own_learning_rate():
    from pad.train.loop import _param_groups

    model = torch.nn.ModuleDict({"gate": torch.nn.Linear(2, 2), "body": torch.nn.Linear(2, 2)})
    model["body"].bias.requires_grad_(False)
    groups = {g["lr"]: g["params"] for g in _param_groups(model, 1e-3, {"gate.": 0.05}, lambda p: True)}
    assert set(groups) == {1e-3, 0.05}
    assert {id(p) for p in groups[0.05]} == {id(p) for p in model["gate"].parameters()}
    assert [id(p) for p in groups[1e-3]] == [id(model["body"].weight)]  # frozen bias left out


def test_a_truncated_resume_state_is_reported_and_training_starts_over(tmp_path, capsys):
    model, data, loss_fn = setup()
    (tmp_path / "r").mkdir()
    (tmp_path / "r/last.pt").write_bytes(b"PK\x03\x04 half a zip")  # a kill during a non-atomic copy, a full disk
    result = fit(model, data, loss_fn, lambda m: {"ndcg_10": 0.0, "hr_10": 0.0}, tcfg(epochs=2, patience=0),
                 resume_dir=tmp_path / "r")
    assert [r["epoch"] for r in result.rows] == [1, 2]
    err = capsys.readouterr().err
    assert "warning:" in err and "last.pt" in err and "from scratch" in err


def test_a_non_finite_loss_stops_with_one_line(tmp_path):
    model, data, loss_fn = setup()

    def nan_loss(m, batch):
        return loss_fn(m, batch) * float("nan")

    with pytest.raises(PadError, match="training loss is nan") as err:
        fit(model, data, nan_loss, lambda m: {"ndcg_10": 0.0, "hr_10": 0.0}, tcfg(), resume_dir=tmp_path / "r",
            live_dir=tmp_path / "live")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "r/last.pt").exists()  # nothing saved from the failed epoch


def test_the_log_is_written_even_when_no_epoch_is_left_to_run(tmp_path):
    model, data, loss_fn = setup()
    valid = lambda m: {"ndcg_10": 0.0, "hr_10": 0.0}  # noqa: E731
    fit(model, data, loss_fn, valid, tcfg(epochs=2, patience=0), resume_dir=tmp_path / "r")  # killed before writing
    result = fit(model, data, loss_fn, valid, tcfg(epochs=2, patience=0), resume_dir=tmp_path / "r",
                 live_dir=tmp_path / "live")
    assert result.epochs_run == 2 and len(live_columns(tmp_path / "live")["train_loss"]) == 3
    assert json.loads((tmp_path / "live/metrics.json").read_text())["step"] == 2
    clear_resume(result)
    assert not (tmp_path / "r").exists()
    assert set(result.timings()) == {"seconds", "samples_per_s", "epochs"}


def rows_setup(loss="bce"):
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 201, size=int(rng.integers(5, 12))) for _ in range(8)]
    cfg = ModelConfig("sasrec", 8, 1, 2, 0.1, 8, loss, 2, item_updates="rows")
    seed_everything(0)
    model = build_id_expert(cfg, 200)
    data = TrainData(seqs, 200, 8, {"bce": 1, "sampled_ce": 2}[loss])
    return model, data, functools.partial(recommendation_loss, kind=loss)


@pytest.mark.parametrize("loss", ["bce", "sampled_ce"])
def test_row_updates_touch_only_the_rows_of_the_batch(loss):
    from pad.train.loop import Optimizer

    model, data, loss_fn = rows_setup(loss)
    batch = next(data.batches(1, 4, seed=0))
    touched = set(torch.cat([batch.inputs.flatten(), batch.targets.flatten(), batch.negatives.flatten()]).tolist()) - {0}
    opt = Optimizer(model, tcfg(lr=0.05), {})
    assert [type(p).__name__ for p in opt.parts] == ["AdamW", "SparseAdam"]
    before = model.items().detach().clone()
    opt.zero_grad()
    loss_fn(model, batch).backward()
    grad = model.items.embedding.weight.grad
    assert grad.is_sparse and set(grad.coalesce().indices()[0].tolist()) <= touched
    opt.step()
    changed = set(torch.nonzero((model.items().detach() != before).any(1)).flatten().tolist())
    assert changed and changed <= touched and len(touched) < 200  # the other rows did not move


def test_row_updates_train_resume_and_reject_weight_decay(tmp_path):
    from pad.train.loop import Optimizer

    def run(resume_dir, kill_at=None):
        model, data, loss_fn = rows_setup()
        epochs = iter(range(1, 100))

        def valid_fn(m):
            if next(epochs) == kill_at:
                raise Killed
            return {"ndcg_10": -float(m.items().detach().norm()), "hr_10": 0.0}

        result = fit(model, data, loss_fn, valid_fn, tcfg(epochs=3, patience=0, batch_size=4), resume_dir=resume_dir)
        return model, result

    full, result = run(tmp_path / "a")
    assert result.rows[-1]["train_loss"] < result.rows[0]["train_loss"]
    with pytest.raises(Killed):
        run(tmp_path / "b", kill_at=2)
    resumed, _ = run(tmp_path / "b")  # SparseAdam's state comes back with the AdamW state
    for k, v in resumed.state_dict().items():
        torch.testing.assert_close(v, full.state_dict()[k])
    with pytest.raises(PadError, match="weight_decay is 0.1.*item_updates"):
        Optimizer(full, tcfg(weight_decay=0.1), {})


def test_dense_updates_use_the_fused_adamw():
    from pad.train.loop import Optimizer

    model, _, _ = setup()
    (part,) = Optimizer(model, tcfg(), {}).parts
    assert isinstance(part, torch.optim.AdamW) and part.defaults["fused"]
