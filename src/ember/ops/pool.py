"""Pooling and resizing primitives: window max/argmax, window sums, adaptive pools, resampling.

Matches: the math of ``torch.nn.functional`` ``max_pool*d``, ``avg_pool*d``,
``adaptive_{avg,max}_pool*d``, ``max_unpool*d`` and ``interpolate`` (argument parsing lives in
:mod:`ember.nn.functional.pooling`).

Design (any number of spatial dims, no loops over pixels, channels or batch elements):

- *non-overlapping max pooling* (stride == kernel, no padding, e.g. ``MaxPool2d(2)``) has its own
  primitives (:class:`BlockMaxPool`, see "block max pool" below): a chain of ``np.maximum``
  over the window-offset views and one-hot argmax masks, no index arrays;
- *max pooling* first finds, on arrays, the argmax of every window as a flat per-plane index into
  the unpadded input (PyTorch's ``return_indices`` convention; ties pick the first element in
  row-major window order, NaN wins), by one fancy-indexed gather of all windows. The values are
  then :func:`gather_plane` of the input at those indices, whose gradient :func:`scatter_plane`
  adds the upstream gradient back (and vice versa), so max pooling is differentiable twice.
- *average pooling* is a window sum (one slice-add per kernel offset) divided by PyTorch's
  divisor, which factorizes over the spatial dims; the window sum's adjoint is the transposed
  window sum.
- *adaptive average pooling* and *linear/bilinear interpolation* are separable linear maps: one
  small constant matrix per spatial dim applied with :func:`ember.ops.matmul` (so gradients of
  every order come for free); *nearest* interpolation is an :func:`index_select` per dim.
"""

from __future__ import annotations

import math

import numpy as np

from . import native
from .arrays import BLAS_FLOATS
from .base import NULL_CTX, Primitive, call, shape_of
from .conv import _offset_slices, _pad_array
from .conv_plans import _new

__all__ = ["gather_plane", "scatter_plane", "max_pool_nd", "adaptive_max_pool_nd",
           "pool_out_size", "avg_pool_nd", "adaptive_avg_pool_nd", "interpolate_linear_nd",
           "interpolate_nearest_nd"]


# ---------------------------------------------------------------------------- gather / scatter
class GatherPlane(Primitive):
    """``out[n, c, j] = x[n, c].flat[idx[n, c, j]]`` for x (N, C, *S), idx (N, C, *So)."""

    @staticmethod
    def forward(ctx, x, *, idx, unique=False):
        n, c = x.shape[:2]
        out = np.take_along_axis(x.reshape(n, c, -1), idx.reshape(n, c, -1), axis=2)
        if ctx is not NULL_CTX:
            ctx.in_size = x.shape[2:]
            ctx.idx, ctx.unique = idx, unique
        return out.reshape(idx.shape)

    @staticmethod
    def backward(ctx, g):
        return scatter_plane(g, ctx.idx, ctx.in_size, ctx.unique)


class ScatterPlane(Primitive):
    """Adjoint of :class:`GatherPlane`: zeros (N, C, *size) with g added at the flat indices."""

    @staticmethod
    def forward(ctx, g, *, idx, size, unique=False):
        n, c = g.shape[:2]
        plane = math.prod(size)
        if unique:
            out = np.zeros((n, c, plane), g.dtype)
            np.put_along_axis(out, idx.reshape(n, c, -1), g.reshape(n, c, -1), axis=2)
        else:
            flat = idx.reshape(n * c, -1) + (np.arange(n * c) * plane)[:, None]
            out = np.bincount(flat.ravel(), weights=g.ravel(), minlength=n * c * plane)
            out = out.astype(g.dtype, copy=False)
        if ctx is not NULL_CTX:
            ctx.idx, ctx.unique = idx, unique
        return out.reshape((n, c) + tuple(size))

    @staticmethod
    def backward(ctx, gg):
        return gather_plane(gg, ctx.idx, ctx.unique)


def gather_plane(input, idx, unique: bool = False):
    """Values of ``input`` (N, C, *S) at flat per-plane indices ``idx`` (N, C, *So)."""
    return call(GatherPlane, input, idx=idx, unique=unique)


