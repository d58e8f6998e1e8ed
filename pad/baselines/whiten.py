"""Whitened principal coordinates of the text embeddings: the semantic space of AlphaFuse and LLMInit's
initialisation (an SVD of the centred text embeddings, via scikit-learn's PCA)."""
from __future__ import annotations

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import Tensor

from pad.errors import PadError

# A principal direction whose variance is below this fraction of the largest is numerically absent: whitening it
# would blow rounding noise up to unit variance.
MIN_VARIANCE_RATIO = 1e-8


def whitened_pca(text_emb: Tensor | np.ndarray, dim: int, std: float = 1.0) -> Tensor:
    """(N+1, D) text matrix (row 0 = padding) -> (N+1, dim) float32: row i = the item's coordinates on the `dim`
    principal directions of the items' text embeddings (largest variance first), each scaled to standard
    deviation `std` over the items (whitening, AlphaFuse's `standardization`); row 0 stays zero.

    = (e - mean) @ U[:, :dim] @ diag(std / sqrt(λ[:dim])), λ, U the eigenpairs of the items' covariance (ddof 1).
    """
    items = np.asarray(text_emb, dtype=np.float64)[1:]  # (N, D)
    n, d_text = items.shape
    if dim > min(n - 1, d_text):
        raise PadError(f"the text embeddings ({n} items × {d_text} dims) have at most {min(n - 1, d_text)} principal "
                       f"directions, fewer than model.dim ({dim}); use a smaller model.dim or a larger encoder")
    pca = PCA(n_components=dim, whiten=True, svd_solver="covariance_eigh").fit(items)
    var = pca.explained_variance_  # (dim,) descending
    if var[-1] <= MIN_VARIANCE_RATIO * var[0]:
        rank = int((var > MIN_VARIANCE_RATIO * var[0]).sum())
        raise PadError(f"the text embeddings span only {rank} directions, fewer than model.dim ({dim}); "
                       "use a smaller model.dim (or check the embed stage: are most texts empty?)")
    coords = pca.transform(items) * std  # (N, dim), unit variance per column before `std`
    return torch.cat([torch.zeros(1, dim), torch.as_tensor(coords, dtype=torch.float32)])
