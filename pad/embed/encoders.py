"""Text encoders (DESIGN §3): a Hugging Face encoder, or an LLM2Vec-style bidirectional decoder.

`llm2vec` follows McGill-NLP/llm2vec without its package (which pins transformers <= 4.44): the base
decoder gets bidirectional attention, the MNTP LoRA adapter is merged into it, then the SimCSE or
supervised LoRA adapter is merged on top; texts are left-padded and mean-pooled over their own
tokens (the instruction prefix is seen by attention but left out of the mean).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from pad.config import EmbedConfig
from pad.embed.resolve import Resolved, resolve
from pad.errors import PadError

# Llama-3 chat wrapping that the LLM2Vec Llama-3 adapters were trained with (llm2vec
# `prepare_for_tokenization`); used whenever the tokenizer knows these special tokens.
LLAMA3_PREFIX = "<|start_header_id|>user<|end_header_id|>\n\n"
LLAMA3_SUFFIX = "<|eot_id|>"


@dataclass(frozen=True)
class EncoderSpec:
    """Everything that decides the vectors, resolved to local folders; `meta` keys the shard cache."""

    encoder: str
    model: Resolved
    adapters: tuple[Resolved, ...]  # applied (merged) in this order
    instruction: str
    max_length: int
    device: torch.device
    dtype: torch.dtype
    meta: dict[str, str] = field(hash=False)


def resolve_spec(cfg: EmbedConfig) -> EncoderSpec:
    """Resolve the `embed` params to local files and a device, without loading any weights."""
    if cfg.encoder == "hf" and cfg.instruction:
        raise PadError("params.yaml: 'embed.instruction' is only used by encoder llm2vec; leave it empty for hf")
    device = pick_device(cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    model = resolve(cfg.model, "model")
    names = [cfg.mntp_adapter, cfg.adapter] if cfg.encoder == "llm2vec" else []
    adapters = tuple(resolve(n, "adapter") for n in names if n)
    meta = {
        "encoder": cfg.encoder,
        "model": cfg.model,
        "revision": model.revision,
        "adapters": ",".join(f"{a.name}@{a.revision}" for a in adapters),
        "pooling": cfg.pooling,
        "instruction": cfg.instruction,
        "max_length": str(cfg.max_length),
        "dtype": str(dtype).removeprefix("torch."),
    }
    return EncoderSpec(cfg.encoder, model, adapters, cfg.instruction, cfg.max_length, device, dtype, meta)


def pick_device(name: str) -> torch.device:
    """`auto`: CUDA when available (under torchrun, the rank's LOCAL_RANK GPU), else CPU."""
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name == "auto":
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PadError(f"params.yaml: 'embed.device' is {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PadError(f"params.yaml: 'embed.device' is {name!r} but CUDA is not available; use auto or cpu")
    return device


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """`auto`: bfloat16 on CUDA, float32 on CPU. `int8` (torch.qint8): float32 weights whose Linear layers
    are quantized to int8 on load (dynamic quantization: activations quantized per batch), CPU only."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if name == "int8":
        if device.type != "cpu":
            raise PadError(f"params.yaml: 'embed.dtype' int8 runs on CPU only, but 'embed.device' resolves to {device}; "
                           "use bfloat16 on CUDA")
        return torch.qint8
    return getattr(torch, name)


@dataclass
class TextEncoder:
    """A loaded model plus how to turn a text into (token ids, number of leading ids not pooled)."""

    model: nn.Module
    tokenizer: object
    spec: EncoderSpec
    left_pad: bool
    pad_id: int
    prefix: list[int]  # ids before the text (BOS, chat header, instruction): attended, not pooled
    suffix: str  # appended to every text before tokenizing (pooled)

    def tokenize(self, texts: list[str]) -> list[tuple[list[int], int]]:
        if self.spec.encoder == "hf":
            ids = self.tokenizer(texts, truncation=True, max_length=self.spec.max_length)["input_ids"]
            return [(x, 0) for x in ids]
        suffix = self.tokenizer(self.suffix, add_special_tokens=False)["input_ids"] if self.suffix else []
        room = self.spec.max_length - len(self.prefix)
        if room <= len(suffix):
            raise PadError(f"params.yaml: 'embed.max_length' {self.spec.max_length} leaves no room after the instruction")
        out = []
        for x in self.tokenizer([t + self.suffix for t in texts], add_special_tokens=False)["input_ids"]:
            if len(x) > room:
                x = x[: room - len(suffix)] + suffix
            out.append((self.prefix + x, len(self.prefix)))
        return out


def load_encoder(spec: EncoderSpec) -> TextEncoder:
    """Load the weights named by `spec` onto its device, in eval mode."""
    from transformers import AutoModel, AutoTokenizer

    where = spec.model.path
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
        kwargs = {"device_map": {"": str(spec.device)}} if spec.device.type == "cuda" else {}
        model = AutoModel.from_pretrained(where, dtype=torch.float32 if spec.dtype == torch.qint8 else spec.dtype,
                                          **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise PadError(f"model {spec.model.name!r} ({where}): cannot be loaded: {exc}") from None
    if spec.encoder == "llm2vec":
        make_bidirectional(model)
        for adapter in spec.adapters:
            model = merge_lora(model, adapter, spec.device)
    model.to(spec.device).eval()
    if spec.dtype == torch.qint8:
        model = quantize_linear_int8(model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if spec.encoder == "hf":
        return TextEncoder(model, tokenizer, spec, left_pad=False, pad_id=pad_id or 0, prefix=[], suffix="")
    vocab = tokenizer.get_vocab()
    llama3 = "<|start_header_id|>" in vocab and LLAMA3_SUFFIX in vocab
    head = LLAMA3_PREFIX if llama3 else ""
    instruction = f"{spec.instruction.strip()} " if spec.instruction.strip() else ""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prefix = bos + tokenizer(head + instruction, add_special_tokens=False)["input_ids"]
    suffix = LLAMA3_SUFFIX if llama3 else ""
    return TextEncoder(model, tokenizer, spec, left_pad=True, pad_id=pad_id or 0, prefix=prefix, suffix=suffix)


def quantize_linear_int8(model: nn.Module) -> nn.Module:
    """Every nn.Linear as a dynamically quantized int8 Linear (fbgemm; weights int8 per tensor, activations
    quantized per batch); attention softmax, layer norms and pooling stay float32. Vectors change slightly:
    benchmarks/embed.md measures their cosine to float32 and the speed."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # quantized tensor creation is deprecated upstream (torchao)
        return quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)


def make_bidirectional(model: nn.Module) -> None:
    """Turn causal self-attention off everywhere (transformers 5).

    `config.is_causal=False` makes the mask builder produce a bidirectional padding mask; every
    attention module's `is_causal` flag must be cleared too, since SDPA/flash kernels fall back to
    it when the mask is skipped (no padding).
    """
    model.config.is_causal = False
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False


def merge_lora(model: nn.Module, adapter: Resolved, device: torch.device) -> nn.Module:
    """Apply a saved LoRA adapter to `model` and merge it into the weights; every adapter key must load."""
    from peft import PeftConfig, PeftModel

    try:
        config = PeftConfig.from_pretrained(str(adapter.path))
        config.task_type = None  # the base is a bare AutoModel (no LM head)
        config.inference_mode = True
        peft_model = PeftModel(model, config)
        result = peft_model.load_adapter(str(adapter.path), "default", torch_device=str(device))
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        msg = " ".join(str(exc).split())[:300]
        raise PadError(f"adapter {adapter.name!r} does not fit the base model: {msg}") from None
    bad = list(result.missing_keys) + [k for k in result.unexpected_keys if "lora" in k]
    if bad:
        raise PadError(f"adapter {adapter.name!r} does not fit the base model: {len(bad)} weights unmatched, e.g. {bad[0]}")
    return peft_model.merge_and_unload()
