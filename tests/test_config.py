"""Strict params loading: unknown, missing or mistyped keys stop with the key and file named."""
from pathlib import Path

import pytest
import yaml

from pad.config import SECTIONS, AlignConfig, FinetuneConfig, load_all, load_section, train_config
from pad.errors import PadError

ROOT = Path(__file__).resolve().parents[1]


def _params(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    edit(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_project_params_load_into_every_section():
    params = load_all(ROOT / "params.yaml")
    assert set(params) == set(SECTIONS)
    assert isinstance(params["align"], AlignConfig) and params["align"].lambda_ == 0.2
    assert isinstance(params["finetune"], FinetuneConfig)
    assert params["finetune"].experts == ("id", "align", "llm")


def test_sections_are_frozen():
    cfg = load_section("align", ROOT / "params.yaml")
    with pytest.raises(Exception):
        cfg.lambda_ = 1.0  # type: ignore[misc]


def test_train_config_is_the_shared_training_part():
    cfg = load_section("align", ROOT / "params.yaml")
    train = train_config(cfg)
    assert train.lr == cfg.lr and train.patience == cfg.patience
    assert not hasattr(train, "kernel")


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda p: p["align"].update(lamda=0.3), "unknown key 'align.lamda'"),
        (lambda p: p["align"].pop("lambda"), "missing key 'align.lambda'"),
        (lambda p: p["align"].update({"lambda": "high"}), "'align.lambda' must be a number"),
        (lambda p: p["align"].update(kernel="rbf"), "'align.kernel' is 'rbf'; choose one of gaussian"),
        (lambda p: p["pretrain"].update(epochs=2.5), "'pretrain.epochs' must be an integer"),
        (lambda p: p["pretrain"].update(epochs=True), "'pretrain.epochs' must be an integer"),
        (lambda p: p["finetune"].update(experts=[]), "'finetune.experts' must be a non-empty list"),
        (lambda p: p["finetune"].update(experts=["id", "id"]), "'finetune.experts' lists an entry twice"),
        (lambda p: p["finetune"].update(experts=["id", "bert"]), "'finetune.experts[1]' is 'bert'"),
        (lambda p: p["data"]["synthetic"].update(users="many"), "'data.synthetic.users' must be an integer"),
        (lambda p: p.update(data=[1, 2]), "'data' must be a mapping"),
    ],
)
def test_bad_params_name_the_key_and_file(tmp_path, edit, message):
    path = _params(tmp_path, edit)
    with pytest.raises(PadError) as err:
        load_all(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_unknown_section_and_missing_file(tmp_path):
    path = _params(tmp_path, lambda p: p.update(trainer={"lr": 1}))
    with pytest.raises(PadError, match="unknown section 'trainer'"):
        load_all(path)
    with pytest.raises(PadError, match="params file not found"):
        load_section("data", tmp_path / "nope.yaml")


def test_int_is_accepted_where_a_float_is_expected(tmp_path):
    path = _params(tmp_path, lambda p: p["align"].update({"lambda": 1}))
    cfg = load_section("align", path)
    assert cfg.lambda_ == 1.0 and isinstance(cfg.lambda_, float)
