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

from . import native
from .arrays import BLAS_FLOATS
from .arrays import ones_vector as _ones
from .base import NULL_CTX, Primitive, TensorBase, call, dtype_of, shape_of
from .random import _rng

__all__ = ["norm_affine", "dropout_mask", "alpha_dropout_noise", "update_running_stats",
           "machine_eps"]

SELU_ALPHA_SCALE = 1.7580993408473766  # -(SELU's negative saturation value): alpha * scale


def _needs(ctx, i: int) -> bool:
    need = getattr(ctx, "needs_input_grad", None)
    return True if need is None else bool(need[i])


def _rows_view(x, axes, pshape, weight, bias):
    """(R, C) view of ``x`` when it is a layer norm over its trailing ``axes`` (C values per
    row, weight/bias over exactly those dims), of a BLAS dtype and C-contiguous; else None."""
    nd = x.ndim
    k = len(axes)
    if (k == 0 or axes != tuple(range(nd - k, nd)) or x.dtype not in BLAS_FLOATS
            or not x.flags.c_contiguous or x.size == 0):
        return None
    c = math.prod(x.shape[nd - k:])
    for p in (weight, bias):
        if p is not None and (p.dtype != x.dtype or p.size != c
                              or tuple(pshape) not in (x.shape[nd - k:], (1,) * (nd - k)
                                                       + x.shape[nd - k:])):
            return None
    return x.reshape(-1, c)


def _rowmean(x2: np.ndarray) -> np.ndarray:
    """Row means of a C-contiguous (R, C) array as an (R, 1) column (one BLAS call)."""
    m = np.matmul(x2, _ones(x2.shape[1], x2.dtype))
    m *= m.dtype.type(1.0 / x2.shape[1])
    return m[:, None]


class NormAffine(Primitive):
    """Standardize over ``axes`` then ``* weight + bias`` (weight/bias reshaped to ``pshape``).

    Layer norms (trailing ``axes``, contiguous float32/float64 input) take a row-wise fast path:
    statistics as BLAS matrix-vector products, in-place updates, and only the input, the mean
    and 1/std kept for backward (xhat is rebuilt there: less memory held between forward and
    backward, as PyTorch does).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, axes, eps, pshape, stats=None):
        x2 = _rows_view(x, axes, pshape, weight, bias) if stats is None else None
        if x2 is not None:
            return _rows_forward(ctx, x, x2, weight, bias, axes, eps, pshape)
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
            ctx.rows = False
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
        elif ctx.rows:
            return _rows_backward(ctx, g, x, w)
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


def _rows_forward(ctx, x, x2, weight, bias, axes, eps, pshape):
    """Layer-norm forward on the (R, C) rows ``x2`` of ``x``."""
    fused = native.kernel("layernorm_fwd")
    if fused is not None and _contiguous(weight, bias):  # one pass per row, compiled
        R, c = x2.shape
        y = np.empty_like(x2)
        mu, rstd = np.empty((R, 1), x2.dtype), np.empty((R, 1), x2.dtype)
        fused(x2, weight, bias, y, mu, rstd, R, c, eps)
    else:
        y, mu, rstd = _rows_forward_np(x2, weight, bias, eps)
    y = y.reshape(x.shape)
    if ctx is not NULL_CTX:
        ctx.rows = True
        ctx.axes, ctx.eps, ctx.pshape = axes, eps, pshape
        ctx.mu, ctx.rstd = mu, rstd
        ctx.bshape = None if bias is None else bias.shape
        # x is the only array kept (xhat is rebuilt in backward); axes/eps/pshape serve the
        # differentiable (create_graph) path
        ctx.save_for_backward(x, weight)
    return y


def _contiguous(*arrays) -> bool:
    return all(a is None or a.flags.c_contiguous for a in arrays)


def _rows_forward_np(x2, weight, bias, eps):
    """(y, mean, 1/std) of the rows of ``x2`` (the reference of the ``layernorm_fwd`` kernel)."""
    mu = _rowmean(x2)
    xhat = x2 - mu
    var = np.einsum("ij,ij->i", xhat, xhat)[:, None]  # row sums of squares, no temporary
    var *= var.dtype.type(1.0 / x2.shape[1])
    var += var.dtype.type(eps)
    rstd = np.sqrt(var, out=var)
    np.reciprocal(rstd, out=rstd)
    xhat *= rstd
    c = x2.shape[1]
    if weight is not None:
        xhat *= weight.reshape(c)
    if bias is not None:
        xhat += bias.reshape(c)
    return xhat, mu, rstd


def _rows_backward(ctx, g, x, w):
    R = ctx.mu.shape[0]
    x2 = x.reshape(R, -1)
    C = x2.shape[1]
    g2 = g.reshape(R, C)
    dt = x.dtype
    fused = native.kernel("layernorm_bwd")
    if fused is not None and g2.dtype == dt and _contiguous(g2, x2, w):  # compiled, one pass
        need_x, need_w = _needs(ctx, 0), w is not None and _needs(ctx, 1)
        need_b = ctx.bshape is not None and _needs(ctx, 2)
        gx = np.empty_like(x2) if need_x else None
        gw = np.empty(C, dt) if need_w else None
        gb = np.empty(C, dt) if need_b else None
        fused(g2, x2, w, ctx.mu, ctx.rstd, gx, gw, gb, R, C)
        return (None if gx is None else gx.reshape(x.shape),
                None if gw is None else gw.reshape(w.shape),
                None if gb is None else gb.reshape(ctx.bshape))
    xhat = x2 - ctx.mu
    xhat *= ctx.rstd
    gx = gw = gb = None
    need_w = w is not None and _needs(ctx, 1)
    if need_w or (_needs(ctx, 0) and w is not None):
        gxh = g2 * xhat  # g * xhat: the weight's gradient terms
    if need_w:
        gw = np.matmul(_ones(R, dt), gxh).reshape(w.shape)
    if ctx.bshape is not None and _needs(ctx, 2):
        gb = np.matmul(_ones(R, dt), g2).reshape(ctx.bshape)
    if _needs(ctx, 0):
        if w is None:
            gh = g2.copy()
            ghx = g2 * xhat
        else:
            wr = w.reshape(C)
            gh = g2 * wr
            ghx = gxh
            ghx *= wr  # gh * xhat
        m2 = _rowmean(ghx)
        del ghx
        m1 = _rowmean(gh)
        xhat *= m2
        gh -= m1
        gh -= xhat
        gh *= ctx.rstd
        gx = gh.reshape(x.shape)
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