def scatter_plane(input, idx, size, unique: bool = False):
    """Zeros (N, C, *size) with ``input`` (N, C, *So) added at the flat per-plane ``idx``.

    ``unique=True`` promises that no index repeats within a plane (a faster assignment)."""
    return call(ScatterPlane, input, idx=idx, size=tuple(int(s) for s in size), unique=unique)


# ---------------------------------------------------------------------------- window argmax
def _lowest(dtype):
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _window_argmax(x: np.ndarray, positions, pad_lo, in_size) -> np.ndarray:
    """Flat per-plane argmax indices of windows given per-axis positions (out_j, k_j).

    ``positions[j]`` are coordinates in the input padded by ``pad_lo[j]`` (padding holds the
    lowest value, so it never wins unless a whole window is padding, which PyTorch forbids).
    """
    nd = len(positions)
    grids = []
    for j, pos in enumerate(positions):
        shape = [1] * (2 * nd)
        shape[j] = pos.shape[0]
        shape[nd + j] = pos.shape[1]
        grids.append(pos.reshape(shape))
    win = x[(slice(None), slice(None)) + tuple(grids)]
    out_size = tuple(p.shape[0] for p in positions)
    ksize = tuple(p.shape[1] for p in positions)
    win = win.reshape(x.shape[:2] + out_size + (-1,))
    # running max over the kernel offsets (a loop over offsets, not pixels): ties keep the
    # first index; NaN always replaces the running max (PyTorch's `val > max || isnan(val)`)
    best = win[..., 0].copy()
    local = np.zeros(best.shape, np.int64)
    isf = win.dtype.kind == "f"
    for k in range(1, win.shape[-1]):
        v = win[..., k]
        take = v > best
        if isf:
            take |= np.isnan(v)
        np.copyto(best, v, where=take)
        local[take] = k
    offs = np.unravel_index(local, ksize)
    flat = None
    for j in range(nd):
        # position (unpadded) of the winning element along axis j, per output location
        shape = [1] * nd
        shape[j] = out_size[j]
        coord = (positions[j] - pad_lo[j])[np.arange(out_size[j]).reshape(shape), offs[j]]
        flat = coord if flat is None else flat * in_size[j] + coord
    return flat.astype(np.int64, copy=False)


# ---------------------------------------------------------------------------- block max pool
# Fast path for non-overlapping windows (stride == kernel, no padding or dilation, every window
# inside the input): the windows are a strided view (N, C, o1, k1, o2, k2, ...) of the input, the
# max is a chain of np.maximum over the k1*k2*... offset views, and the argmax is kept as one
# boolean one-hot mask per kernel offset (the first maximum in row-major window order wins, as
# in PyTorch; a NaN window takes its last NaN, also like PyTorch). The gradient is one masked
# multiply per offset written straight into the input-gradient view.
def _block_windows(x: np.ndarray, ksize, out_size) -> list:
    """Views (N, C, *out) of ``x`` (N, C, *S), one per kernel offset (row-major order)."""
    shape, strides = x.shape[:2], x.strides[:2]
    for o, k, st in zip(out_size, ksize, x.strides[2:]):
        shape += (o, k)
        strides += (st * k, st)
    if x.flags.c_contiguous and all(o * k == s for o, k, s in zip(out_size, ksize, x.shape[2:])):
        w = x.reshape(shape)
    else:
        w = np.lib.stride_tricks.as_strided(x, shape, strides)
    nd = len(ksize)
    if nd == 2:
        return [w[:, :, :, a, :, b] for a in range(ksize[0]) for b in range(ksize[1])]
    full = (slice(None),) * 2
    return [w[full + tuple(i for a in off for i in (slice(None), a))]
            for off in np.ndindex(*ksize)]


def _block_max(views) -> np.ndarray:
    if len(views) == 1:
        return views[0].copy()
    out = np.maximum(views[0], views[1], out=_new(views[0].shape, views[0].dtype))
    for v in views[2:]:
        np.maximum(out, v, out=out)
    return out


