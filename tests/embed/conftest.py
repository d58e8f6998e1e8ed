"""Tiny models built locally and saved like the real ones: a 2-layer Llama, its tokenizer, LoRA adapters."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from pad.config import EmbedConfig

WORDS = "milk candy chocolate coffee tea rice pasta soap paper towel wrap dog cat food bar snack water juice".split()


def _save_tokenizer(folder: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<s>", "</s>", "query", ":", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    fast.save_pretrained(folder)


def _llama_config(hidden: int = 32):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=6 + len(WORDS), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        pad_token_id=0, bos_token_id=2, eos_token_id=3,
    )


def _save_llama(folder: Path, hidden: int = 32, nan: bool = False) -> Path:
    """Saved as LlamaForCausalLM, like the meta-llama repos; the encoder loads it with AutoModel."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(_llama_config(hidden))
    if nan:
        with torch.no_grad():
            model.model.layers[0].mlp.down_proj.weight.fill_(float("nan"))
    model.save_pretrained(folder)
    _save_tokenizer(folder)
    return folder


def _save_lora(base: Path, folder: Path, seed: int) -> Path:
    """A LoRA adapter on the bare LlamaModel (as LLM2Vec's are) with non-zero B, saved by peft."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    model = get_peft_model(
        AutoModel.from_pretrained(base),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)
    model.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_llm")
    base = _save_llama(root / "llama")
    other = _save_llama(root / "llama48", hidden=48)
    return {
        "base": base,
        "mntp": _save_lora(base, root / "mntp", seed=1),
        "simcse": _save_lora(base, root / "simcse", seed=2),
        "mismatch": _save_lora(other, root / "mismatch", seed=3),
        "nan": _save_llama(root / "nan_llama", nan=True),
    }


@pytest.fixture(scope="session")
def llm2vec_cfg(tiny) -> EmbedConfig:
    return EmbedConfig(
        encoder="llm2vec", model=str(tiny["base"]), mntp_adapter=str(tiny["mntp"]), adapter=str(tiny["simcse"]),
        instruction="", pooling="mean", max_length=32, batch_size=4, shard_size=5, device="cpu", dtype="float32",
    )


@pytest.fixture(scope="session")
def minilm_cfg() -> EmbedConfig:
    return EmbedConfig(
        encoder="hf", model="all-MiniLM-L6-v2", mntp_adapter="", adapter="", instruction="", pooling="mean",
        max_length=64, batch_size=16, shard_size=64, device="cpu", dtype="float32",
    )


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """23 item texts of varied length over the tiny vocabulary, every 7th blank."""
    n = 23
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=rng.integers(1, 9))) for _ in range(n)]
    for i in range(0, n, 7):
        texts[i] = ""
    return texts


def _write_items(path: Path, texts: list[str]) -> Path:
    n = len(texts)
    table = pa.table({
        "item_idx": pa.array(np.arange(1, n + 1), pa.int32()),
        "item_id": pa.array([f"I{i}" for i in range(1, n + 1)]),
        "text": pa.array(texts, pa.string()),
        "train_freq": pa.array(np.ones(n), pa.int32()),
        "bucket": pa.array(np.ones(n), pa.int8()),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


@pytest.fixture(scope="session")
def write_items():
    """Writes an items.parquet with the prepare stage's schema: write_items(path, texts) -> path."""
    return _write_items
