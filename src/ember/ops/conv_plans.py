"""How a convolution runs (used by :mod:`ember.ops.conv`): the "wide" unfold plans and the
reused buffers of the GEMM path, and the choice of a compiled direct kernel that skips the
columns. No primitive lives here: :mod:`ember.ops.conv` holds the three convolution
primitives and their math.
"""

from __future__ import annotations

import math
import sys
import threading
from typing import NamedTuple

import numpy as np

from . import native
from .arrays import BLAS_FLOATS


def conv_out_size(in_size, ksize, stride, pads, dilation) -> tuple:
    """Output spatial size of a convolution (PyTorch's floor formula)."""
    return tuple((i + lo + hi - d * (k - 1) - 1) // s + 1
                 for i, k, s, (lo, hi), d in zip(in_size, ksize, stride, pads, dilation))


# ---------------------------------------------------------------------------- "wide" plans
# The fast path (groups == 1) lays the zero-padded input out as one flat, channel-major buffer
# (C, N, *padded) whose last spatial dim is rounded up to ``stride * Q``. Along that dim the output
# grid is computed ``Q >= out`` wide: for every kernel offset the columns are then one strided
# view of the buffer whose innermost run spans whole output rows (2-D, stride 1: ``out_rows * Q``
# contiguous elements; 1-D: all ``N * Q`` outputs of a channel), so the unfold is one copy with
# long inner loops; the extra ("garbage") columns ``Q - out`` are dropped after the GEMM.
# Columns are ``(K, M)`` with ``K = C * prod(k)`` and ``M = N * prod(out[:-1]) * Q``, so forward,
# weight gradient and input gradient are each one 2-D GEMM. A garbage column reads real input
# values (finite or not): the results that could see one (weight/input gradients) are checked
# for non-finite values and then recomputed exactly by the reference path.
# With the compiled unfold (``native.kernel("gather")``), which copies short runs fast, the plan
# is exact instead: Q = out, no garbage columns, and every GEMM is that much smaller (LeNet's
# second convolution: 10 columns per output row instead of 14).
_PLANS: dict = {}


