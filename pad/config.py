"""Params: one frozen dataclass per `params.yaml` section, loaded strictly.

An unknown section or key, a missing key, a value of the wrong type or outside its range stops with a
`PadError` that names the key and the file. Every numeric field declares its valid values next to it,
`Annotated[int, Range(ge=1)]`; floats must also be finite (YAML `.nan` / `.inf` are rejected). Rules that
tie two fields together are a section's `problems()`. Stages get the section they need
(`load_section("align")`), never the whole tree.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

import yaml

from pad.errors import PadError

PARAMS_FILE = "params.yaml"

Loss = Literal["bce", "ce", "sampled_ce", "shared_ce"]


@dataclass(frozen=True)
class Range:
    """The valid values of a numeric param: ge / gt a lower bound (inclusive / exclusive), le / lt an
    upper one; None = unbounded. Written next to the field: `dim: Annotated[int, Range(ge=1)]`."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def __contains__(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def __str__(self) -> str:
        """'>= 1', '> 0', 'in [0, 1)', ...: what follows "must be" in an error message."""
        low = ("[", self.ge) if self.ge is not None else ("(", self.gt) if self.gt is not None else None
        high = ("]", self.le) if self.le is not None else (")", self.lt) if self.lt is not None else None
        if low and high:
            return f"in {low[0]}{low[1]}, {high[1]}{high[0]}"
        if low:
            return f"{'>=' if low[0] == '[' else '>'} {low[1]}"
        if high:
            return f"{'<=' if high[0] == ']' else '<'} {high[1]}"
        return "any finite number"


SEED_MAX = 2**32 - 1  # numpy's legacy seed range; torch seeds derived from it, e.g. (seed * 100_003 + epoch) * 1_009, stay < 2**64


@dataclass(frozen=True)
class PathsConfig:
    """Every file the pipeline reads or writes, named once (dvc.yaml uses the same keys)."""

    raw: str
    items: str
    sequences: str
    embeddings: str
    embed_cache: str
    train_cache: str  # resume folders of interrupted training runs (outside DVC outs)
    pretrain_model: str
    align_model: str
    finetune_model: str
    metrics: str
    plots: str
    dvclive: str  # per-stage training logs (DVCLive: <dvclive>/<stage>/metrics.json, plots/metrics/*.tsv)
    timings: str  # wall times and throughput per stage (outside DVC: they differ run to run)


@dataclass(frozen=True)
class SyntheticConfig:
    """The offline generator (DESIGN §2): topic titles, drifting users, power-law popularity."""

    users: Annotated[int, Range(ge=1)]
    items: Annotated[int, Range(ge=1)]  # >= topics (problems)
    topics: Annotated[int, Range(ge=1)]
    min_len: Annotated[int, Range(ge=1)]  # a user's interactions: min_len .. max_len
    max_len: Annotated[int, Range(ge=1)]  # >= min_len; >= data.min_interactions (DataConfig.problems)
    drift: Annotated[float, Range(ge=0, le=1)]  # a probability per step
    popularity_exponent: Annotated[float, Range(ge=0)]  # 0 = uniform popularity
    seed: Annotated[int, Range(ge=0, le=SEED_MAX)]

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.max_len < self.min_len:
            yield "max_len", f"is {self.max_len}; must be >= 'data.synthetic.min_len' ({self.min_len})"
        if self.items < self.topics:
            yield "items", f"is {self.items}; must be >= 'data.synthetic.topics' ({self.topics}): every topic needs an item"


@dataclass(frozen=True)
class DataConfig:
    source: Literal["synthetic", "pad_csv", "amazon2018", "mind", "generic", "recbole"]
    path: str
    name: str
    text_field: str
    min_rating: Annotated[float, Range()]  # any rating scale
    min_interactions: Annotated[int, Range(ge=3)]  # a training item, the valid target, the test target
    max_items: Annotated[int, Range(ge=4)]  # >= min_interactions; 4 = one training (input, target) pair
    n_buckets: Annotated[int, Range(ge=1, le=127)]  # stored as int8; <= items (checked in prepare)
    sample_users: Annotated[int, Range(ge=0)]  # keep a seeded sample of this many users (after the filters); 0 = all
    sample_seed: Annotated[int, Range(ge=0, le=SEED_MAX)]
    synthetic: SyntheticConfig

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.max_items < self.min_interactions:
            yield "max_items", f"is {self.max_items}; must be >= 'data.min_interactions' ({self.min_interactions})"
        if self.source == "synthetic" and self.synthetic.max_len < self.min_interactions:
            yield "synthetic.max_len", (f"is {self.synthetic.max_len}; must be >= 'data.min_interactions' "
                                        f"({self.min_interactions}), or every synthetic user is filtered out")


