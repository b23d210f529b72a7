"""Reductions over dims: sum, mean, prod, amax/amin, max/min, var/std, logsumexp, norm, arg*, cum*.

Matches: the ``torch`` functions of the same names (``dim`` an int or a tuple, ``keepdim``).

Backward of a reduction broadcasts the gradient back over the reduced dims. Ties: ``amax``/``amin``
and the full ``max()``/``min()`` split the gradient evenly among the tied elements, while
``max(dim)``/``min(dim)`` send it to the returned index (both as in PyTorch).
"""

from __future__ import annotations

import builtins  # sum, max, min, any, all are redefined below as reductions
import math
from collections import namedtuple

import numpy as np

from . import dtypes as dt
from .arrays import BLAS_FLOATS, column_sums
from .base import Primitive, call, dtype_of, normalize_dim, normalize_dims, shape_of

__all__ = ["sum_to", "sum", "mean", "prod", "amax", "amin", "max", "min", "argmax", "argmin",
           "var", "std", "var_mean", "std_mean", "logsumexp", "norm", "all", "any", "cumsum",
           "cumprod", "count_nonzero", "MaxResult", "MinResult"]


_QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore", "under": "ignore"}


def _kept_shape(shape: tuple, axes: tuple) -> tuple:
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


def _expand_back(g, shape: tuple, axes: tuple, keepdim: bool):
    """Broadcast a reduced gradient back to the input's shape (shapes are known to be valid,
    so the primitives are called directly, skipping the public functions' checks)."""
    kept = _kept_shape(shape, axes)
    if not keepdim and shape_of(g) != kept:
        g = call(Reshape, g, shape=kept)
    return g if kept == tuple(shape) else call(BroadcastTo, g, shape=tuple(shape))


class SumTo(Primitive):
    """Sum a broadcast result back down to ``shape`` (the backward of broadcasting)."""

    @staticmethod
    def forward(ctx, x, shape):
        ctx.in_shape = x.shape
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(
            i + lead for i, s in enumerate(shape) if s == 1 and x.shape[i + lead] != 1)
        k = len(axes)
        if (k and axes == tuple(range(k)) and x.dtype in BLAS_FLOATS and x.size
                and x.flags.c_contiguous):
            # leading axes (a bias or residual broadcast over the batch): one BLAS product
            return column_sums(x.reshape(math.prod(x.shape[:k]), -1)).reshape(shape)
        out = x.sum(axis=axes, keepdims=True) if axes else x
        return out.reshape(shape) if lead else out

    @staticmethod
    def backward(ctx, g):
        return broadcast_to(g, ctx.in_shape)


def sum_to(x, shape: tuple):
    """``x`` summed down to ``shape`` (no-op when it already has that shape)."""
    if shape_of(x) == tuple(shape):
        return x
    return call(SumTo, x, shape=tuple(shape))


class Sum(Primitive):
    @staticmethod
    def forward(ctx, x, axes, keepdim, dtype=None):
        ctx.args = (x.shape, axes, keepdim)
        return np.asarray(x.sum(axis=axes, keepdims=keepdim, dtype=dtype))

    @staticmethod
    def backward(ctx, g):
        return _expand_back(g, *ctx.args)


class Mean(Primitive):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.args = (x.shape, axes, keepdim)
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.n = n
        if n == 0:  # the mean of nothing is nan (np.mean would warn)
            with np.errstate(**_QUIET):
                return np.asarray(np.sum(x, axis=axes, keepdims=keepdim) / x.dtype.type(0))
        return np.asarray(x.mean(axis=axes, keepdims=keepdim))

    @staticmethod
    def backward(ctx, g):
        return _expand_back(g / ctx.n if ctx.n else g * np.nan, *ctx.args)