def _block_masks(views, out) -> list:
    """One-hot masks (one bool array per offset) of each window's argmax."""
    if out.dtype.kind in "fc" and np.isnan(out).any():
        # PyTorch's running scan (`val > max || isnan(val)`): the last NaN of a window wins
        best = views[0].copy()
        local = np.zeros(out.shape, np.int64)
        for k in range(1, len(views)):
            take = views[k] > best
            take |= np.isnan(views[k])
            np.copyto(best, views[k], where=take)
            local[take] = k
        return [local == k for k in range(len(views))]
    masks = []
    taken = None
    for k, v in enumerate(views):
        if k == len(views) - 1 and taken is not None:
            masks.append(~taken)
            break
        e = np.equal(v, out)
        if taken is None:
            taken = e.copy()
        else:
            e &= ~taken
            taken |= e
        masks.append(e)
    return masks


def _block_indices(masks, ksize, out_size, in_size) -> np.ndarray:
    """PyTorch's flat per-plane indices from the one-hot masks."""
    local = np.zeros(masks[0].shape, np.int64)
    for k, m in enumerate(masks[1:], 1):
        local[m] = k
    offs = np.unravel_index(local, ksize)
    nd = len(ksize)
    flat = None
    for j in range(nd):
        shape = [1] * nd
        shape[j] = out_size[j]
        coord = np.arange(out_size[j]).reshape(shape) * ksize[j] + offs[j]
        flat = coord if flat is None else flat * in_size[j] + coord
    return flat


class _ArgmaxMasks:
    """The one-hot argmax masks of a block max pool, made on demand from the compiled kernel's
    argmax (each window's row-major offset, uint8): only double backward needs the masks."""

    __slots__ = ("local", "n")

    def __init__(self, local: np.ndarray, n: int):
        self.local, self.n = local, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, k: int) -> np.ndarray:
        if not -self.n <= k < self.n:
            raise IndexError(k)
        return self.local == k % self.n

    def __iter__(self):
        return (self.local == k for k in range(self.n))


def _plane_dims(shape, ksize, out_size):
    """(planes, H, W, kh, kw, Ho, Wo) of a 1-D or 2-D block pool for the compiled kernels."""
    if len(ksize) == 1:
        return (shape[0] * shape[1], 1, shape[2], 1, ksize[0], 1, out_size[0])
    return (shape[0] * shape[1],) + tuple(shape[2:]) + tuple(ksize) + tuple(out_size)


def _native_block_max(x, ksize, out_size):
    """(out, argmax masks) from the compiled kernel, or None where it does not apply."""
    k = native.kernel("maxpool_fwd")
    if (k is None or x.dtype not in BLAS_FLOATS or not x.flags.c_contiguous or len(ksize) > 2
            or math.prod(ksize) > 256):
        return None
    shape = x.shape[:2] + tuple(out_size)
    out, local = _new(shape, x.dtype), np.empty(shape, np.uint8)
    k(x, out, local, *_plane_dims(x.shape, ksize, out_size))
    return out, _ArgmaxMasks(local, math.prod(ksize))


def _block_scatter(g, masks, ksize, in_shape) -> np.ndarray:
    k = native.kernel("maxpool_bwd")
    if (k is not None and isinstance(masks, _ArgmaxMasks) and type(g) is np.ndarray
            and g.dtype in BLAS_FLOATS and g.shape == masks.local.shape):
        gx = _new(in_shape, g.dtype)  # the kernel writes every element
        k(np.ascontiguousarray(g), masks.local, gx, *_plane_dims(in_shape, ksize, g.shape[2:]))
        return gx
    out_size = g.shape[2:]
    exact = all(o * k == s for o, k, s in zip(out_size, ksize, in_shape[2:]))
    finite = g.dtype.kind not in "fc" or bool(np.isfinite(g).all())
    if exact and finite:
        gx = _new(in_shape, g.dtype)
    else:
        gx = np.zeros(in_shape, g.dtype)
    for v, m in zip(_block_windows(gx, ksize, out_size), masks):
        if finite:
            np.multiply(g, m, out=v)
        else:  # inf * 0 would be NaN: copy only where the mask is set
            np.copyto(v, g, where=m)
    return gx