@dataclass(frozen=True)
class EmbedConfig:
    encoder: Literal["hf", "llm2vec"]
    model: str
    mntp_adapter: str
    adapter: str
    instruction: str
    pooling: Literal["mean"]
    max_length: Annotated[int, Range(ge=1)]  # tokens per text
    batch_size: Annotated[int, Range(ge=1)]
    shard_size: Annotated[int, Range(ge=1)]  # texts per cached shard
    device: str
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"]  # int8: dynamic int8 Linear layers, CPU only


@dataclass(frozen=True)
class ModelConfig:
    """The sequence model shared by every phase, and the recommendation loss (DESIGN §4)."""

    backbone: Literal["sasrec", "gru4rec", "caser"]
    dim: Annotated[int, Range(ge=1)]  # sasrec: divisible by heads (problems)
    blocks: Annotated[int, Range(ge=1)]  # sasrec: transformer blocks; gru4rec: GRU layers
    heads: Annotated[int, Range(ge=1)]
    dropout: Annotated[float, Range(ge=0, lt=1)]
    max_len: Annotated[int, Range(ge=1)]  # the items the model sees
    loss: Loss
    negatives: Annotated[int, Range(ge=1)]  # sampled_ce: per position; shared_ce: per batch
    # dense: AdamW updates the whole ID table every step; rows: only the rows the batch touches (sparse
    # gradients, lazy Adam), so a step's cost follows the batch, not the catalogue (not with ce)
    item_updates: Literal["dense", "rows"] = "dense"

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.backbone == "sasrec" and self.dim % self.heads:
            yield "dim", f"is {self.dim}; must be divisible by 'model.heads' ({self.heads}) for sasrec"
        if self.item_updates == "rows" and self.loss == "ce":
            yield "item_updates", ("is rows, but the loss ce scores (and updates) every item each step; use "
                                   "'model.loss' shared_ce, sampled_ce or bce, or 'model.item_updates' dense")


@dataclass(frozen=True)
class TrainConfig:
    """What every training phase needs: AdamW, batches of users, early stopping on valid nDCG@10."""

    epochs: Annotated[int, Range(ge=1)]
    batch_size: Annotated[int, Range(ge=1)]  # users per batch
    lr: Annotated[float, Range(gt=0)]
    weight_decay: Annotated[float, Range(ge=0)]
    patience: Annotated[int, Range(ge=0)]  # epochs without a better valid nDCG before stopping; 0 = never stop early
    seed: Annotated[int, Range(ge=0, le=SEED_MAX)]
    time_budget_s: Annotated[float, Range(ge=0)]  # stop after the epoch that passes this many seconds of training; 0 = none


@dataclass(frozen=True)
class PretrainConfig(TrainConfig):
    pass


@dataclass(frozen=True)
class AlignConfig(TrainConfig):
    lambda_: Annotated[float, Range(ge=0)]  # weight of the alignment loss; 0 = recommendation loss only
    kernel: Literal["gaussian", "laplacian", "linear", "cosine", "infonce"]
    mode: Literal["anchored", "non_anchored", "frozen", "none"]
    temperature: Annotated[float, Range(gt=0)]  # infonce only
    fusion: Literal["sum", "residual", "reference"]
    id_scale: Annotated[float, Range(ge=0)]  # the alignment expert's ID table starts as id_scale × the phase-1 table


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    gate: Literal["bucket", "network", "global"]
    experts: tuple[Literal["id", "align", "llm"], ...]
    gate_lr: Annotated[float, Range(gt=0)]  # the gate's Adam learning rate (it is fitted on the validation split, DESIGN §6)
    gate_epochs: Annotated[int, Range(ge=0)]  # passes over the validation users that fit the gate; 0 = keep its initial weights
    gate_check: bool  # cross-fit the gate on two halves of the validation users; where it loses to an expert, use that expert
    llm_objective: Literal["alone", "fused"]  # the LLM expert's loss: its own logits, or PAD's fused ones (pad.train.fused_llm)


