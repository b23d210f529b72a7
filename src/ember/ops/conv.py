"""Convolution primitives (any number of spatial dims): conv, transposed conv, weight gradient.

Matches: the math of ``torch.nn.functional.conv{1,2,3}d`` and ``conv_transpose{1,2,3}d`` (the
argument parsing lives in :mod:`ember.nn.functional.conv`).

Design. A convolution is *im2col + one GEMM*. With ``groups == 1`` (the fast path, see
"wide plans" below) the padded input is unfolded by a single strided copy into columns
``(C * prod(k), N * prod(out))`` and every GEMM is one 2-D BLAS call; with groups the columns
are ``(N, C, *kernel, *out)``, one strided slice copy per kernel offset, multiplied by the weight
viewed as ``(groups, O/groups, K)``. Never a loop over pixels, channels or batch elements. The
three primitives below are the three bilinear maps of one trilinear form
``<g, conv(x, w)>``, so each one's gradients are the other two:

- :class:`ConvNd` ``y = conv(x, w)``: dx = conv_transpose(g, w), dw = conv_weight(x, g);
- :class:`ConvTransposeNd` ``x = conv_transpose(g, w)`` (col2im: one slice-add per kernel
  offset): dg = conv(G, w), dw = conv_weight(G, g);
- :class:`ConvWeightNd` ``w = conv_weight(x, g)``: dx = conv_transpose(g, G), dg = conv(x, G).

Hence every order of derivative (``create_graph=True``) stays within these three kernels.
With the compiled kernels, ``ConvNd`` runs some convolutions without columns: few input taps
per output (``conv2d_direct``, rows of outputs in vector registers) or few output channels
(``conv2d_chan``, channels in vector registers), where the unfolded GEMM is skinny; their input
gradient keeps the GEMM + col2im path. The unfold plans, the reused buffers and the choice of
a direct kernel are in :mod:`ember.ops.conv_plans`.
Padding is given per side (``pads = ((lo, hi), ...)``), which covers PyTorch's asymmetric
``padding='same'`` for even kernels. An ordinary backward reuses the columns that the forward
already unfolded for the weight gradient.
"""

from __future__ import annotations

import numpy as np

from . import native
from .arrays import channel_sums
from .base import NULL_CTX, Primitive, TensorBase, call, dtype_of, shape_of
from .conv_plans import (
    _QUIET,
    _direct,
    _gemm,
    _new,
    _plan,
    _small_direct,
    _wide_col2im,
    _wide_cols,
    _wide_grad,
    _wide_output,
    conv_out_size,
)

__all__ = ["conv_nd", "conv_transpose_nd", "conv_weight_nd", "conv_out_size"]


# ---------------------------------------------------------------------------- array helpers
def _pad_array(x: np.ndarray, pads, value=0) -> np.ndarray:
    """``x`` with its last ``len(pads)`` dims padded by ``(lo, hi)`` each (a new array)."""
    if not any(lo or hi for lo, hi in pads):
        return x
    lead = x.ndim - len(pads)
    shape = x.shape[:lead] + tuple(s + lo + hi for s, (lo, hi) in zip(x.shape[lead:], pads))
    out = np.zeros(shape, x.dtype) if value == 0 else np.full(shape, value, x.dtype)
    inner = tuple(slice(lo, lo + s) for s, (lo, _) in zip(x.shape[lead:], pads))
    out[(slice(None),) * lead + inner] = x
    return out


def _offset_slices(off, dilation, stride, out_size) -> tuple:
    """Slices of the padded input read by kernel offset ``off`` for every output position."""
    return tuple(slice(o * d, o * d + s * (n - 1) + 1, s)
                 for o, d, s, n in zip(off, dilation, stride, out_size))


def im2col(x: np.ndarray, ksize, stride, pads, dilation, out_size) -> np.ndarray:
    """Columns ``(N, C, *ksize, *out_size)`` of the zero-padded ``x`` (N, C, *spatial)."""
    xp = _pad_array(x, pads)
    n, c = x.shape[:2]
    if all(k == 1 for k in ksize) and all(s == 1 for s in stride) and \
            tuple(xp.shape[2:]) == tuple(out_size):
        return xp.reshape((n, c) + tuple(ksize) + tuple(out_size))
    cols = np.empty((n, c) + tuple(ksize) + tuple(out_size), x.dtype)
    lead = (slice(None), slice(None))
    for off in np.ndindex(*ksize):
        cols[lead + off] = xp[lead + _offset_slices(off, dilation, stride, out_size)]
    return cols