class BlockMaxPool(Primitive):
    """Max over non-overlapping windows (stride == kernel) of x (N, C, *S)."""

    @staticmethod
    def forward(ctx, x, *, ksize, out_size):
        fused = _native_block_max(x, ksize, out_size)
        if fused is not None:  # one compiled pass, keeping each window's argmax
            out, masks = fused
        else:
            views = _block_windows(x, ksize, out_size)
            out = _block_max(views)
            masks = _block_masks(views, out) if ctx is not NULL_CTX else None
        if ctx is not NULL_CTX:
            ctx.masks = masks
            ctx.attrs = (ksize, x.shape)
        return out

    @staticmethod
    def backward(ctx, g):
        ksize, in_shape = ctx.attrs
        return call(BlockScatter, g, masks=ctx.masks, ksize=ksize, in_shape=in_shape)


class BlockScatter(Primitive):
    """Gradient of :class:`BlockMaxPool`: g (N, C, *out) placed at each window's argmax."""

    @staticmethod
    def forward(ctx, g, *, masks, ksize, in_shape):
        if ctx is not NULL_CTX:
            ctx.masks, ctx.ksize = masks, ksize
        return _block_scatter(g, masks, ksize, in_shape)

    @staticmethod
    def backward(ctx, gg):
        return call(BlockGather, gg, masks=ctx.masks, ksize=ctx.ksize)


class BlockGather(Primitive):
    """Each window's value at its argmax (the adjoint of :class:`BlockScatter`)."""

    @staticmethod
    def forward(ctx, x, *, masks, ksize):
        views = _block_windows(x, ksize, masks[0].shape[2:])
        out = np.zeros(masks[0].shape, x.dtype)
        for v, m in zip(views, masks):
            np.copyto(out, v, where=m)
        if ctx is not NULL_CTX:
            ctx.masks, ctx.ksize, ctx.in_shape = masks, ksize, x.shape
        return out

    @staticmethod
    def backward(ctx, g):
        return call(BlockScatter, g, masks=ctx.masks, ksize=ctx.ksize, in_shape=ctx.in_shape)