@dataclass(frozen=True)
class EvaluateConfig:
    k: Annotated[int, Range(ge=1)]  # HR@k, nDCG@k
    user_chunk: Annotated[int, Range(ge=1)]  # users scored at once
    tau_max_pairs: Annotated[int, Range(ge=2)]  # Kendall's tau needs 2+ pairs
    seed: Annotated[int, Range(ge=0, le=SEED_MAX)]  # Kendall's pair sample, the valid_users sample
    valid_users: Annotated[int, Range(ge=0)]  # early stopping ranks this seeded sample of validation users; 0 = all


# Field metadata of a list param that may be empty (`baselines.methods: []`); other lists need an entry.
MAY_BE_EMPTY = "may_be_empty"

BaselineMethod = Literal["hybrid", "morec", "llminit", "alphafuse", "llmesr", "ctrl", "smem", "make", "disco"]


@dataclass(frozen=True)
class BaselinesConfig(TrainConfig):
    """The baselines stage (paper Table 2 and newer peers, DESIGN §12): which methods to train, with the same
    data, text embeddings, `model.*` backbone and loss, and full-ranking evaluation as PAD. Empty = the stage
    trains nothing and writes an empty metrics file (a default `dvc repro` pays nothing for it)."""

    methods: tuple[BaselineMethod, ...] = dataclasses.field(metadata={MAY_BE_EMPTY: True})  # [] allowed
    morec_tower: Literal["linear", "mlp"]  # MoRec's text tower (mlp: the reference code's deep TextMLP)
    text_std: Annotated[float, Range(gt=0)]  # LLMInit / AlphaFuse / LLM-ESR: per-coordinate std of the text PCA
    null_dim: Annotated[int, Range(ge=1)]  # AlphaFuse: ID dimensions in the text's low-variance directions; < model.dim
    llmesr_alpha: Annotated[float, Range(ge=0)]  # LLM-ESR: weight of the self-distillation from similar users
    llmesr_neighbours: Annotated[int, Range(ge=1)]  # LLM-ESR: similar users retrieved per user (from training data)
    llmesr_teacher: Literal["train", "eval"]  # LLM-ESR: the similar users' states with dropout (the code's) or without
    ctrl_epochs: Annotated[int, Range(ge=0)]  # CTRL: passes of ID-text InfoNCE pre-training over the items; 0 = none
    ctrl_temperature: Annotated[float, Range(gt=0)]  # CTRL: the InfoNCE temperature
    make_tower: Literal["linear", "mlp"]  # MAKE: the text expert's tower (pre-trained alone, then fused)
    disco_unique: Annotated[int, Range(ge=1)]  # DisCo: width of each modality-unique chunk; < model.dim / 2
    disco_sufficiency: Annotated[float, Range(ge=0)]  # DisCo: weight of the per-chunk recommendation losses
    disco_disentangle: Annotated[float, Range(ge=0)]  # DisCo: weight of the chunks' decorrelation loss


Seed = Annotated[int, Range(ge=0, le=SEED_MAX)]

SECTIONS: dict[str, Any] = {
    "seed": Seed,  # one top-level value: every training phase's seed (`dvc exp run -S seed=3`)
    "paths": PathsConfig,
    "data": DataConfig,
    "embed": EmbedConfig,
    "model": ModelConfig,
    "pretrain": PretrainConfig,
    "align": AlignConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvaluateConfig,
    "baselines": BaselinesConfig,
}

# The training phases: their `seed` field is the top-level `seed`, so one value seeds them all.
SEEDED = ("pretrain", "align", "finetune", "baselines")

# YAML keys that are Python keywords map to a trailing-underscore field (align.lambda -> lambda_).
_KEYWORD_FIELDS = {"lambda": "lambda_"}


def train_config(section: TrainConfig) -> TrainConfig:
    """The plain training part of a phase's section (what `pad.train.fit` takes)."""
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    return TrainConfig(**{n: getattr(section, n) for n in names})