class Prod(Primitive):
    """Product; the gradient is prod / x, computed without dividing where x == 0."""

    @staticmethod
    def forward(ctx, x, axis, keepdim):
        out = np.asarray(np.prod(x, axis=axis, keepdims=keepdim))
        ctx.save_for_backward(x, out)
        ctx.args = (axis, keepdim)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        axis, keepdim = ctx.args
        axes = tuple(range(len(shape_of(x)))) if axis is None else (axis,)
        shape = shape_of(x)
        gk = _expand_back(g, shape, axes, keepdim)
        ok = _expand_back(out, shape, axes, keepdim)
        xd = x._data if hasattr(x, "_data") else x
        if not (xd == 0).any():
            return gk * ok / x
        # with zeros: product of all the other elements, via exclusive cumulative products
        if axis is None:
            flat = reshape(x, (-1,))
            return reshape(_prod_others(flat, 0) * reshape(gk, (-1,)), shape)
        return _prod_others(x, axis) * gk


def _prod_others(x, axis: int):
    """For each element, the product of the other elements along ``axis``."""
    from .movement import flip

    ones_shape = list(shape_of(x))
    ones_shape[axis] = 1
    one = np.ones(ones_shape, dtype=dtype_of(x))
    from .movement import cat, narrow

    n = shape_of(x)[axis]
    left = cat([one, narrow(cumprod(x, axis), axis, 0, n - 1)], axis)
    rx = flip(x, (axis,))
    right = flip(cat([one, narrow(cumprod(rx, axis), axis, 0, n - 1)], axis), (axis,))
    return left * right


class Amax(Primitive):
    """Max over dims; tied maxima share the gradient evenly."""

    @staticmethod
    def forward(ctx, x, axes, keepdim, largest=True):
        if builtins.any(x.shape[a] == 0 for a in axes) or (x.ndim == 0 and x.size == 0):
            raise IndexError(f"{'amax' if largest else 'amin'}: cannot reduce over a "
                             f"zero-size dimension (shape {x.shape}, dims {axes})")
        fn = np.max if largest else np.min
        out = np.asarray(fn(x, axis=axes, keepdims=True))
        mask = (x == out)
        ctx.weights = (mask / mask.sum(axis=axes, keepdims=True)).astype(x.dtype)
        ctx.args = (x.shape, axes, keepdim)
        return out if keepdim else out.reshape(tuple(s for i, s in enumerate(x.shape)
                                                     if i not in axes))

    @staticmethod
    def backward(ctx, g):
        return _expand_back(g, *ctx.args) * ctx.weights


class Var(Primitive):
    """Variance with ``correction`` (1 = unbiased); d/dx = 2 (x - mean) / (N - correction)."""

    @staticmethod
    def forward(ctx, x, axes, correction, keepdim):
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.save_for_backward(x)
        ctx.args = (axes, keepdim, builtins.max(n - correction, 0))
        with np.errstate(**_QUIET):  # n <= correction gives inf/nan silently, as in PyTorch
            centered = x - np.mean(x, axis=axes, keepdims=True) if n else x
            ss = np.sum(centered * centered, axis=axes, keepdims=keepdim)
            return np.asarray(ss / x.dtype.type(builtins.max(n - correction, 0)))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        axes, keepdim, denom = ctx.args
        centered = x - mean(x, axes, keepdim=True)
        with np.errstate(**_QUIET):
            scale = 2.0 / denom if denom else np.inf
        return _expand_back(g, shape_of(x), axes, keepdim) * centered * scale


class LogSumExp(Primitive):
    """log(sum(exp(x))) computed as m + log(sum(exp(x - m))) with m the max: no overflow."""

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        m = np.max(x, axis=axes, keepdims=True) if x.size else np.zeros(
            _kept_shape(x.shape, axes), x.dtype)
        m = np.where(np.isfinite(m), m, 0)
        with np.errstate(**_QUIET):
            out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
        if not keepdim:
            out = out.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))
        ctx.save_for_backward(x, out)  # the returned array: double backward sees it depend on x
        ctx.args = (x.shape, axes, keepdim)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        shape, axes, keepdim = ctx.args
        out_k = out if keepdim else reshape(out, _kept_shape(shape, axes))
        return _expand_back(g, shape, axes, keepdim) * exp(x - out_k)


