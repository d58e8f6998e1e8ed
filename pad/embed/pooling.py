"""Batching sorted by length, padding, and masked mean pooling."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from pad.embed.encoders import TextEncoder


def pad_batch(
    pieces: list[tuple[list[int], int]], pad_id: int, left: bool
) -> dict[str, torch.Tensor]:
    """Pad token ids to one length; `pool_mask` marks the text tokens (not padding, not the prefix)."""
    length = max(len(ids) for ids, _ in pieces)
    input_ids = torch.full((len(pieces), length), pad_id, dtype=torch.long)  # (B, L)
    attention = torch.zeros((len(pieces), length), dtype=torch.long)
    pool = torch.zeros((len(pieces), length), dtype=torch.bool)
    for row, (ids, n_prefix) in enumerate(pieces):
        start = length - len(ids) if left else 0
        input_ids[row, start : start + len(ids)] = torch.tensor(ids)
        attention[row, start : start + len(ids)] = 1
        pool[row, start + n_prefix : start + len(ids)] = True
    return {"input_ids": input_ids, "attention_mask": attention, "pool_mask": pool}


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `hidden` (B, L, d) over the positions where `mask` (B, L) is true, in float32."""
    weights = mask.unsqueeze(-1).to(torch.float32)  # (B, L, 1)
    return (hidden.float() * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, d)


@torch.inference_mode()
def embed_batch(encoder: TextEncoder, pieces: list[tuple[list[int], int]]) -> torch.Tensor:
    """Vectors (B, d) float32 for one batch of tokenized texts."""
    batch = pad_batch(pieces, encoder.pad_id, encoder.left_pad)
    device = encoder.spec.device
    inputs = {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}
    if encoder.left_pad:  # positions count from each text's first real token, as without padding
        inputs["position_ids"] = (batch["attention_mask"].cumsum(1) - 1).clamp(min=0).to(device)
    hidden = encoder.model(**inputs).last_hidden_state  # (B, L, d)
    return mean_pool(hidden, batch["pool_mask"].to(device)).cpu()


def encode_texts(
    encoder: TextEncoder,
    texts: list[str],
    batch_size: int,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Vectors (n, d) float32 in the order of `texts`; batches are formed longest-first.

    Blank texts are not encoded: their rows are zero vectors (the documented empty-text rule).
    """
    dim = encoder.model.config.hidden_size
    out = np.zeros((len(texts), dim), dtype=np.float32)
    keep = [i for i, t in enumerate(texts) if t.strip()]
    pieces = encoder.tokenize([texts[i] for i in keep]) if keep else []  # tokenizers fail on an empty batch
    order = sorted(range(len(keep)), key=lambda j: -len(pieces[j][0]))  # longest first: OOM shows early
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        vectors = embed_batch(encoder, [pieces[j] for j in chunk])
        out[[keep[j] for j in chunk]] = vectors.numpy()
        if on_batch is not None:
            on_batch(len(chunk))
    if on_batch is not None and len(keep) < len(texts):
        on_batch(len(texts) - len(keep))
    return out
