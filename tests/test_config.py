"""Strict params loading: unknown, missing or mistyped keys stop with the key and file named."""
import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from pad.config import SECTIONS, SEEDED, AlignConfig, FinetuneConfig, Range, load_all, load_section, train_config
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


# Every numeric param just outside its range (the message names the key, the value and the range).
OUT_OF_RANGE = [
    ("data.min_interactions", 2, "must be >= 3"),
    ("data.max_items", 3, "must be >= 4"),
    ("data.n_buckets", 0, "must be in [1, 127]"),
    ("data.n_buckets", 128, "must be in [1, 127]"),
    ("data.sample_users", -1, "must be >= 0"),
    ("data.sample_seed", -1, "must be in [0, 4294967295]"),
    ("data.synthetic.users", 0, "must be >= 1"),
    ("data.synthetic.items", 0, "must be >= 1"),
    ("data.synthetic.topics", 0, "must be >= 1"),
    ("data.synthetic.min_len", 0, "must be >= 1"),
    ("data.synthetic.max_len", 0, "must be >= 1"),
    ("data.synthetic.drift", -0.1, "must be in [0, 1]"),
    ("data.synthetic.drift", 1.5, "must be in [0, 1]"),
    ("data.synthetic.popularity_exponent", -1, "must be >= 0"),
    ("seed", -1, "must be in [0, 4294967295]"),
    ("seed", 2**32, "must be in [0, 4294967295]"),
    ("data.synthetic.seed", -1, "must be in [0, 4294967295]"),
    ("data.synthetic.seed", 2**32, "must be in [0, 4294967295]"),
    ("embed.max_length", 0, "must be >= 1"),
    ("embed.batch_size", 0, "must be >= 1"),
    ("embed.shard_size", 0, "must be >= 1"),
    ("model.dim", 0, "must be >= 1"),
    ("model.blocks", 0, "must be >= 1"),
    ("model.heads", 0, "must be >= 1"),
    ("model.dropout", -0.1, "must be in [0, 1)"),
    ("model.dropout", 1, "must be in [0, 1)"),
    ("model.max_len", 0, "must be >= 1"),
    ("model.negatives", 0, "must be >= 1"),
    *[(f"{phase}.{key}", value, rule) for phase in ("pretrain", "align", "finetune", "baselines") for key, value, rule in [
        ("epochs", 0, "must be >= 1"),
        ("batch_size", 0, "must be >= 1"),
        ("lr", 0, "must be > 0"),
        ("weight_decay", -0.01, "must be >= 0"),
        ("patience", -1, "must be >= 0"),
        ("time_budget_s", -1, "must be >= 0"),
    ]],
    ("align.lambda", -0.1, "must be >= 0"),
    ("align.temperature", 0, "must be > 0"),
    ("align.id_scale", -1, "must be >= 0"),
    ("finetune.gate_lr", 0, "must be > 0"),
    ("finetune.gate_epochs", -1, "must be >= 0"),
    ("baselines.text_std", 0, "must be > 0"),
    ("baselines.null_dim", 0, "must be >= 1"),
    ("baselines.llmesr_alpha", -0.1, "must be >= 0"),
    ("baselines.llmesr_neighbours", 0, "must be >= 1"),
    ("baselines.ctrl_epochs", -1, "must be >= 0"),
    ("baselines.ctrl_temperature", 0, "must be > 0"),
    ("baselines.disco_unique", 0, "must be >= 1"),
    ("baselines.disco_sufficiency", -0.1, "must be >= 0"),
    ("baselines.disco_disentangle", -0.1, "must be >= 0"),
    ("evaluate.k", 0, "must be >= 1"),
    ("evaluate.user_chunk", 0, "must be >= 1"),
    ("evaluate.valid_users", -1, "must be >= 0"),
    ("evaluate.tau_max_pairs", 1, "must be >= 2"),
    ("evaluate.seed", -1, "must be in [0, 4294967295]"),
]


def _set(key: str, value):
    *parents, last = key.split(".")

    def edit(p):
        for part in parents:
            p = p[part]
        p[last] = value
    return edit


def _numeric_keys() -> set[str]:
    def walk(cls, prefix):
        for f in dataclasses.fields(cls):
            tp = typing.get_type_hints(cls, include_extras=True)[f.name]
            key = f"{prefix}.{'lambda' if f.name == 'lambda_' else f.name}"
            if dataclasses.is_dataclass(tp):
                yield from walk(tp, key)
            elif typing.get_origin(tp) is typing.Annotated or tp in (int, float):
                yield key, tp
    return {key: tp for name, cls in SECTIONS.items()
            for key, tp in (walk(cls, name) if dataclasses.is_dataclass(cls) else [(name, cls)])}


def test_every_numeric_param_declares_its_range_and_is_tested():
    keys = {k: tp for k, tp in _numeric_keys().items() if k not in {f"{p}.seed" for p in SEEDED}}  # = top-level seed
    for key, tp in keys.items():
        assert typing.get_origin(tp) is typing.Annotated, f"{key} has no Range"
        assert any(isinstance(m, Range) for m in tp.__metadata__), f"{key} has no Range"
    bounded = {key for key, tp in keys.items() if tp.__metadata__[0] != Range()}  # Range() = any finite number
    assert bounded == {key for key, _value, _rule in OUT_OF_RANGE}