class Norm(Primitive):
    """Vector p-norm over dims. The gradient at a zero vector is 0 (PyTorch's convention)."""

    @staticmethod
    def forward(ctx, x, p, axes, keepdim):
        ax = np.abs(x)
        if p == float("inf"):
            out = np.max(ax, axis=axes, keepdims=True)
        elif p == float("-inf"):
            out = np.min(ax, axis=axes, keepdims=True)
        elif p == 0:
            out = np.sum(ax != 0, axis=axes, keepdims=True).astype(x.dtype)
        elif p == 1:
            out = np.sum(ax, axis=axes, keepdims=True)
        elif p == 2:
            out = np.sqrt(np.sum(x * x, axis=axes, keepdims=True))
        else:
            out = np.sum(ax ** p, axis=axes, keepdims=True) ** (1.0 / p)
        out = np.asarray(out, dtype=x.dtype)
        if not keepdim:
            out = out.reshape(tuple(s for i, s in enumerate(x.shape) if i not in axes))
        ctx.save_for_backward(x, out)  # the returned array: double backward sees it depend on x
        ctx.args = (x.shape, axes, keepdim, p)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        shape, axes, keepdim, p = ctx.args
        gk = _expand_back(g, shape, axes, keepdim)
        if not keepdim:
            out = reshape(out, _kept_shape(shape, axes))
        from .binary import where

        if p == 0:
            return gk * 0
        if p == 1:
            return gk * sign(x)
        if p in (float("inf"), float("-inf")):
            ax = abs_(x)
            hit = (ax == out).astype(dtype_of(x)) if not hasattr(ax, "_data") else \
                where(ax == out, 1.0, 0.0)
            count = sum_(hit, axes, keepdim=True)
            return gk * sign(x) * hit / count
        safe = where(out == 0, 1.0, out)
        if p == 2:
            return where(out == 0, 0.0, gk * x / safe)
        return where(out == 0, 0.0, gk * x * abs_(x) ** (p - 2) / safe ** (p - 1))


class Cumsum(Primitive):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return np.cumsum(x, axis=axis, dtype=x.dtype if x.dtype.kind == "f" else np.int64
                         ).reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        from .movement import flip

        if len(shape_of(g)) == 0:
            return g
        return flip(cumsum(flip(g, (ctx.axis,)), ctx.axis), (ctx.axis,))


class Cumprod(Primitive):
    @staticmethod
    def forward(ctx, x, axis):
        out = np.cumprod(x, axis=axis, dtype=x.dtype if x.dtype.kind == "f" else np.int64
                         ).reshape(x.shape)
        ctx.save_for_backward(x, out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx, g):
        # d out_j / d x_i = out_j / x_i for j >= i: reverse cumsum of g * out, divided by x.
        from .movement import flip

        x, out = ctx.saved
        a = ctx.axis
        if len(shape_of(x)) == 0:
            return g
        xd = x._data if hasattr(x, "_data") else x
        if (xd == 0).any():
            return _cumprod_grad_with_zeros(x, g, a)
        rev = flip(cumsum(flip(g * out, (a,)), a), (a,))
        return rev / x


def _cumprod_grad_with_zeros(x, g, axis: int):
    """Gradient of cumprod without dividing by x (O(n^2) along ``axis``).

    d/dx_i = P_i * S_i with P_i = prod_{k<i} x_k (exclusive cumprod) and
    S_i = sum_{j>=i} g_j prod_{i<k<=j} x_k, the latter read off the cumprods of the rows of
    M[i, k] = x_k if k > i else 1.
    """
    from .binary import where
    from .movement import cat, movedim, narrow, unsqueeze

    xm, gm = movedim(x, axis, -1), movedim(g, axis, -1)
    n = shape_of(xm)[-1]
    k = np.arange(n)
    after = k[:, None] < k[None, :]  # [i, k]: k > i
    rows = cumprod(where(after, unsqueeze(xm, -2), 1.0), -1)  # [.., i, j]
    s = sum(where(k[:, None] <= k[None, :], rows * unsqueeze(gm, -2), 0.0), -1)
    one = np.ones(shape_of(xm)[:-1] + (1,), dtype=dtype_of(x))
    p = cat([one, narrow(cumprod(xm, -1), -1, 0, n - 1)], -1)
    return movedim(p * s, -1, axis)


class _ArgReduce(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x, axis, keepdim, largest):
        if x.size == 0:
            raise IndexError(f"{'argmax' if largest else 'argmin'}: cannot take it of an empty "
                             f"tensor (shape {x.shape})")
        fn = np.argmax if largest else np.argmin
        if axis is None:
            out = np.asarray(fn(x))
            return out.reshape((1,) * x.ndim) if keepdim else out
        return fn(x, axis=axis, keepdims=keepdim).astype(np.int64)