def read_params(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise PadError(f"{path}: params file not found (run from the project root, where params.yaml is)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PadError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PadError(f"{path}: expected a mapping of sections at the top level")
    return raw


def load_section(name: str, path: str | Path = PARAMS_FILE) -> Any:
    """Load one section of params.yaml into its frozen dataclass, strictly (an unknown top-level section,
    e.g. a misspelt `aling:`, is an error for every stage, not only for the one that would read it)."""
    if name not in SECTIONS:
        raise PadError(f"unknown params section {name!r}; known: {', '.join(SECTIONS)}")
    raw = _read_sections(path)
    if name not in raw:
        raise PadError(f"{path}: missing section '{name}'")
    if not dataclasses.is_dataclass(SECTIONS[name]):  # a top-level value (seed)
        return _coerce(SECTIONS[name], raw[name], key=name, file=str(path))
    value = raw[name]
    if name in SEEDED and isinstance(value, dict):
        if "seed" in value:
            raise PadError(f"{path}: '{name}.seed' is not a key any more: the top-level 'seed' seeds every phase "
                           f"(move its value there, or delete the line)")
        if "seed" not in raw:
            raise PadError(f"{path}: missing section 'seed' (the top-level seed of every training phase)")
        value = {**value, "seed": _coerce(Seed, raw["seed"], key="seed", file=str(path))}
    return build(SECTIONS[name], value, key=name, file=str(path))


def load_all(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """Every section, checked."""
    _read_sections(path)
    return {name: load_section(name, path) for name in SECTIONS}


def _read_sections(path: str | Path) -> dict[str, Any]:
    """`read_params`, with every top-level key a known section."""
    raw = read_params(path)
    unknown = sorted(set(raw) - set(SECTIONS), key=str)
    if unknown:
        raise PadError(f"{path}: unknown section '{unknown[0]}'; known: {', '.join(SECTIONS)}")
    return raw


def build(cls: type, value: Any, *, key: str, file: str) -> Any:
    """Build dataclass `cls` from a YAML mapping; every error names `file` and the dotted `key`."""
    if not isinstance(value, dict):
        raise PadError(f"{file}: '{key}' must be a mapping, got {_typename(value)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = {f.name for f in dataclasses.fields(cls)}
    given = {_KEYWORD_FIELDS.get(k, k): k for k in value}
    for field_name, yaml_key in given.items():
        if field_name not in fields:
            known = ", ".join(sorted(_yaml_key(f) for f in fields))
            raise PadError(f"{file}: unknown key '{key}.{yaml_key}' (known keys of '{key}': {known})")
    kwargs = {}
    may_be_empty = {f.name for f in dataclasses.fields(cls) if f.metadata.get(MAY_BE_EMPTY)}
    for field_name in sorted(fields):
        yaml_key = _yaml_key(field_name)
        if yaml_key not in value:
            raise PadError(f"{file}: missing key '{key}.{yaml_key}'")
        if field_name in may_be_empty and value[yaml_key] == []:
            kwargs[field_name] = ()
            continue
        kwargs[field_name] = _coerce(hints[field_name], value[yaml_key], key=f"{key}.{yaml_key}", file=file)
    built = cls(**kwargs)
    for sub_key, problem in getattr(built, "problems", lambda: ())():
        raise PadError(f"{file}: '{key}.{sub_key}' {problem}")
    return built


def _yaml_key(field_name: str) -> str:
    inverse = {v: k for k, v in _KEYWORD_FIELDS.items()}
    return inverse.get(field_name, field_name)


def _coerce(tp: Any, value: Any, *, key: str, file: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        value = _coerce(base, value, key=key, file=file)
        for valid in (e for e in extras if isinstance(e, Range)):
            if value not in valid:
                raise PadError(f"{file}: '{key}' is {value!r}; must be {valid}")
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key=key, file=file)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise PadError(f"{file}: '{key}' is {value!r}; choose one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list) or not value:
            raise PadError(f"{file}: '{key}' must be a non-empty list, got {value!r}")
        items = tuple(_coerce(item_tp, v, key=f"{key}[{i}]", file=file) for i, v in enumerate(value))
        if len(set(items)) != len(items):
            raise PadError(f"{file}: '{key}' lists an entry twice: {value!r}")
        return items
    if origin in (typing.Union, types.UnionType):
        raise TypeError(f"unions are not supported in params ({key})")
    if tp is bool:
        if not isinstance(value, bool):
            raise PadError(f"{file}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise PadError(f"{file}: '{key}' must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PadError(f"{file}: '{key}' must be a number, got {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond float range
            number = math.inf
        if not math.isfinite(number):
            raise PadError(f"{file}: '{key}' is {value!r}; must be a finite number")
        return number
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise PadError(f"{file}: '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported params type {tp!r} for {key}")


def _typename(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
