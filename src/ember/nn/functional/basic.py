"""Dense-layer helpers of ``ember.nn.functional``: bilinear, dropout, embedding, layer norm ...

Matches: the ``torch.nn.functional`` functions of the same names.
"""

from __future__ import annotations

import math

from ... import ops
from ...autograd import Tensor

__all__ = ["bilinear", "dropout", "embedding", "layer_norm", "normalize", "cosine_similarity",
           "pairwise_distance"]


def bilinear(input1, input2, weight, bias=None):
    """``y_k = x1^T W_k x2 + b_k``. Shapes: x1 (*, in1), x2 (*, in2), W (out, in1, in2)."""
    out = ops.einsum("...i,oij,...j->...o", input1, weight, input2)
    return out if bias is None else out + bias


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (inverted
    dropout, so evaluation needs no rescaling). Matches ``F.dropout``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = ops.random.bernoulli(tuple(input.shape), 1.0 - p, input._data.dtype)
    keep *= 1.0 / (1.0 - p)
    return input * keep


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False):
    """Rows of ``weight`` at the integer indices ``input``. Matches ``F.embedding``.

    ``padding_idx`` rows receive no gradient. With ``max_norm``, rows that are looked up and
    whose ``norm_type``-norm exceeds it are renormalized in place first (as in PyTorch).
    """
    if padding_idx is not None:
        n = weight.shape[0]
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx {padding_idx} must be within the "
                             f"{n} rows of the table")
        padding_idx %= n
    if max_norm is not None:
        _renorm_rows(weight, input, max_norm, norm_type)
    return ops.embedding_lookup(input, weight, padding_idx)


def _renorm_rows(weight, input, max_norm, norm_type) -> None:
    from ...autograd import no_grad

    idx = ops.as_array(input).reshape(-1)
    with no_grad():
        rows = ops.unique_rows(idx)
        sel = weight[Tensor._make(rows)]
        norms = ops.norm(sel, norm_type, dim=1, keepdim=True)
        scale = ops.where(norms > max_norm, max_norm / (norms + 1e-7), 1.0)
        weight[Tensor._make(rows)] = sel * scale


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5):
    """Normalize over the last ``len(normalized_shape)`` dims to zero mean and unit variance
    (biased variance), then scale and shift. Matches ``F.layer_norm``."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(normalized_shape)
    k = len(normalized_shape)
    if tuple(input.shape[-k:]) != normalized_shape:
        raise RuntimeError(f"layer_norm: expected input with shape (*, "
                           f"{', '.join(map(str, normalized_shape))}), got {tuple(input.shape)}")
    dims = tuple(range(-k, 0))
    mean = input.mean(dims, keepdim=True)
    centered = input - mean
    var = (centered * centered).mean(dims, keepdim=True)
    out = centered * ops.rsqrt(var + eps)
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12):
    """``x / max(||x||_p, eps)`` along ``dim``. Matches ``F.normalize``."""
    n = ops.norm(input, p, dim=dim, keepdim=True)
    return input / ops.clamp(n, min=eps)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """Cosine of the angle between x1 and x2 along ``dim``. Matches ``F.cosine_similarity``."""
    dot = (x1 * x2).sum(dim)
    n1 = ops.clamp(ops.norm(x1, 2, dim=dim), min=eps)
    n2 = ops.clamp(ops.norm(x2, 2, dim=dim), min=eps)
    return dot / (n1 * n2)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """``||x1 - x2 + eps||_p`` over the last dim. Matches ``F.pairwise_distance``."""
    return ops.norm(x1 - x2 + eps, p, dim=-1, keepdim=keepdim)


_ = math