@pytest.mark.parametrize("key, value, rule", OUT_OF_RANGE, ids=[f"{k}={v}" for k, v, _ in OUT_OF_RANGE])
def test_out_of_range_is_one_line_naming_key_value_and_range(tmp_path, key, value, rule):
    path = _params(tmp_path, _set(key, value))
    with pytest.raises(PadError) as err:
        load_section(key.split(".")[0], path)
    shown = float(value) if _numeric_keys()[key].__origin__ is float else value
    assert str(err.value) == f"{path}: '{key}' is {shown!r}; {rule}"


FLOAT_KEYS = sorted(k for k, tp in _numeric_keys().items() if tp.__origin__ is float)


@pytest.mark.parametrize("key", FLOAT_KEYS)
@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_nan_and_inf_are_rejected_for_every_float(tmp_path, key, value):
    path = _params(tmp_path, _set(key, "@@"))
    path.write_text(path.read_text().replace("'@@'", value))  # YAML's own spelling of nan / inf
    with pytest.raises(PadError, match=rf"^{path}: '{key}' is .*(nan|inf); must be a finite number$"):
        load_section(key.split(".")[0], path)


def test_huge_integer_for_a_float_is_not_finite(tmp_path):
    path = _params(tmp_path, _set("align.lr", 10**400))
    with pytest.raises(PadError, match="'align.lr' is .*; must be a finite number"):
        load_section("align", path)


@pytest.mark.parametrize("key, value", [
    ("model.dropout", 0), ("pretrain.patience", 0), ("pretrain.time_budget_s", 0), ("align.lambda", 0),
    ("align.id_scale", 0), ("finetune.gate_epochs", 0), ("data.synthetic.drift", 1), ("data.min_rating", -2.5),
    ("data.n_buckets", 127), ("evaluate.seed", 2**32 - 1), ("data.synthetic.popularity_exponent", 0),
])
def test_values_at_the_edge_of_their_range_load(tmp_path, key, value):
    load_all(_params(tmp_path, _set(key, value)))


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["data"]["synthetic"].update(min_len=10, max_len=8),
     "'data.synthetic.max_len' is 8; must be >= 'data.synthetic.min_len' (10)"),
    (lambda p: p["data"]["synthetic"].update(items=10, topics=24),
     "'data.synthetic.items' is 10; must be >= 'data.synthetic.topics' (24): every topic needs an item"),
    (lambda p: p["data"].update(min_interactions=6, max_items=5),
     "'data.max_items' is 5; must be >= 'data.min_interactions' (6)"),
    (lambda p: (p["data"].update(min_interactions=8), p["data"]["synthetic"].update(min_len=3, max_len=7)),
     "'data.synthetic.max_len' is 7; must be >= 'data.min_interactions' (8), or every synthetic user is filtered out"),
    (lambda p: p["model"].update(dim=63, heads=2), "'model.dim' is 63; must be divisible by 'model.heads' (2) for sasrec"),
    (lambda p: p["model"].update(loss="ce", item_updates="rows"),
     "'model.item_updates' is rows, but the loss ce scores (and updates) every item each step; use 'model.loss' "
     "shared_ce, sampled_ce or bce, or 'model.item_updates' dense"),
])
def test_rules_between_fields_name_the_key(tmp_path, edit, message):
    path = _params(tmp_path, edit)
    with pytest.raises(PadError) as err:
        load_all(path)
    assert str(err.value) == f"{path}: {message}"


def test_rules_between_fields_only_apply_where_they_matter(tmp_path):
    path = _params(tmp_path, lambda p: (p["model"].update(backbone="gru4rec", dim=63, heads=2),
                                        p["data"].update(source="pad_csv", min_interactions=30, max_items=40)))
    params = load_all(path)  # heads only shape sasrec; the generator's lengths only matter for synthetic
    assert params["model"].dim == 63 and params["data"].synthetic.max_len < params["data"].min_interactions


def test_an_unknown_section_stops_every_stage(tmp_path):
    path = _params(tmp_path, lambda p: p.update(aling={"lambda": 0.3}))
    for name in SECTIONS:
        with pytest.raises(PadError) as err:
            load_section(name, path)
        assert str(err.value) == f"{path}: unknown section 'aling'; known: {', '.join(SECTIONS)}"


def test_range_reads_as_a_rule():
    assert [str(r) for r in (Range(ge=1), Range(gt=0), Range(ge=0, lt=1), Range(le=5), Range())] == [
        ">= 1", "> 0", "in [0, 1)", "<= 5", "any finite number"]
    assert 0.5 in Range(ge=0, lt=1) and 1 not in Range(ge=0, lt=1) and 0 not in Range(gt=0)


def test_one_top_level_seed_seeds_every_training_phase(tmp_path):
    params = load_all(_params(tmp_path, _set("seed", 7)))
    assert params["seed"] == 7
    assert [params[phase].seed for phase in ("pretrain", "align", "finetune")] == [7, 7, 7]


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["align"].update(seed=3), "'align.seed' is not a key any more: the top-level 'seed' seeds every phase"),
    (lambda p: p.pop("seed"), "missing section 'seed'"),
    (_set("seed", "x"), "'seed' must be an integer"),
])
def test_a_phase_seed_left_over_or_a_missing_seed_is_one_line(tmp_path, edit, message):
    path = _params(tmp_path, edit)
    with pytest.raises(PadError, match=message) as err:
        load_section("finetune" if "align" not in message else "align", path)
    assert "\n" not in str(err.value)
