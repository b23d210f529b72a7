"""Dense-layer helpers of ``ember.nn.functional``: bilinear, dropout, embedding, layer norm ...

Matches: the ``torch.nn.functional`` functions of the same names.
"""

from __future__ import annotations

import math
import warnings

from ... import ops
from ...autograd import Tensor

__all__ = ["bilinear", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
           "feature_alpha_dropout", "embedding", "layer_norm", "normalize", "cosine_similarity",
           "pairwise_distance"]


def bilinear(input1, input2, weight, bias=None):
    """``y_k = x1^T W_k x2 + b_k``. Shapes: x1 (*, in1), x2 (*, in2), W (out, in1, in2)."""
    out = ops.einsum("...i,oij,...j->...o", input1, weight, input2)
    return out if bias is None else out + bias


def _check_p(op: str, p) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    return float(p)


def _masked(input, p: float, mask_shape):
    """``input * mask`` with an inverted-dropout mask of ``mask_shape`` (broadcast to input)."""
    if p == 1.0:
        return input * 0.0
    return input * ops.dropout_mask(mask_shape, p, input._data.dtype)


def dropout(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero each element with probability ``p`` and scale the rest by 1/(1-p) (inverted
    dropout, so evaluation needs no rescaling). Matches ``F.dropout``.

    ``inplace`` is accepted for compatibility; a new tensor is always returned.
    """
    p = _check_p("dropout", p)
    if not training or p == 0.0:
        return input
    return _masked(input, p, tuple(input.shape))


def _feature_mask_shape(op: str, input, batched_dims: int, unbatched_ok: bool = True):
    """Mask shape zeroing whole channels: (N, C, 1, ...) or, unbatched, (C, 1, ...)."""
    shape = tuple(input.shape)
    if len(shape) not in (batched_dims, batched_dims - 1) or \
            (len(shape) == batched_dims - 1 and not unbatched_ok):
        layout = {3: "(N, C, L) or (C, L)", 4: "(N, C, H, W) or (C, H, W)",
                  5: "(N, C, D, H, W) or (C, D, H, W)"}[batched_dims]
        raise ValueError(f"{op}: expected an input of shape {layout}, got {shape}")
    lead = 2 if len(shape) == batched_dims else 1
    return shape[:lead] + (1,) * (len(shape) - lead)


def dropout1d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels (dim -2) of (N, C, L) or (C, L) inputs with probability ``p``,
    scaling the rest by 1/(1-p). Matches ``F.dropout1d``."""
    p = _check_p("dropout1d", p)
    mshape = _feature_mask_shape("dropout1d", input, 3)
    if not training or p == 0.0:
        return input
    return _masked(input, p, mshape)


def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, H, W) inputs with probability ``p``, scaling the rest by
    1/(1-p). Matches ``F.dropout2d``: like PyTorch, a 3-D input is treated as (N, C, L)
    (channel-wise 1-D dropout) with a UserWarning."""
    p = _check_p("dropout2d", p)
    shape = tuple(input.shape)
    if len(shape) == 3:
        warnings.warn("dropout2d: received a 3-D input; treating it as (N, C, L) and dropping "
                      "channels of dim 1 (as PyTorch does). Use dropout1d for 1-D channel "
                      "dropout.", UserWarning, stacklevel=2)
        mshape = shape[:2] + (1,)
    else:
        mshape = _feature_mask_shape("dropout2d", input, 4, unbatched_ok=False)
    if not training or p == 0.0:
        return input
    return _masked(input, p, mshape)


def dropout3d(input, p: float = 0.5, training: bool = True, inplace: bool = False):
    """Zero whole channels of (N, C, D, H, W) or (C, D, H, W) inputs. Matches ``F.dropout3d``."""
    p = _check_p("dropout3d", p)
    mshape = _feature_mask_shape("dropout3d", input, 5)
    if not training or p == 0.0:
        return input
    return _masked(input, p, mshape)


def _alpha(input, p: float, mask_shape):
    if p == 1.0:  # every value dropped: the output is the (zero-mean) SELU saturation, 0
        return input * 0.0
    mult, add = ops.alpha_dropout_noise(mask_shape, p, input._data.dtype)
    return input * mult + add


def alpha_dropout(input, p: float = 0.5, training: bool = False, inplace: bool = False):
    """Dropout for SELU networks: dropped values are set to SELU's negative saturation and an
    affine correction keeps zero mean and unit variance. Matches ``F.alpha_dropout``."""
    p = _check_p("alpha_dropout", p)
    if not training or p == 0.0:
        return input
    return _alpha(input, p, tuple(input.shape))


def feature_alpha_dropout(input, p: float = 0.5, training: bool = False,
                          inplace: bool = False):
    """Alpha dropout of whole channels (dim 1 of an (N, C, *) input). Matches
    ``F.feature_alpha_dropout``."""
    p = _check_p("feature_alpha_dropout", p)
    shape = tuple(input.shape)
    if len(shape) < 2:
        raise ValueError(f"feature_alpha_dropout: expected an input of shape (N, C, *), got "
                         f"{shape}")
    if not training or p == 0.0:
        return input
    return _alpha(input, p, shape[:2] + (1,) * (len(shape) - 2))


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
    (biased variance), then scale and shift (one fused primitive). Matches ``F.layer_norm``.

    Shape: input (*, *normalized_shape); weight and bias ``normalized_shape``.
    """
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else \
        tuple(normalized_shape)
    k = len(normalized_shape)
    shape = tuple(input.shape)
    if k > len(shape) or shape[len(shape) - k:] != normalized_shape:
        raise RuntimeError(f"layer_norm: expected input with shape (*, "
                           f"{', '.join(map(str, normalized_shape))}), got {shape}")
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(t.shape) != normalized_shape:
            raise RuntimeError(f"layer_norm: expected {name} of shape {normalized_shape}, got "
                               f"{tuple(t.shape)}")
    axes = tuple(range(len(shape) - k, len(shape)))
    return ops.norm_affine(input, weight, bias, axes, eps, normalized_shape)


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