class _Plan:
    __slots__ = ("n", "c", "nd", "out", "q", "padded", "plane", "total", "inner", "cshape",
                 "cstrides", "offs", "vshape", "vstrides", "m", "k", "wide_shape", "crop",
                 "swap", "bshape", "small", "size", "cn_shape", "grid", "exact")

    def __init__(self, xs, ksize, stride, pads, dilation, out_size, exact=False):
        if out_size is None:
            out_size = conv_out_size(xs[2:], ksize, stride, pads, dilation)
        n, c = xs[:2]
        nd = len(ksize)
        spatial = xs[2:]
        padded = [s + lo + hi for s, (lo, hi) in zip(spatial, pads)]
        q = -(-padded[-1] // stride[-1])
        padded[-1] = q * stride[-1]
        if exact:  # the compiled unfold copies short runs fast: no garbage columns
            q = out_size[-1]
        self.exact = q == out_size[-1]
        rows = [1] * nd  # element strides of the padded spatial dims
        for j in range(nd - 2, -1, -1):
            rows[j] = rows[j + 1] * padded[j + 1]
        plane = rows[0] * padded[0]
        offs = [sum(o * d * r for o, d, r in zip(off, dilation, rows))
                for off in np.ndindex(*ksize)]
        ostr = tuple(s * r for s, r in zip(stride, rows))
        vshape = (c, n) + tuple(out_size[:-1]) + (q,)
        vstrides = (n * plane, plane) + ostr
        last = (c - 1) * n * plane + (n - 1) * plane + \
            sum((v - 1) * st for v, st in zip(vshape[2:], ostr)) + max(offs)
        self.n, self.c, self.nd = n, c, nd
        self.out, self.q, self.padded, self.plane = tuple(out_size), q, tuple(padded), plane
        self.total = max(n * c * plane, last + 1)
        self.inner = (slice(None), slice(None)) + tuple(
            slice(lo, lo + s) for s, (lo, _) in zip(spatial, pads))
        self.k = c * len(offs)
        # columns view (C, *k, N, *out[:-1], Q) of the buffer, in elements
        kstr = tuple(d * r for d, r in zip(dilation, rows))
        self.cshape = (c,) + tuple(ksize) + (n,) + tuple(out_size[:-1]) + (q,)
        self.cstrides = (n * plane,) + kstr + (plane,) + ostr
        self.offs, self.vshape, self.vstrides = offs, vshape, vstrides
        self.m = n * math.prod(out_size[:-1]) * q
        self.wide_shape = (n,) + tuple(out_size[:-1]) + (q,)
        self.crop = (slice(None),) * (nd + 1) + (slice(0, out_size[-1]),)
        self.swap = (1, 0) + tuple(range(2, nd + 2))
        self.bshape = (-1,) + (1,) * nd
        # small problems skip the buffer pool (its bookkeeping costs more than malloc there)
        self.small = self.k * self.m < 65536
        self.size = n * c * plane
        self.cn_shape = (c, n) + tuple(padded)
        self.grid = _coalesce(self.cshape, self.cstrides)


def _coalesce(shape, strides):
    """(shape, strides) of the same strided grid with mergeable neighbouring dims merged
    (a dim whose stride is the next dim's stride times its length), for the compiled kernels."""
    out_shape, out_strides = [shape[-1]], [strides[-1]]
    for n, st in zip(shape[-2::-1], strides[-2::-1]):
        if st == out_strides[0] * out_shape[0]:
            out_shape[0] *= n
        else:
            out_shape.insert(0, n)
            out_strides.insert(0, st)
    return tuple(out_shape), tuple(out_strides)


def _plan(xs, ksize, stride, pads, dilation, out_size=None) -> _Plan:
    """The (cached) plan; exact columns when the compiled unfold runs, else the wide grid."""
    exact = native.kernel("gather") is not None
    key = (xs, ksize, stride, pads, dilation, out_size, exact)
    p = _PLANS.get(key)
    if p is None:
        if len(_PLANS) > 512:
            _PLANS.clear()
        p = _PLANS[key] = _Plan(xs, ksize, stride, pads, dilation, out_size, exact)
    return p


def _strided(buf, shape, strides, offset=0):
    """A view of the flat contiguous ``buf`` (strides in elements)."""
    it = buf.itemsize
    return np.ndarray(shape, buf.dtype, buf, offset * it, tuple(s * it for s in strides))


# Large temporaries (columns, GEMM results) are reused across calls: a fresh multi-megabyte
# array costs a page fault per 4 KiB on first touch, often more than the copy itself. A buffer
# is handed out again only when nothing but the pool refers to it (a graph still holding the
# columns of an earlier forward keeps its buffer).
_QUIET = dict(invalid="ignore", over="ignore")
_POOL_LIMIT = 1 << 28  # at most 256 MiB kept for reuse, per thread
_TLS = threading.local()  # one pool per thread: a buffer is never shared between threads


def _workspace(tag, shape, dtype, zero: bool = False) -> np.ndarray:
    """An array of ``shape``: a pooled one that nothing else refers to any more, else new.

    Also used for results handed to the caller: a result is recycled only after every tensor,
    graph node and view that held it has released it (its reference count says so)."""
    pool = getattr(_TLS, "pool", None)
    if pool is None or len(pool) > 64:
        pool = _TLS.pool = {}
        _TLS.nbytes = 0
    key = (tag, shape, dtype)
    bufs = pool.get(key)
    if bufs is None:
        bufs = pool[key] = []
    for a in bufs:
        if sys.getrefcount(a) <= 3:  # the pool's list, this loop and getrefcount's argument
            return a
    a = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
    if len(bufs) < 4 and _TLS.nbytes + a.nbytes <= _POOL_LIMIT:
        bufs.append(a)
        _TLS.nbytes += a.nbytes
    return a


def _new(shape, dtype, tag="out") -> np.ndarray:
    """An uninitialised result array (pooled when large: see :func:`_workspace`)."""
    if math.prod(shape) < 32768:
        return np.empty(shape, dtype)
    return _workspace(tag, shape, dtype)


def _wide_cols(x, p: _Plan) -> np.ndarray:
    """Columns (K, M) of x (N, C, *S) under plan ``p`` (one padded copy + one unfold copy)."""
    # one buffer per plan and dtype, zeroed when created: only the interior is ever written,
    # so the padding and the tail stay zero across reuses
    buf = _workspace(p, (p.total,), x.dtype, zero=True)
    buf[:p.size].reshape(p.cn_shape)[p.inner] = x.transpose(p.swap)
    k = native.kernel("gather")
    if k is not None and x.dtype in BLAS_FLOATS:  # the unfold as one compiled strided copy
        cols = np.empty((p.k, p.m), x.dtype) if p.small else \
            _workspace("cols", (p.k, p.m), x.dtype)
        k(cols, buf, *p.grid, 0)
        return cols
    if p.small:
        return _strided(buf, p.cshape, p.cstrides).reshape(p.k, p.m)
    cols = _workspace("cols", (p.k, p.m), x.dtype)
    np.copyto(cols.reshape(p.cshape), _strided(buf, p.cshape, p.cstrides))
    return cols


def _wide_grad(g, p: _Plan) -> np.ndarray:
    """g (N, O, *out) as (O, M) on the wide grid, zeros in the extra columns."""
    o = g.shape[1]
    gw = np.empty((o,) + p.wide_shape, g.dtype) if p.small else \
        _workspace("grad", (o,) + p.wide_shape, g.dtype)
    k = native.kernel("swap01")
    if k is not None and p.exact and g.dtype in BLAS_FLOATS and g.flags.c_contiguous:
        k(g, gw, None, p.n, o, p.m // p.n)  # (N, O, S) -> (O, N, S), one compiled pass
        return gw.reshape(o, p.m)
    wo = p.out[-1]
    gw[..., :wo] = g.transpose(p.swap)
    if p.q > wo:
        gw[..., wo:] = 0
    return gw.reshape(o, p.m)


def _wide_output(y, p: _Plan, b, dtype) -> np.ndarray:
    """(O, M) GEMM result -> (N, O, *out) contiguous, bias added in the same pass."""
    o = y.shape[0]
    out = _new((p.n, o) + p.out, dtype)
    k = native.kernel("swap01")
    if (k is not None and p.exact and y.dtype in BLAS_FLOATS and y.flags.c_contiguous
            and out.dtype == y.dtype and (b is None or b.dtype == y.dtype)):
        k(y, out, None if b is None else np.ascontiguousarray(b), o, p.n, p.m // p.n)
        return out
    v = y.reshape((o,) + p.wide_shape)[p.crop].transpose(p.swap)
    if b is None:
        np.copyto(out, v)
    else:
        np.add(v, b.reshape(p.bshape), out=out)
    return out


def _gemm(a, b, tag):
    """``a @ b`` (2-D) into a reused buffer."""
    if a.shape[0] * b.shape[1] < 65536:
        return a @ b
    dtype = np.result_type(a.dtype, b.dtype)
    out = _workspace(tag, (a.shape[0], b.shape[1]), dtype)
    return np.matmul(a, b, out=out)


def _wide_col2im(cg, p: _Plan) -> np.ndarray:
    """Adjoint of :func:`_wide_cols`: cg (K, M) added back into (N, C, *S) (one add/offset)."""
    buf = _workspace("col2im", (p.total,), cg.dtype)
    buf.fill(0)
    k = native.kernel("scatter_add")
    if k is not None and cg.dtype in BLAS_FLOATS and cg.flags.c_contiguous:  # one compiled pass
        k(buf, cg, *p.grid, 0)
    else:
        _col2im_np(buf, cg, p)
    full = buf[:p.n * p.c * p.plane].reshape((p.c, p.n) + p.padded)[p.inner].transpose(p.swap)
    out = _new(full.shape, full.dtype)
    np.copyto(out, full)
    return out


def _col2im_np(buf, cg, p: _Plan) -> None:
    """``buf[columns view] += cg`` in NumPy: one strided add per kernel offset."""
    nk = len(p.offs)
    cgv = cg.reshape((p.c, nk) + p.vshape[1:])
    for j, off in enumerate(p.offs):
        v = _strided(buf, p.vshape, p.vstrides, off)
        np.add(v, cgv[:, j], out=v)


_DIRECT_MAX_TAPS = 32  # input taps (C * kh * kw) up to which conv2d_direct beats the GEMM
_CHAN_MAX_O = 16  # output channels up to which conv2d_chan beats the GEMM (at 32: a tie)


class _Direct(NamedTuple):
    """A convolution run by a direct kernel: its forward and weight-gradient kernels, their
    sizes, and the output shape."""
    forward: str
    wgrad: str
    dims: tuple
    out_shape: tuple


def _direct(x, w, b, stride, pads, dilation, groups, out_size):
    """The direct kernel for a 1-D or 2-D convolution (groups 1) that the unfold + GEMM path
    runs slower, or None: ``conv2d_direct`` for few input taps per output (2-D, stride 1 and
    no dilation; LeNet's first layer: 25 taps), else ``conv2d_chan`` for few output channels
    (LeNet's second layer: 16). Both skip the unfolded columns, whose GEMM is skinny there."""
    if (groups != 1 or x.ndim not in (3, 4) or native.kernel("conv2d_chan") is None
            or x.dtype not in BLAS_FLOATS or w.dtype != x.dtype
            or (b is not None and (b.dtype != x.dtype or not b.flags.c_contiguous))
            or not (x.flags.c_contiguous and w.flags.c_contiguous) or 0 in x.shape):
        return None
    if out_size is None:
        out_size = conv_out_size(x.shape[2:], w.shape[2:], stride, pads, dilation)
    if min(out_size) < 1:
        return None
    o, taps = w.shape[0], w[0].size
    out_shape = x.shape[:1] + (o,) + tuple(out_size)
    if x.ndim == 4 and stride == (1, 1) and dilation == (1, 1) and taps <= _DIRECT_MAX_TAPS:
        dims = x.shape + (o,) + w.shape[2:] + (pads[0][0], pads[1][0]) + tuple(out_size)
        return _Direct("conv2d_direct", "conv2d_direct_wgrad", dims, out_shape)
    if o > _CHAN_MAX_O:
        return None
    if x.ndim == 3:  # 1-D as 2-D with one row
        dims = (x.shape[0], x.shape[1], 1, x.shape[2], o, 1, w.shape[2], 1, stride[0], 0,
                pads[0][0], 1, dilation[0], 1, out_size[0])
    else:
        dims = x.shape + (o,) + w.shape[2:] + tuple(stride) + (pads[0][0], pads[1][0]) + \
            tuple(dilation) + tuple(out_size)
    return _Direct("conv2d_chan", "conv2d_chan_wgrad", dims, out_shape)


_DIRECT_MAX_MACS = 1 << 21  # above this the unfold + GEMM path is faster (measured)


def _small_direct(x, w, b, stride, pads, dilation, out_size):
    """A small no-grad convolution (a batch-1 inference) by the compiled direct kernel, which
    skips the unfold, GEMM and transpose calls whose fixed costs dominate there; else None."""
    k = native.kernel("conv2d_small")
    if (k is None or x.dtype not in BLAS_FLOATS or w.dtype != x.dtype
            or (b is not None and b.dtype != x.dtype) or not x.flags.c_contiguous
            or not w.flags.c_contiguous):
        return None
    key = (x.shape, w.shape, stride, pads, dilation, out_size)
    plan = _DIRECT_PLANS.get(key, False)
    if plan is False:
        plan = _direct_plan(x.shape, w.shape, stride, pads, dilation, out_size)
        if len(_DIRECT_PLANS) >= 256:
            _DIRECT_PLANS.clear()
        _DIRECT_PLANS[key] = plan
    if plan is None:
        return None
    out = np.empty(plan[1], x.dtype)
    k(x, w, b if b is None or b.flags.c_contiguous else np.ascontiguousarray(b), out, plan[0])
    return out


_DIRECT_PLANS: dict = {}  # the arguments of _small_direct -> _direct_plan's answer


def _direct_plan(xs, ws, stride, pads, dilation, out_size):
    """(the kernel's 15 sizes, the output shape) of a convolution ``conv2d_small`` should run,
    or None when it should not (too large, or too few taps per output)."""
    if out_size is None:
        out_size = conv_out_size(xs[2:], ws[2:], stride, pads, dilation)
    n, o = xs[0], ws[0]
    if min(out_size) < 1 or 0 in xs or 0 in ws or o > 512:
        return None
    if n * math.prod(out_size) * math.prod(ws[1:]) * o > _DIRECT_MAX_MACS:
        return None
    if len(xs) == 4 and math.prod(ws[1:]) < 64:  # few taps per output (LeNet's first layer)
        return None
    if len(xs) == 3:  # 1-D as 2-D with one row
        dims = (n, xs[1], 1, xs[2], o, 1, ws[2], 1, stride[0], 0, pads[0][0],
                1, dilation[0], 1, out_size[0])
    else:
        dims = (n, xs[1]) + xs[2:] + (o,) + ws[2:] + tuple(stride) + (
            pads[0][0], pads[1][0]) + tuple(dilation) + tuple(out_size)
    return dims, (n, o) + tuple(out_size)