class _BoolReduce(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x, axes, keepdim, every):
        fn = np.all if every else np.any
        return np.asarray(fn(x, axis=axes, keepdims=keepdim))


# ---------------------------------------------------------------------------- public functions
def _axes(input, dim, op: str):
    return normalize_dims(dim, len(shape_of(input)), op)


def sum(input, dim=None, keepdim: bool = False, *, dtype=None):  # noqa: A001
    """Sum over ``dim`` (all dims if None). Matches ``torch.sum`` (bool/int sums are int64)."""
    axes = _axes(input, dim, "sum")
    d = dtype_of(input)
    npdt = dt.as_np_dtype(dtype)
    if npdt is None and d is not None and d.kind in "biu":
        npdt = dt.DEFAULT_INT
    if npdt is not None and d is not None and d.kind == "f" and npdt.kind == "f":
        from .binary import cast

        input, npdt = cast(input, npdt), None
    return call(Sum, input, axes=axes, keepdim=keepdim, dtype=npdt)


sum_ = sum


def mean(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Mean over ``dim``. Matches ``torch.mean`` (float inputs only, like PyTorch)."""
    if dtype is not None:
        from .binary import cast

        input = cast(input, dt.as_np_dtype(dtype))
    d = dtype_of(input)
    if d is not None and d.kind != "f":
        raise RuntimeError(f"mean: expected a floating-point tensor, got {dt.from_np(d)}; "
                           f"convert with .float() or pass dtype=ember.float32")
    return call(Mean, input, axes=_axes(input, dim, "mean"), keepdim=keepdim)


def prod(input, dim=None, keepdim: bool = False, *, dtype=None):
    """Product over one ``dim`` (or all). Matches ``torch.prod``."""
    if dtype is not None:
        from .binary import cast

        input = cast(input, dt.as_np_dtype(dtype))
    axis = None if dim is None else normalize_dim(dim, len(shape_of(input)), "prod")
    return call(Prod, input, axis=axis, keepdim=keepdim)


def amax(input, dim=(), keepdim: bool = False):
    """Max over ``dim`` (all dims when empty); ties share the gradient. Matches ``torch.amax``."""
    dims = None if dim == () or dim is None else dim
    return call(Amax, input, axes=_axes(input, dims, "amax"), keepdim=keepdim, largest=True)


def amin(input, dim=(), keepdim: bool = False):
    """Min over ``dim`` (all dims when empty); ties share the gradient. Matches ``torch.amin``."""
    dims = None if dim == () or dim is None else dim
    return call(Amax, input, axes=_axes(input, dims, "amin"), keepdim=keepdim, largest=False)


MaxResult = namedtuple("max", ["values", "indices"])
MinResult = namedtuple("min", ["values", "indices"])


def _extreme(input, dim, keepdim, other, largest: bool):
    name = "max" if largest else "min"
    if other is not None and not isinstance(other, (int, bool)):
        from .binary import maximum, minimum

        return maximum(input, other) if largest else minimum(input, other)
    if dim is None:
        return (amax if largest else amin)(input)
    from .indexing import take_along_dim

    axis = normalize_dim(dim, len(shape_of(input)), name)
    idx = call(_ArgReduce, input, axis=axis, keepdim=True, largest=largest)
    values = take_along_dim(input, idx, axis)
    if not keepdim:
        from .movement import squeeze

        values, idx = squeeze(values, axis), squeeze(idx, axis)
    return (MaxResult if largest else MinResult)(values, idx)


def max(input, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001
    """``max(x)``: the largest value; ``max(x, dim)``: (values, indices); ``max(x, y)``: maximum."""
    if dim is not None and not isinstance(dim, (int, np.integer)):
        return _extreme(input, None, keepdim, dim, True)
    return _extreme(input, dim, keepdim, other, True)


def min(input, dim=None, keepdim: bool = False, *, other=None):  # noqa: A001
    """``min(x)``: the smallest value; ``min(x, dim)``: (values, indices); ``min(x, y)``:
    minimum."""
    if dim is not None and not isinstance(dim, (int, np.integer)):
        return _extreme(input, None, keepdim, dim, False)
    return _extreme(input, dim, keepdim, other, False)


def argmax(input, dim=None, keepdim: bool = False):
    """Index of the largest value (of the flattened tensor if dim is None). Matches torch."""
    axis = None if dim is None else normalize_dim(dim, len(shape_of(input)), "argmax")
    return call(_ArgReduce, input, axis=axis, keepdim=keepdim, largest=True)


def argmin(input, dim=None, keepdim: bool = False):
    """Index of the smallest value. Matches ``torch.argmin``."""
    axis = None if dim is None else normalize_dim(dim, len(shape_of(input)), "argmin")
    return call(_ArgReduce, input, axis=axis, keepdim=keepdim, largest=False)


def _correction(correction, unbiased) -> int:
    if correction is not None and unbiased is not None:
        raise ValueError("var/std: pass either correction or unbiased, not both")
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    return correction


def var(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    """Variance over ``dim`` with Bessel's ``correction`` (default 1). Matches ``torch.var``."""
    if isinstance(unbiased, (tuple, list)) or (isinstance(unbiased, int) and
                                                not isinstance(unbiased, bool)):
        raise TypeError("var: the second positional argument is `unbiased` (a bool); pass "
                        "dims as var(x, dim=...)")
    return call(Var, input, axes=_axes(input, dim, "var"),
                correction=_correction(correction, unbiased), keepdim=keepdim)


def std(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    """Standard deviation: sqrt of :func:`var`. Matches ``torch.std``."""
    from .unary import sqrt

    return sqrt(var(input, dim, unbiased, keepdim, correction=correction))


def var_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    return (var(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


def std_mean(input, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
    return (std(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


def logsumexp(input, dim, keepdim: bool = False):
    """log(sum(exp(x))) over ``dim``, stable for large magnitudes. Matches ``torch.logsumexp``."""
    return call(LogSumExp, input, axes=_axes(input, dim, "logsumexp"), keepdim=keepdim)


def norm(input, p="fro", dim=None, keepdim: bool = False, dtype=None):
    """Vector p-norm over ``dim`` ("fro" = 2; "nuc" is not supported). Matches ``torch.norm``."""
    if p == "fro" or p is None:
        p = 2
    if isinstance(p, str):
        raise ValueError(f"norm: unsupported p={p!r}; expected a number, inf or 'fro'")
    if dtype is not None:
        from .binary import cast

        input = cast(input, dt.as_np_dtype(dtype))
    return call(Norm, input, p=float(p), axes=_axes(input, dim, "norm"), keepdim=keepdim)


def all(input, dim=None, keepdim: bool = False):  # noqa: A001
    """True where every element (over ``dim``) is nonzero. Matches ``torch.all``."""
    return call(_BoolReduce, input, axes=_axes(input, dim, "all"), keepdim=keepdim, every=True)


def any(input, dim=None, keepdim: bool = False):  # noqa: A001
    """True where some element (over ``dim``) is nonzero. Matches ``torch.any``."""
    return call(_BoolReduce, input, axes=_axes(input, dim, "any"), keepdim=keepdim, every=False)


def cumsum(input, dim, *, dtype=None):
    """Cumulative sum along ``dim``. Matches ``torch.cumsum``."""
    if dtype is not None:
        from .binary import cast

        input = cast(input, dt.as_np_dtype(dtype))
    return call(Cumsum, input, axis=normalize_dim(dim, len(shape_of(input)), "cumsum"))


def cumprod(input, dim, *, dtype=None):
    """Cumulative product along ``dim``. Matches ``torch.cumprod``."""
    if dtype is not None:
        from .binary import cast

        input = cast(input, dt.as_np_dtype(dtype))
    return call(Cumprod, input, axis=normalize_dim(dim, len(shape_of(input)), "cumprod"))


def count_nonzero(input, dim=None):
    from .binary import ne

    return sum(ne(input, 0), dim)


# used in backward formulas (imported last: these modules import this one)
from .movement import BroadcastTo, Reshape, broadcast_to, reshape  # noqa: E402
from .unary import abs as abs_  # noqa: E402
from .unary import exp, sign  # noqa: E402