def col2im(cols: np.ndarray, in_size, stride, pads, dilation) -> np.ndarray:
    """Adjoint of :func:`im2col`: add columns ``(N, C, *k, *out)`` back into ``(N, C, *in)``."""
    nd = len(in_size)
    n, c = cols.shape[:2]
    ksize = cols.shape[2:2 + nd]
    out_size = cols.shape[2 + nd:]
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(in_size, pads))
    xp = np.zeros((n, c) + padded, cols.dtype)
    lead = (slice(None), slice(None))
    for off in np.ndindex(*ksize):
        xp[lead + _offset_slices(off, dilation, stride, out_size)] += cols[lead + off]
    crop = tuple(slice(lo, lo + s) for s, (lo, _) in zip(in_size, pads))
    return xp[lead + crop]


def _gemm_forward(cols, w, groups):
    """``w (O, C/G, *k)`` times columns ``(N, C, *k, *out)`` -> ``(N, O, L)``."""
    n = cols.shape[0]
    o = w.shape[0]
    kk = w[0].size
    if groups == 1:
        return np.matmul(w.reshape(o, kk), cols.reshape(n, kk, -1))
    wm = w.reshape(groups, o // groups, kk)
    out = np.matmul(wm, cols.reshape(n, groups, kk, -1))
    return out.reshape(n, o, -1)


def _gemm_weight(cols, g, groups):
    """Weight gradient ``sum_n g (N, O, L) @ cols^T`` -> ``(G, O/G, K)``.

    A batch of small GEMMs (one per sample) then a sum: faster than one large GEMM on the
    transposed copies, and it keeps BLAS single-threaded for the small shapes of typical nets.
    """
    n, o = g.shape[:2]
    if groups == 1:
        gm = g.reshape(n, o, -1)
        return np.matmul(gm, cols.reshape(n, -1, gm.shape[-1]).transpose(0, 2, 1)).sum(0)[None]
    gm = g.reshape(n, groups, o // groups, -1)
    cm = cols.reshape(n, groups, -1, gm.shape[-1])
    return np.matmul(gm, cm.transpose(0, 1, 3, 2)).sum(0)


def _finite(a) -> bool:
    return bool(np.isfinite(a).all()) if a.dtype.kind in "fc" else True


def _bias_shape(nd: int, c: int) -> tuple:
    return (c,) + (1,) * nd


# ---------------------------------------------------------------------------- primitives
class ConvNd(Primitive):
    """Cross-correlation ``y = conv(x, w) + b`` of x (N, C, *S) with w (O, C/groups, *k)."""

    @staticmethod
    def forward(ctx, x, w, b=None, *, stride, pads, dilation, groups, out_size=None):
        nd = x.ndim - 2
        ksize = w.shape[2:]
        if ctx is NULL_CTX and groups == 1 and nd <= 2:
            out = _small_direct(x, w, b, stride, pads, dilation, out_size)
            if out is not None:
                return out
        direct = _direct(x, w, b, stride, pads, dilation, groups, out_size)
        if direct is not None:  # a direct kernel: no columns
            out = _new(direct.out_shape, x.dtype)
            native.kernel(direct.forward)(x, w, b, out, direct.dims)
            if ctx is not NULL_CTX:
                ctx.save_for_backward(x, w)
                ctx.cols = ctx.plan = None
                ctx.direct = direct
                ctx.has_bias = b is not None
                ctx.attrs = (stride, pads, dilation, groups)
                ctx.out_size = out_size
            return out
        if groups == 1:
            p = _plan(x.shape, ksize, stride, pads, dilation, out_size)
            cols = _wide_cols(x, p)
            with np.errstate(**_QUIET):  # inf * 0 gives NaN silently, as in PyTorch
                y = _gemm(w.reshape(w.shape[0], p.k), cols, "y")
                out = _wide_output(y, p, b, y.dtype)
            del y
        else:
            if out_size is None:
                out_size = conv_out_size(x.shape[2:], ksize, stride, pads, dilation)
            cols = im2col(x, ksize, stride, pads, dilation, out_size)
            out = _gemm_forward(cols, w, groups).reshape((x.shape[0], w.shape[0]) +
                                                         tuple(out_size))
            if b is not None:
                out += b.reshape(_bias_shape(nd, w.shape[0]))
        if ctx is not NULL_CTX:
            ctx.save_for_backward(x, w)
            ctx.cols = cols
            ctx.plan = p if groups == 1 else None  # the geometry of cols
            ctx.has_bias = b is not None
            ctx.attrs = (stride, pads, dilation, groups)
            ctx.out_size = out_size
        return out

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved
        stride, pads, dilation, groups = ctx.attrs
        need = getattr(ctx, "needs_input_grad", (True, True, True))
        gx = gw = gb = None
        if groups == 1 and type(g) is np.ndarray:
            # plain backward: the wide gradient is built once for both GEMMs
            p = getattr(ctx, "plan", None) or _plan(x.shape, w.shape[2:], stride, pads, dilation,
                                                    ctx.out_size)
            o = w.shape[0]
            direct = getattr(ctx, "direct", None)  # the forward ran a direct kernel: no columns
            g2 = _wide_grad(g, p) if need[0] or (need[1] and direct is None) else None
            with np.errstate(**_QUIET):
                if need[1] and direct is not None:
                    gw = _direct_weight_grad(x, g, w, direct, stride, pads, dilation)
                elif need[1]:
                    gw = g2 @ ctx.cols.T
                    # (on the wide grid a garbage column may have met a non-finite input: redo)
                    if not p.exact and not _finite(gw):
                        gw = _gemm_weight(im2col(x, w.shape[2:], stride, pads, dilation,
                                                 g.shape[2:]), g, 1)
                    gw = gw.reshape(w.shape)
                if need[0]:
                    gx = _wide_col2im(_gemm(w.reshape(o, p.k).T, g2, "cg"), p)
                    # (on the wide grid a garbage column may have met a non-finite weight)
                    if not p.exact and not _finite(gx):
                        gx = np.ascontiguousarray(_transpose_ref(g, w, 1, stride, pads,
                                                                 dilation, x.shape[2:]))
            del g2
            if ctx.has_bias and need[2]:
                gb = channel_sums(g)
            return (gx, gw, gb) if ctx.has_bias else (gx, gw)
        if need[0]:
            gx = conv_transpose_nd(g, w, None, stride, pads, dilation, groups,
                                   tuple(shape_of(x)[2:]), check=False)
        if need[1]:
            cols = None if isinstance(g, TensorBase) else ctx.cols
            gw = conv_weight_nd(x, g, tuple(shape_of(w)[2:]), stride, pads, dilation, groups,
                                cols=cols)
        if ctx.has_bias and need[2]:
            gb = _sum_bias(g)
        return (gx, gw, gb) if ctx.has_bias else (gx, gw)


def _direct_weight_grad(x, g, w, direct, stride, pads, dilation):
    """The weight gradient after a direct forward: its weight-gradient kernel, or the general
    path when the kernels were switched off since the forward."""
    k = native.kernel(direct.wgrad)
    if k is None:
        return conv_weight_nd(x, g, w.shape[2:], stride, pads, dilation, 1)
    gw = np.empty(w.shape, w.dtype)
    k(x, np.ascontiguousarray(g), gw, direct.dims)
    return gw


def _transpose_ref(g, w, groups, stride, pads, dilation, in_size):
    """Reference transposed convolution: batched GEMM then col2im with (N, C, *k, *S) cols."""
    n, o = g.shape[:2]
    og = o // groups
    cg = w.shape[1]
    kk = w[0].size
    if groups == 1:
        cols = np.matmul(w.reshape(o, kk).T, g.reshape(n, o, -1))
    else:
        wm = w.reshape(groups, og, kk).transpose(0, 2, 1)
        cols = np.matmul(wm, g.reshape(n, groups, og, -1))
    cols = cols.reshape((n, groups * cg) + tuple(w.shape[2:]) + g.shape[2:])
    return col2im(cols, in_size, stride, pads, dilation)


class ConvTransposeNd(Primitive):
    """Transposed convolution (col2im): x (N, C, *in_size) from g (N, O, *S), w (O, C/G, *k)."""

    @staticmethod
    def forward(ctx, g, w, b=None, *, stride, pads, dilation, groups, in_size):
        n, o = g.shape[:2]
        nd = g.ndim - 2
        c = w.shape[1] * groups
        out = None
        if groups == 1:
            p = _plan((n, c) + tuple(in_size), w.shape[2:], stride, pads, dilation, g.shape[2:])
            with np.errstate(**_QUIET):
                out = _wide_col2im(_gemm(w.reshape(o, p.k).T, _wide_grad(g, p), "cg"), p)
            if not p.exact and not _finite(out):
                out = None  # a garbage column may have met a non-finite weight: redo exactly
        if out is None:
            out = _transpose_ref(g, w, groups, stride, pads, dilation, in_size)
        if b is not None:
            out = out + b.reshape(_bias_shape(nd, c))
        elif not out.flags.c_contiguous:
            out = np.ascontiguousarray(out)
        if ctx is not NULL_CTX:
            ctx.save_for_backward(g, w)
            ctx.has_bias = b is not None
            ctx.attrs = (stride, pads, dilation, groups)
        return out

    @staticmethod
    def backward(ctx, gg):
        g, w = ctx.saved
        stride, pads, dilation, groups = ctx.attrs
        need = getattr(ctx, "needs_input_grad", (True, True, True))
        d_g = d_w = d_b = None
        out_size = tuple(shape_of(g)[2:])
        if need[0]:
            d_g = call(ConvNd, gg, w, stride=stride, pads=pads, dilation=dilation,
                       groups=groups, out_size=out_size)
        if need[1]:
            d_w = conv_weight_nd(gg, g, tuple(shape_of(w)[2:]), stride, pads, dilation, groups)
        if ctx.has_bias and need[2]:
            d_b = _sum_bias(gg)
        return (d_g, d_w, d_b) if ctx.has_bias else (d_g, d_w)


class ConvWeightNd(Primitive):
    """Weight gradient of a convolution: ``w = conv_weight(x, g)`` of shape (O, C/G, *ksize)."""

    @staticmethod
    def forward(ctx, x, g, *, ksize, stride, pads, dilation, groups, cols=None):
        o = g.shape[1]
        gw = None
        if groups == 1:
            p = _plan(x.shape, ksize, stride, pads, dilation, g.shape[2:])
            if cols is None or cols.shape != (p.k, p.m):  # (made under another plan)
                cols = _wide_cols(x, p)
            with np.errstate(**_QUIET):
                gw = _wide_grad(g, p) @ cols.T
            if not p.exact and not _finite(gw):
                gw = cols = None  # a garbage column may hold a non-finite input: redo exactly
        if gw is None:
            if cols is None:
                cols = im2col(x, ksize, stride, pads, dilation, g.shape[2:])
            gw = _gemm_weight(cols, g, groups)
        gw = gw.reshape((o, x.shape[1] // groups) + tuple(ksize))
        if ctx is not NULL_CTX:
            ctx.save_for_backward(x, g)
            ctx.attrs = (stride, pads, dilation, groups)
        return gw

    @staticmethod
    def backward(ctx, gg):
        x, g = ctx.saved
        stride, pads, dilation, groups = ctx.attrs
        need = getattr(ctx, "needs_input_grad", (True, True))
        d_x = d_g = None
        if need[0]:
            d_x = conv_transpose_nd(g, gg, None, stride, pads, dilation, groups,
                                    tuple(shape_of(x)[2:]), check=False)
        if need[1]:
            d_g = call(ConvNd, x, gg, stride=stride, pads=pads, dilation=dilation,
                       groups=groups, out_size=tuple(shape_of(g)[2:]))
        return d_x, d_g


def _sum_bias(g):
    from .reduce import sum as _sum

    nd = len(shape_of(g))
    return _sum(g, (0,) + tuple(range(2, nd)))


# ---------------------------------------------------------------------------- functions
def _check_float(op: str, *xs) -> None:
    dts = [dtype_of(x) for x in xs if x is not None]
    if any(d is None for d in dts):
        raise TypeError(f"{op}: expected tensors, got "
                        f"{', '.join(type(x).__name__ for x in xs if x is not None)}")
    if any(d != dts[0] for d in dts[1:]):
        raise RuntimeError(f"{op}: input, weight and bias must have the same dtype, got "
                           f"{', '.join(str(d) for d in dts)}")


def conv_nd(input, weight, bias, stride, pads, dilation, groups: int, op: str = "conv"):
    """N-d cross-correlation with per-side zero padding ``pads = ((lo, hi), ...)``.

    Args:
        input: (N, C, *S); weight: (O, C/groups, *k); bias: (O,) or None.
        stride, dilation: tuples of ints, one per spatial dim.
    Returns (N, O, *out) with ``out = (S + lo + hi - dilation*(k-1) - 1) // stride + 1``.
    """
    xs, ws = tuple(shape_of(input)), tuple(shape_of(weight))
    nd = len(ws) - 2
    _check_float(op, input, weight, bias)
    if len(xs) != nd + 2:
        raise RuntimeError(f"{op}: expected a {nd + 2}-D input (N, C, ...) for a {nd + 2}-D "
                           f"weight {ws}, got input of shape {xs}")
    if groups < 1 or ws[0] % groups:
        raise ValueError(f"{op}: out_channels ({ws[0]}) must be divisible by groups ({groups})")
    if xs[1] != ws[1] * groups:
        raise RuntimeError(f"{op}: expected input {xs} to have {ws[1] * groups} channels "
                           f"(weight {ws}, groups={groups}), but got {xs[1]} channels")
    if bias is not None and tuple(shape_of(bias)) != (ws[0],):
        raise RuntimeError(f"{op}: expected bias of shape ({ws[0]},), got "
                           f"{tuple(shape_of(bias))}")
    padded = tuple(s + lo + hi for s, (lo, hi) in zip(xs[2:], pads))
    eff = tuple(d * (k - 1) + 1 for d, k in zip(dilation, ws[2:]))
    if any(p < e for p, e in zip(padded, eff)):
        raise RuntimeError(f"{op}: kernel size {tuple(ws[2:])} (dilated {eff}) can't be greater "
                           f"than the padded input size {padded} (input {xs})")
    if bias is None:
        return call(ConvNd, input, weight, stride=tuple(stride), pads=tuple(pads),
                    dilation=tuple(dilation), groups=int(groups))
    return call(ConvNd, input, weight, bias, stride=tuple(stride), pads=tuple(pads),
                dilation=tuple(dilation), groups=int(groups))


def conv_transpose_nd(input, weight, bias, stride, pads, dilation, groups: int, in_size,
                      op: str = "conv_transpose", check: bool = True):
    """Transposed convolution: the adjoint of :func:`conv_nd` with respect to its input.

    Args:
        input: (N, O, *S); weight: (O, C/groups, *k); bias: (C,) or None;
        in_size: the spatial size of the result (N, C, *in_size).
        check: validate the arguments (internal callers that built them consistently skip it).
    """
    if not check:
        attrs = dict(stride=stride, pads=pads, dilation=dilation, groups=groups,
                     in_size=in_size)
        if bias is None:
            return call(ConvTransposeNd, input, weight, **attrs)
        return call(ConvTransposeNd, input, weight, bias, **attrs)
    gs, ws = tuple(shape_of(input)), tuple(shape_of(weight))
    nd = len(ws) - 2
    _check_float(op, input, weight, bias)
    if len(gs) != nd + 2:
        raise RuntimeError(f"{op}: expected a {nd + 2}-D input for a {nd + 2}-D weight {ws}, "
                           f"got input of shape {gs}")
    if groups < 1 or ws[0] % groups:
        raise ValueError(f"{op}: in_channels ({ws[0]}) must be divisible by groups ({groups})")
    if gs[1] != ws[0]:
        raise RuntimeError(f"{op}: expected input {gs} to have {ws[0]} channels (weight {ws}), "
                           f"but got {gs[1]} channels")
    c = ws[1] * groups
    if bias is not None and tuple(shape_of(bias)) != (c,):
        raise RuntimeError(f"{op}: expected bias of shape ({c},), got {tuple(shape_of(bias))}")
    for i, k, s, (lo, hi), d, n in zip(in_size, ws[2:], stride, pads, dilation, gs[2:]):
        if i + lo + hi < s * (n - 1) + d * (k - 1) + 1 or i < 1:
            raise RuntimeError(f"{op}: output size {tuple(in_size)} is too small for input "
                               f"{gs} and weight {ws}")
    attrs = dict(stride=tuple(stride), pads=tuple(pads), dilation=tuple(dilation),
                 groups=int(groups), in_size=tuple(in_size))
    if bias is None:
        return call(ConvTransposeNd, input, weight, **attrs)
    return call(ConvTransposeNd, input, weight, bias, **attrs)


def conv_weight_nd(input, grad, ksize, stride, pads, dilation, groups: int, cols=None):
    """Gradient of a convolution with respect to its weight (O, C/groups, *ksize)."""
    return call(ConvWeightNd, input, grad, ksize=tuple(ksize), stride=tuple(stride),
                pads=tuple(pads), dilation=tuple(dilation), groups=int(groups), cols=cols)

