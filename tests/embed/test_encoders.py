"""The LLM2Vec-style encoder on a tiny saved Llama with saved LoRA adapters (the real loading path)."""
from dataclasses import replace

import pytest
import torch
from transformers import AutoModel

from pad.embed.encoders import load_encoder, make_bidirectional, resolve_spec
from pad.embed.pooling import embed_batch, encode_texts, pad_batch
from pad.errors import PadError


def _first_token_state(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).last_hidden_state[0, 0]


def test_bidirectional_attention_last_token_changes_first_output(tiny, llm2vec_cfg):
    model = load_encoder(resolve_spec(llm2vec_cfg)).model
    a, b = [2, 6, 7, 8, 9], [2, 6, 7, 8, 10]
    assert not torch.allclose(_first_token_state(model, a), _first_token_state(model, b))
    causal = AutoModel.from_pretrained(tiny["base"]).eval()  # control: the same check fails when causal
    assert torch.allclose(_first_token_state(causal, a), _first_token_state(causal, b))
    make_bidirectional(causal)
    assert not torch.allclose(_first_token_state(causal, a), _first_token_state(causal, b))


def test_mntp_merge_changes_weights_and_leaves_no_lora_modules(tiny, llm2vec_cfg):
    base = AutoModel.from_pretrained(tiny["base"])
    merged = load_encoder(resolve_spec(replace(llm2vec_cfg, adapter=""))).model
    w0 = base.layers[0].self_attn.q_proj.weight
    w1 = merged.layers[0].self_attn.q_proj.weight
    assert w0.shape == w1.shape and not torch.allclose(w0, w1)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    both = load_encoder(resolve_spec(llm2vec_cfg)).model  # the SimCSE adapter changes them again
    assert not torch.allclose(w1, both.layers[0].self_attn.q_proj.weight)


def test_pooling_ignores_padding_and_left_padding_matches_no_padding(llm2vec_cfg):
    enc = load_encoder(resolve_spec(llm2vec_cfg))
    short, long = enc.tokenize(["milk", "coffee tea rice pasta soap dog cat"])
    alone = embed_batch(enc, [short])  # no padding at all
    padded = embed_batch(enc, [short, long])  # `short` left-padded by 6 tokens
    assert pad_batch([short, long], enc.pad_id, left=True)["attention_mask"][0, 0] == 0
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-4)


def test_instruction_is_attended_but_not_pooled(llm2vec_cfg):
    enc = load_encoder(resolve_spec(replace(llm2vec_cfg, instruction="query :")))
    (ids, n_prefix), = enc.tokenize(["milk candy"])
    assert n_prefix == 3 and ids[:n_prefix] == [2, 4, 5]  # <s> query :
    with torch.no_grad():
        hidden = enc.model(input_ids=torch.tensor([ids])).last_hidden_state[0]  # (L, d)
    got = embed_batch(enc, [(ids, n_prefix)])[0]
    torch.testing.assert_close(got, hidden[n_prefix:].mean(0), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(got, hidden.mean(0), atol=1e-3)
    plain = load_encoder(resolve_spec(llm2vec_cfg))
    assert not torch.allclose(got, embed_batch(plain, plain.tokenize(["milk candy"]))[0], atol=1e-4)


def test_blank_text_is_zero_vector_and_order_is_kept(llm2vec_cfg):
    enc = load_encoder(resolve_spec(llm2vec_cfg))
    texts = ["coffee tea rice pasta", "", "milk", "  "]
    out = encode_texts(enc, texts, batch_size=2)
    assert out.shape == (4, 32) and out.dtype.name == "float32"
    assert (out[1] == 0).all() and (out[3] == 0).all()
    torch.testing.assert_close(torch.from_numpy(out[2]), embed_batch(enc, enc.tokenize(["milk"]))[0], atol=1e-5, rtol=1e-4)


def test_only_blank_texts_are_zero_vectors_without_tokenizing(llm2vec_cfg):
    """A batch (or a whole shard) of blank texts used to reach the tokenizer empty: IndexError."""
    out = encode_texts(load_encoder(resolve_spec(llm2vec_cfg)), ["", "  "], batch_size=2)
    assert out.shape == (2, 32) and out.dtype.name == "float32" and (out == 0).all()


def test_adapter_for_another_base_is_a_clear_error(tiny, llm2vec_cfg):
    with pytest.raises(PadError, match="does not fit the base model"):
        load_encoder(resolve_spec(replace(llm2vec_cfg, adapter=str(tiny["mismatch"]))))


def test_unknown_model_path_and_unreachable_hub(tmp_path, llm2vec_cfg):
    with pytest.raises(PadError, match="not a folder"):
        resolve_spec(replace(llm2vec_cfg, model=str(tmp_path / "no_such_model")))
    with pytest.raises(PadError, match="no-such-org/no-such-model"):
        resolve_spec(replace(llm2vec_cfg, model="no-such-org/no-such-model"))


def test_instruction_with_hf_encoder_is_rejected(minilm_cfg):
    with pytest.raises(PadError, match="instruction"):
        resolve_spec(replace(minilm_cfg, instruction="query:"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_device_uses_cuda_in_bfloat16_and_returns_float32(llm2vec_cfg):
    spec = resolve_spec(replace(llm2vec_cfg, device="auto", dtype="auto"))
    assert spec.device.type == "cuda" and spec.dtype == torch.bfloat16
    gpu = encode_texts(load_encoder(spec), ["milk candy", "coffee tea rice"], batch_size=2)
    cpu = encode_texts(load_encoder(resolve_spec(llm2vec_cfg)), ["milk candy", "coffee tea rice"], batch_size=2)
    assert gpu.dtype.name == "float32"
    torch.testing.assert_close(torch.from_numpy(gpu), torch.from_numpy(cpu), atol=0.1, rtol=0.05)


@pytest.mark.parametrize("which", ["minilm_cfg", "llm2vec_cfg"])
def test_int8_quantizes_every_linear_and_keeps_the_vectors_close(which, request, texts):
    cfg = request.getfixturevalue(which)
    spec = resolve_spec(replace(cfg, dtype="int8"))
    assert spec.dtype == torch.qint8 and spec.meta["dtype"] == "qint8"  # its own cache key
    enc = load_encoder(spec)
    kinds = {type(m) for m in enc.model.modules()}
    assert torch.ao.nn.quantized.dynamic.Linear in kinds and torch.nn.Linear not in kinds
    q = encode_texts(enc, texts, batch_size=4)
    ref = encode_texts(load_encoder(resolve_spec(cfg)), texts, batch_size=4)
    assert q.dtype.name == "float32" and not (q == ref).all()
    keep = (ref != 0).any(1)
    assert (q[~keep] == 0).all()  # blank texts stay zero vectors
    cos = torch.nn.functional.cosine_similarity(torch.from_numpy(q[keep]), torch.from_numpy(ref[keep]))
    assert cos.min() > 0.9  # per-tensor int8 weights: close, not equal (benchmarks/embed.md: real titles)


def test_int8_on_cuda_is_a_clear_error(minilm_cfg):
    with pytest.raises(PadError, match="int8 runs on CPU only"):
        from pad.embed.encoders import pick_dtype

        pick_dtype("int8", torch.device("cuda", 0))
