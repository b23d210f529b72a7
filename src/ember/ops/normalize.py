"""Fused normalization and dropout kernels: the array-level work behind ``ember.nn`` layers.

Matches (through :mod:`ember.nn.functional`): ``F.batch_norm``, ``F.layer_norm``,
``F.group_norm``, ``F.instance_norm`` (the normalize-then-affine core), and the random masks of
``F.dropout``/``dropout1d``/``dropout2d``/``alpha_dropout``.

:func:`norm_affine` standardizes ``x`` over ``axes`` with its own (biased) mean and variance and
applies an optional per-element ``weight``/``bias`` in a single primitive:

    y = (x - mean) / sqrt(var + eps) * weight + bias

Its backward is the closed form ``dx = rstd * (gh - mean(gh) - xhat * mean(gh * xhat))`` with
``gh = g * weight`` (means over ``axes``), ``dweight = sum(g * xhat)``, ``dbias = sum(g)``.
An ordinary backward reuses ``xhat`` and ``rstd`` kept from forward; under
``create_graph=True`` it rebuilds them from the saved input with ops functions, so the gradient
is itself differentiable (second order).
"""

from __future__ import annotations

import math

import numpy as np

from .base import NULL_CTX, Primitive, TensorBase, call, dtype_of, shape_of
from .random import _rng

__all__ = ["norm_affine", "dropout_mask", "alpha_dropout_noise", "update_running_stats",
           "machine_eps"]

SELU_ALPHA_SCALE = 1.7580993408473766  # -(SELU's negative saturation value): alpha * scale


def _needs(ctx, i: int) -> bool:
    need = getattr(ctx, "needs_input_grad", None)
    return True if need is None else bool(need[i])


class NormAffine(Primitive):
    """Standardize over ``axes`` then ``* weight + bias`` (weight/bias reshaped to ``pshape``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, axes, eps, pshape, stats=None):
        mean = x.mean(axis=axes, keepdims=True)
        xc = x - mean
        var = np.square(xc).mean(axis=axes, keepdims=True)
        rstd = 1.0 / np.sqrt(var + eps)
        xhat = xc
        xhat *= rstd
        y = xhat
        if weight is not None:
            y = xhat * weight.reshape(pshape)
        if bias is not None:
            b = bias.reshape(pshape)
            if y is xhat:
                y = xhat + b
            else:
                y += b
        if stats is not None:
            stats.append((mean, var))
        if ctx is not NULL_CTX:
            ctx.axes, ctx.eps, ctx.pshape = axes, eps, pshape
            ctx.rstd = rstd
            ctx.bshape = None if bias is None else bias.shape
            if y is xhat:  # the output is xhat itself: save it so in-place changes are caught
                ctx.save_for_backward(x, weight, y)
            else:
                ctx.save_for_backward(x, weight)
                ctx.xhat = xhat
        return y

    @staticmethod
    def backward(ctx, g):
        saved = ctx.saved
        x, w = saved[0], saved[1]
        axes = ctx.axes
        if isinstance(g, TensorBase) or isinstance(x, TensorBase) or isinstance(w, TensorBase):
            mu = mean(x, axes, keepdim=True)
            xc = x - mu
            rstd = rsqrt(mean(xc * xc, axes, keepdim=True) + ctx.eps)
            xhat = xc * rstd
        else:
            rstd = ctx.rstd
            xhat = saved[2] if len(saved) > 2 else ctx.xhat
        gx = gw = gb = None
        if w is not None and _needs(ctx, 1):
            gw = reshape(sum_to(g * xhat, ctx.pshape), shape_of(w))
        if ctx.bshape is not None and _needs(ctx, 2):
            gb = reshape(sum_to(g, ctx.pshape), ctx.bshape)
        if _needs(ctx, 0):
            gh = g if w is None else g * reshape(w, ctx.pshape)
            gx = (gh - mean(gh, axes, keepdim=True)
                  - xhat * mean(gh * xhat, axes, keepdim=True)) * rstd
        return gx, gw, gb


def norm_affine(x, weight, bias, axes, eps: float, pshape=None, stats=None):
    """``(x - mean) / sqrt(var + eps) * weight + bias``, statistics over ``axes`` (biased var).

    Args:
        x: input tensor or array.
        weight, bias: None or tensors that reshape to ``pshape`` (broadcastable to ``x``).
        axes: tuple of non-negative axes to normalize over.
        eps: added to the variance.
        pshape: broadcast shape of ``weight``/``bias`` (default: their own shape).
        stats: None, or a list to which the (mean, biased var) arrays (keepdims) are appended.
    """
    if pshape is None:
        p = weight if weight is not None else bias
        pshape = shape_of(p) if p is not None else ()
    return call(NormAffine, x, weight, bias, axes=tuple(axes), eps=float(eps),
                pshape=tuple(pshape), stats=stats)


def machine_eps(x) -> float:
    """The machine epsilon of ``x``'s floating dtype (float32 for non-float inputs)."""
    d = dtype_of(x)
    return float(np.finfo(d if d is not None and d.kind == "f" else np.float32).eps)


# ---------------------------------------------------------------------------- running stats
def update_running_stats(running_mean, running_var, mean, var, factor: float, n: int) -> None:
    """In place: ``r = (1 - factor) * r + factor * stat`` with the unbiased variance
    ``var * n / (n - 1)`` (``n`` values per statistic); stats with a leading batch dim (instance
    norm) are averaged over it first."""
    c = running_mean.shape[0] if running_mean is not None else running_var.shape[0]
    m = np.asarray(mean).reshape(-1, c).mean(axis=0)
    v = np.asarray(var).reshape(-1, c).mean(axis=0) * (n / (n - 1) if n > 1 else 1.0)
    for r, s in ((running_mean, m), (running_var, v)):
        if r is not None:
            r *= 1.0 - factor
            r += (factor * s).astype(r.dtype, copy=False)


# ---------------------------------------------------------------------------- dropout masks
def dropout_mask(shape, p: float, dtype, generator=None) -> np.ndarray:
    """Inverted-dropout mask: 0 with probability ``p``, else ``1 / (1 - p)`` (in ``dtype``)."""
    dtype = np.dtype(dtype)
    u = _rng(generator).random(tuple(shape), dtype=np.float32)
    keep = u >= np.float32(p)
    scale = dtype.type(1.0 / (1.0 - p))
    return np.where(keep, scale, dtype.type(0))


def alpha_dropout_noise(shape, p: float, dtype, generator=None):
    """Multiplier and offset ``(a * keep, b)`` of alpha dropout: dropped values become SELU's
    saturation value, then an affine map restores zero mean and unit variance.
    ``y = x * mult + add``."""
    dtype = np.dtype(dtype)
    keep = _rng(generator).random(tuple(shape), dtype=np.float32) >= np.float32(p)
    a = 1.0 / math.sqrt((SELU_ALPHA_SCALE ** 2 * p + 1.0) * (1.0 - p))
    mult = np.where(keep, dtype.type(a), dtype.type(0))
    add = np.where(keep, dtype.type(SELU_ALPHA_SCALE * a * p),
                   dtype.type(SELU_ALPHA_SCALE * a * p - SELU_ALPHA_SCALE * a))
    return mult, add


from .movement import reshape  # noqa: E402
from .reduce import mean, sum_to  # noqa: E402
from .unary import rsqrt  # noqa: E402
