"""Params: one frozen dataclass per `params.yaml` section, loaded strictly.

An unknown key, a missing key or a value of the wrong type stops with a `PadError` that names the
key and the file. Stages get the section they need (`load_section("align")`), never the whole tree.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from pad.errors import PadError

PARAMS_FILE = "params.yaml"

Loss = Literal["bce", "ce", "sampled_ce"]


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
    timings: str  # wall times and throughput per stage (outside DVC: they differ run to run)


@dataclass(frozen=True)
class SyntheticConfig:
    """The offline generator (DESIGN §2): topic titles, drifting users, power-law popularity."""

    users: int
    items: int
    topics: int
    min_len: int
    max_len: int
    drift: float
    popularity_exponent: float
    seed: int


@dataclass(frozen=True)
class DataConfig:
    source: Literal["synthetic", "pad_csv", "amazon2018", "mind", "generic", "recbole"]
    path: str
    name: str
    text_field: str
    min_rating: float
    min_interactions: int
    max_items: int
    n_buckets: int
    synthetic: SyntheticConfig


@dataclass(frozen=True)
class EmbedConfig:
    encoder: Literal["hf", "llm2vec"]
    model: str
    mntp_adapter: str
    adapter: str
    instruction: str
    pooling: Literal["mean"]
    max_length: int
    batch_size: int
    shard_size: int
    device: str
    dtype: Literal["auto", "float32", "bfloat16", "float16"]


@dataclass(frozen=True)
class ModelConfig:
    """The sequence model shared by every phase, and the recommendation loss (DESIGN §4)."""

    backbone: Literal["sasrec", "gru4rec", "caser"]
    dim: int
    blocks: int
    heads: int
    dropout: float
    max_len: int
    loss: Loss
    negatives: int


@dataclass(frozen=True)
class TrainConfig:
    """What every training phase needs: AdamW, batches of users, early stopping on valid nDCG@10."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    seed: int
    time_budget_s: float  # stop after the epoch that passes this many seconds of training; 0 = none


@dataclass(frozen=True)
class PretrainConfig(TrainConfig):
    pass


@dataclass(frozen=True)
class AlignConfig(TrainConfig):
    lambda_: float
    kernel: Literal["gaussian", "laplacian", "linear", "cosine", "infonce"]
    mode: Literal["anchored", "non_anchored", "frozen", "none"]
    temperature: float
    fusion: Literal["sum", "residual", "reference"]
    id_scale: float  # the alignment expert's ID table starts as id_scale × the phase-1 table


@dataclass(frozen=True)
class FinetuneConfig(TrainConfig):
    gate: Literal["bucket", "network", "global"]
    experts: tuple[Literal["id", "align", "llm"], ...]
    gate_lr: float  # the gate's Adam learning rate (it is fitted on the validation split, DESIGN §6)
    gate_epochs: int  # passes over the validation users that fit the gate


@dataclass(frozen=True)
class EvaluateConfig:
    k: int
    user_chunk: int
    tau_max_pairs: int
    seed: int


SECTIONS: dict[str, type] = {
    "paths": PathsConfig,
    "data": DataConfig,
    "embed": EmbedConfig,
    "model": ModelConfig,
    "pretrain": PretrainConfig,
    "align": AlignConfig,
    "finetune": FinetuneConfig,
    "evaluate": EvaluateConfig,
}

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
    """Load one section of params.yaml into its frozen dataclass, strictly."""
    if name not in SECTIONS:
        raise PadError(f"unknown params section {name!r}; known: {', '.join(SECTIONS)}")
    raw = read_params(path)
    if name not in raw:
        raise PadError(f"{path}: missing section '{name}'")
    return build(SECTIONS[name], raw[name], key=name, file=str(path))


def load_all(path: str | Path = PARAMS_FILE) -> dict[str, Any]:
    """Every section, checked (also rejects unknown top-level sections)."""
    raw = read_params(path)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise PadError(f"{path}: unknown section '{unknown[0]}'; known: {', '.join(SECTIONS)}")
    return {name: load_section(name, path) for name in SECTIONS}


def build(cls: type, value: Any, *, key: str, file: str) -> Any:
    """Build dataclass `cls` from a YAML mapping; every error names `file` and the dotted `key`."""
    if not isinstance(value, dict):
        raise PadError(f"{file}: '{key}' must be a mapping, got {_typename(value)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    given = {_KEYWORD_FIELDS.get(k, k): k for k in value}
    for field_name, yaml_key in given.items():
        if field_name not in fields:
            known = ", ".join(sorted(_yaml_key(f) for f in fields))
            raise PadError(f"{file}: unknown key '{key}.{yaml_key}' (known keys of '{key}': {known})")
    kwargs = {}
    for field_name in sorted(fields):
        yaml_key = _yaml_key(field_name)
        if yaml_key not in value:
            raise PadError(f"{file}: missing key '{key}.{yaml_key}'")
        kwargs[field_name] = _coerce(hints[field_name], value[yaml_key], key=f"{key}.{yaml_key}", file=file)
    return cls(**kwargs)


def _yaml_key(field_name: str) -> str:
    inverse = {v: k for k, v in _KEYWORD_FIELDS.items()}
    return inverse.get(field_name, field_name)


def _coerce(tp: Any, value: Any, *, key: str, file: str) -> Any:
    origin = typing.get_origin(tp)
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
        return float(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise PadError(f"{file}: '{key}' must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported params type {tp!r} for {key}")


def _typename(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