def pool_out_size(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output length (ceil mode drops a window that starts in the padding)."""
    eff = size + 2 * p - d * (k - 1) - 1
    out = (-(-eff // s) if ceil_mode else eff // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def max_pool_nd(input, ksize, stride, padding, dilation, ceil_mode: bool, op: str = "max_pool",
                return_indices: bool = True):
    """Max pooling over the trailing dims of ``input`` (N, C, *S): (values, int64 indices).

    Indices are flat per-plane positions in the unpadded input (``h * W + w`` in 2-D); with
    ``return_indices=False`` the second result is None (and the fast path skips them)."""
    shape = tuple(shape_of(input))
    spatial = shape[2:]
    out_size = tuple(pool_out_size(n, k, s, p, d, ceil_mode)
                     for n, k, s, p, d in zip(spatial, ksize, stride, padding, dilation))
    if any(o < 1 for o in out_size):
        raise RuntimeError(f"{op}: output size {out_size} is too small for input {shape} "
                           f"(kernel {tuple(ksize)}, stride {tuple(stride)}, padding "
                           f"{tuple(padding)}, dilation {tuple(dilation)})")
    x = input._data if hasattr(input, "_data") else np.asarray(input)
    ksize = tuple(ksize)
    if tuple(stride) == ksize and not any(padding) and all(d == 1 for d in dilation) and \
            all(o == n // k for o, n, k in zip(out_size, spatial, ksize)):
        if not return_indices:
            return call(BlockMaxPool, input, ksize=ksize, out_size=out_size), None
        views = _block_windows(x, ksize, out_size)
        masks = _block_masks(views, _block_max(views))
        idx = _block_indices(masks, ksize, out_size, spatial)
        return call(BlockGather, input, masks=masks, ksize=ksize), idx
    pads, positions = [], []
    for n, o, k, s, p, d in zip(spatial, out_size, ksize, stride, padding, dilation):
        hi = max(p, (o - 1) * s + d * (k - 1) + 1 - n - p)
        pads.append((p, hi))
        positions.append(np.arange(o)[:, None] * s + np.arange(k)[None, :] * d)
    xp = _pad_array(x, pads, _lowest(x.dtype))
    idx = _window_argmax(xp, positions, [p for p, _ in pads], spatial)
    unique = all(s >= d * (k - 1) + 1 for k, s, d in zip(ksize, stride, dilation))
    return gather_plane(input, idx, unique), idx


def _adaptive_bounds(n: int, o: int):
    i = np.arange(o)
    return (i * n) // o, -((-(i + 1) * n) // o)


def adaptive_max_pool_nd(input, out_size):
    """Adaptive max pooling of (N, C, *S) to (N, C, *out_size): (values, int64 indices).

    Window i spans ``[floor(i*S/out), ceil((i+1)*S/out))`` like PyTorch."""
    shape = tuple(shape_of(input))
    x = input._data if hasattr(input, "_data") else np.asarray(input)
    positions = []
    for n, o in zip(shape[2:], out_size):
        start, end = _adaptive_bounds(n, o)
        kmax = int((end - start).max())
        # clamp to the window's last element: repeats never change the (first) argmax
        positions.append(np.minimum(start[:, None] + np.arange(kmax)[None, :], end[:, None] - 1))
    idx = _window_argmax(x, positions, [0] * len(positions), shape[2:])
    return gather_plane(input, idx, False), idx


# ---------------------------------------------------------------------------- window sums
class WindowSum(Primitive):
    """Sum of every window of the zero-padded input (one slice-add per kernel offset)."""

    @staticmethod
    def forward(ctx, x, *, ksize, stride, pads, out_size):
        xp = _pad_array(x, pads)
        lead = (slice(None), slice(None))
        out = None
        for off in np.ndindex(*ksize):
            part = xp[lead + _offset_slices(off, (1,) * len(ksize), stride, out_size)]
            out = part.copy() if out is None else np.add(out, part, out=out)
        if ctx is not NULL_CTX:
            ctx.attrs = (ksize, stride, pads, x.shape[2:])
        return out

    @staticmethod
    def backward(ctx, g):
        ksize, stride, pads, in_size = ctx.attrs
        return call(WindowSumT, g, ksize=ksize, stride=stride, pads=pads, in_size=in_size)


class WindowSumT(Primitive):
    """Adjoint of :class:`WindowSum`: every output value added back over its window."""

    @staticmethod
    def forward(ctx, g, *, ksize, stride, pads, in_size):
        out_size = g.shape[2:]
        padded = tuple(s + lo + hi for s, (lo, hi) in zip(in_size, pads))
        xp = np.zeros(g.shape[:2] + padded, g.dtype)
        lead = (slice(None), slice(None))
        for off in np.ndindex(*ksize):
            xp[lead + _offset_slices(off, (1,) * len(ksize), stride, out_size)] += g
        if ctx is not NULL_CTX:
            ctx.attrs = (ksize, stride, pads, out_size)
        crop = tuple(slice(lo, lo + s) for s, (lo, _) in zip(in_size, pads))
        return np.ascontiguousarray(xp[lead + crop])

    @staticmethod
    def backward(ctx, gg):
        ksize, stride, pads, out_size = ctx.attrs
        return call(WindowSum, gg, ksize=ksize, stride=stride, pads=pads, out_size=out_size)


def avg_pool_nd(input, ksize, stride, padding, ceil_mode: bool, count_include_pad: bool,
                divisor_override=None, op: str = "avg_pool"):
    """Average pooling of (N, C, *S) with PyTorch's divisor rules (per-dim factorized)."""
    from .binary import div

    shape = tuple(shape_of(input))
    spatial = shape[2:]
    nd = len(spatial)
    out_size = tuple(pool_out_size(n, k, s, p, 1, ceil_mode)
                     for n, k, s, p in zip(spatial, ksize, stride, padding))
    if any(o < 1 for o in out_size):
        raise RuntimeError(f"{op}: output size {out_size} is too small for input {shape} "
                           f"(kernel {tuple(ksize)}, stride {tuple(stride)}, padding "
                           f"{tuple(padding)})")
    pads = []
    divisor = np.ones((1,) * nd, np.float64)
    for j, (n, o, k, s, p) in enumerate(zip(spatial, out_size, ksize, stride, padding)):
        pads.append((p, max(p, (o - 1) * s + k - n - p)))
        start = np.arange(o) * s - p
        end = np.minimum(start + k, n + p)
        size = end - start if count_include_pad else \
            np.minimum(end, n) - np.maximum(start, 0)
        shape_j = [1] * nd
        shape_j[j] = o
        divisor = divisor * size.reshape(shape_j)
    total = call(WindowSum, input, ksize=tuple(ksize), stride=tuple(stride), pads=tuple(pads),
                 out_size=out_size)
    dtype = total.dtype if not hasattr(total, "_data") else total._data.dtype
    if divisor_override:
        return div(total, np.asarray(divisor_override, dtype))
    return div(total, divisor.astype(dtype))


# ---------------------------------------------------------------------------- separable maps
def _apply_separable(input, mats):
    """Apply ``mats[j]`` (out_j, in_j) along spatial dim j of (N, C, *S) with matmul."""
    from .linalg import matmul
    from .movement import transpose

    nd = len(mats)
    dtype = input._data.dtype if hasattr(input, "_data") else np.asarray(input).dtype
    x = input
    for j, m in enumerate(mats):
        if m is None:
            continue
        m = m.astype(dtype)
        axis = 2 + j
        if j == nd - 1:
            x = matmul(x, np.ascontiguousarray(m.T))
        elif j == nd - 2:
            x = matmul(m, x)
        else:
            x = transpose(matmul(transpose(x, axis, -1), np.ascontiguousarray(m.T)), axis, -1)
    return x


def _adaptive_matrix(n: int, o: int) -> np.ndarray:
    start, end = _adaptive_bounds(n, o)
    j = np.arange(n)
    mask = (j >= start[:, None]) & (j < end[:, None])
    return mask / (end - start)[:, None]


def adaptive_avg_pool_nd(input, out_size):
    """Adaptive average pooling of (N, C, *S) to (N, C, *out_size) (PyTorch's windows)."""
    spatial = tuple(shape_of(input))[2:]
    mats = [None if o == n else _adaptive_matrix(n, o) for n, o in zip(spatial, out_size)]
    return _apply_separable(input, mats)


def _linear_matrix(n: int, o: int, align_corners: bool, scale) -> np.ndarray:
    i = np.arange(o, dtype=np.float64)
    if align_corners:
        src = i * ((n - 1) / (o - 1) if o > 1 else 0.0)
    else:
        r = 1.0 / scale if scale is not None and scale > 0 else n / o
        src = np.maximum((i + 0.5) * r - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    lam = src - i0
    j = np.arange(n)
    return (j == i0[:, None]) * (1.0 - lam)[:, None] + (j == i1[:, None]) * lam[:, None]


def interpolate_linear_nd(input, out_size, align_corners: bool, scales):
    """(Bi/tri)linear resampling of (N, C, *S) to (N, C, *out_size), PyTorch's source indices.

    ``scales``: per-dim user scale factors (or None), used as ``1/scale`` in the source-index
    formula when ``align_corners`` is False (PyTorch's behaviour)."""
    spatial = tuple(shape_of(input))[2:]
    mats = [_linear_matrix(n, o, align_corners, s) for n, o, s in zip(spatial, out_size, scales)]
    return _apply_separable(input, mats)


def interpolate_nearest_nd(input, out_size, scales, exact: bool = False):
    """Nearest resampling (``'nearest'`` or ``'nearest-exact'``) with PyTorch's float32 indices."""
    from .indexing import index_select

    x = input
    spatial = tuple(shape_of(input))[2:]
    for j, (n, o, s) in enumerate(zip(spatial, out_size, scales)):
        if n == o and not exact:
            continue
        r = np.float32(1.0 / s) if s is not None and s > 0 else np.float32(n) / np.float32(o)
        dst = np.arange(o, dtype=np.float32)
        if exact:
            src = np.floor((dst + np.float32(0.5)) * r)
        elif o == 2 * n and s is None:
            src = np.arange(o) // 2
        else:
            src = np.floor(dst * r)
        idx = np.minimum(np.asarray(src).astype(np.int64), n - 1)
        x = index_select(x, 2 + j, idx)
    return x
