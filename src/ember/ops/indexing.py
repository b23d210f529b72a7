"""Indexing: basic and advanced ``x[key]``, index_put, gather/scatter, index_select/index_add,
masks, take, one_hot, nonzero.

Matches: ``torch.Tensor.__getitem__`` / ``__setitem__`` and the ``torch`` functions of the same
names (``one_hot`` is ``torch.nn.functional.one_hot``).

How ``x[key]`` is computed. PyTorch applies the *basic* parts of a key first (ints select,
slices slice, None inserts a dim, ``...`` fills in) and then the *advanced* parts (integer and
boolean tensors) on the result; NumPy instead counts ints as advanced indices when arrays are
present, which can move dims (``x[:, idx, :, 1]``). So :func:`getitem` splits a key into a basic
step (a view, :class:`GetItem`) and an advanced step (a copy, :class:`Index`) whose NumPy meaning
equals PyTorch's. Negative slice steps are allowed (NumPy's meaning; PyTorch refuses them).

Backward of a gather-like op scatters the gradient back with *addition*, so indices that repeat
accumulate their gradients (``x[[0, 0]]`` sends twice the gradient to ``x[0]``). Every backward is
written with primitives of this module, so it is itself differentiable (double backward).
"""

from __future__ import annotations

import math
import operator

import numpy as np

from . import native
from .arrays import BLAS_FLOATS
from .base import Primitive, TensorBase, call, normalize_dim, shape_of

__all__ = [
    "embedding_lookup",
    "getitem", "index_put", "gather", "scatter", "scatter_add", "index_select", "index_add",
    "masked_fill", "masked_select", "take_along_dim", "take", "one_hot", "nonzero", "argwhere",
    "index_mask", "diagonal_mask", "diagonal_embed_like", "index_put_add_zeros",
]


class IndexOutOfRangeError(IndexError, RuntimeError):
    """An index outside its dimension: both an IndexError and (like PyTorch's) a RuntimeError."""


def _error(cls, msg: str):
    """An exception marked as already carrying a complete message (not re-wrapped by Tensor)."""
    e = cls(msg)
    e.ember = True
    return e


# ============================================================================ key parsing
def _to_index_value(v):
    """A list element of an index: tensors become arrays, nested lists stay lists."""
    if isinstance(v, TensorBase):
        return v._data
    if isinstance(v, (list, tuple)):
        return [_to_index_value(u) for u in v]
    return v


def _slice_bound(b):
    return None if b is None else operator.index(b)


def _key_part(k, op: str):
    """One element of a key, with tensors and lists turned into NumPy arrays."""
    if isinstance(k, TensorBase):
        k = k._data
    elif isinstance(k, (list, tuple)):
        k = np.asarray(_to_index_value(k))
        if k.size == 0:
            k = k.astype(np.int64)
        if k.dtype == object:
            raise _error(IndexError, f"{op}: an index list may only hold integers or booleans")
    if isinstance(k, (bool, np.bool_)):
        return np.asarray(k)
    if isinstance(k, np.ndarray):
        if k.dtype.kind in "iu" and k.ndim == 0:
            return int(k)  # a 0-d integer tensor indexes like an int (as in PyTorch)
        if k.dtype.kind not in "iub":
            raise _error(IndexError, f"{op}: tensors used as indices must be integer or bool "
                                     f"tensors, got dtype {k.dtype}")
        return k
    if isinstance(k, (int, np.integer)):
        return int(k)
    if isinstance(k, slice):
        return slice(_slice_bound(k.start), _slice_bound(k.stop), _slice_bound(k.step))
    if k is None or k is Ellipsis:
        return k
    raise _error(IndexError, f"{op}: unsupported index of type {type(k).__name__}; use ints, "
                             f"slices, None, ..., or integer / bool tensors")


def _is_full_slice(k) -> bool:
    return isinstance(k, slice) and k.start is None and k.stop is None and k.step is None


class _ParsedKey:
    """A key split PyTorch's way: ``x[key] == x[basic][adv]`` in NumPy terms.

    ``basic`` holds only ints, slices and None (no ellipsis); ``adv`` (None when there are no
    tensor indices) holds full slices and integer/bool arrays positioned on the dims of
    ``x[basic]``. ``single`` is one NumPy key with the same meaning as the pair, or None when
    NumPy would read the key differently (ints mixed with arrays).
    """

    __slots__ = ("basic", "adv", "single")


def _parse_key(key, shape: tuple, op: str) -> _ParsedKey:
    parts = key if isinstance(key, tuple) else (key,)
    parts = [_key_part(k, op) for k in parts]
    ndim = len(shape)
    consumed, ellipses = 0, 0
    for k in parts:
        if k is Ellipsis:
            ellipses += 1
        elif isinstance(k, np.ndarray):
            consumed += k.ndim if k.dtype == bool else 1
        elif k is not None:
            consumed += 1
    if ellipses > 1:
        raise _error(IndexError, f"{op}: an index can only have a single ellipsis ('...')")
    if consumed > ndim:
        raise _error(IndexError, f"{op}: too many indices for a tensor of dimension {ndim} "
                                 f"(got {consumed}) of shape {shape}")
    items = []
    for k in parts:
        if k is Ellipsis:
            items.extend([slice(None)] * (ndim - consumed))
        else:
            items.append(k)
    if not ellipses:
        items.extend([slice(None)] * (ndim - consumed))

    basic, single, adv = [], [], []  # adv: (position in x[basic], array)
    d = o = 0  # dim of x consumed so far, dim of x[basic] produced so far
    has_int = mixed = False
    for k in items:
        if k is None:
            basic.append(None)
            single.append(None)
            o += 1
        elif isinstance(k, int):
            n = shape[d]
            if not -n <= k < n:
                raise _error(IndexError, f"{op}: index {k} is out of bounds for dim {d} with "
                                         f"size {n}")
            basic.append(k)
            single.append(k)
            has_int = True
            d += 1
        elif isinstance(k, slice):
            basic.append(k)
            single.append(k)
            d += 1
            o += 1
        elif k.dtype == bool:
            if k.ndim == 0:  # x[True] adds a dim of size 1, x[False] one of size 0
                basic.append(None)
                adv.append((o, np.zeros(int(bool(k)), dtype=np.int64)))
                mixed = True
                o += 1
                continue
            if k.shape != shape[d:d + k.ndim]:
                raise _error(IndexError, f"{op}: the shape of the mask {k.shape} at index {d} "
                                         f"does not match the shape of the indexed tensor "
                                         f"{shape} (dims {d} to {d + k.ndim - 1}: "
                                         f"{shape[d:d + k.ndim]})")
            basic.extend([slice(None)] * k.ndim)
            single.append(k)
            adv.append((o, k))
            d += k.ndim
            o += k.ndim
        else:
            n = shape[d]
            if k.size:
                lo, hi = int(k.min()), int(k.max())
                if lo < -n or hi >= n:
                    bad = lo if lo < -n else hi
                    raise _error(IndexError, f"{op}: index {bad} is out of bounds for dim {d} "
                                             f"with size {n}")
            basic.append(slice(None))
            single.append(k)
            adv.append((o, k))
            d += 1
            o += 1

    pk = _ParsedKey()
    if not adv:
        pk.basic, pk.adv, pk.single = tuple(basic), None, tuple(single)
        return pk
    shapes = [(int(np.count_nonzero(a)),) if a.dtype == bool else a.shape for _, a in adv]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise _error(IndexError, f"{op}: shape mismatch: indexing tensors could not be broadcast "
                                 f"together with shapes {', '.join(map(str, shapes))}") from None
    at = dict(adv)
    last = max(p + (a.ndim if a.dtype == bool else 1) for p, a in adv)
    adv_key, p = [], 0
    while p < last:
        a = at.get(p)
        if a is None:
            adv_key.append(slice(None))
            p += 1
        else:
            adv_key.append(a)
            p += a.ndim if a.dtype == bool else 1
    pk.adv = tuple(adv_key)
    pk.basic = None if all(_is_full_slice(k) for k in basic) else tuple(basic)
    pk.single = None if (has_int or mixed) else tuple(single)
    return pk


def normalize_key(key, shape, op: str = "getitem"):
    """One NumPy key meaning what PyTorch's ``x[key]`` means for an ``x`` of ``shape``.

    Tensors become arrays, out-of-range ints raise clear errors. When ints are mixed with index
    tensors (where NumPy and PyTorch disagree), the key is expanded into one integer array per
    dim, which NumPy reads the PyTorch way.
    """
    shape = tuple(shape)
    pk = _parse_key(key, shape, op)
    if pk.single is not None:
        return pk.single
    flat = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    sel = flat[pk.basic] if pk.basic is not None else flat
    return np.unravel_index(sel[pk.adv], shape)


def _has_arrays(key) -> bool:
    parts = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, np.ndarray) for k in parts)


def _unique_targets(key) -> bool:
    """Whether ``key`` addresses every element at most once (no integer arrays)."""
    parts = key if isinstance(key, tuple) else (key,)
    return not any(isinstance(k, np.ndarray) and k.dtype != bool for k in parts)


def _view_key(key) -> tuple:
    """A basic key that returns a 0-d view (not a scalar) when every dim gets an int."""
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        return key
    return key + (Ellipsis,)


# ============================================================================ getitem
class GetItem(Primitive):
    """``x[key]`` for a basic key (ints, slices, None): a view of ``x``."""

    view = True

    @staticmethod
    def forward(ctx, x, key):
        ctx.shape = x.shape
        ctx.key = key
        return x[_view_key(key)]

    @staticmethod
    def backward(ctx, g):
        return call(IndexAddZeros, g, key=ctx.key, shape=ctx.shape)


class Index(Primitive):
    """``x[key]`` for a NumPy advanced key (integer / bool arrays): a copy."""

    @staticmethod
    def forward(ctx, x, key):
        ctx.shape = x.shape
        ctx.key = key
        return x[key]

    @staticmethod
    def backward(ctx, g):
        return call(IndexAddZeros, g, key=ctx.key, shape=ctx.shape)


def scatter_add_rows(out: np.ndarray, idx: np.ndarray, g: np.ndarray) -> None:
    """``out[idx] += g`` along axis 0 with repeated indices accumulating (``np.add.at``).

    ``np.add.at`` handles one element at a time; for large updates this groups the positions
    by how many times their index was seen before (rank 0, 1, 2, ...) and adds each rank's
    rows with one vectorized fancy-index add (indices within a rank are distinct). The number
    of rounds is the largest multiplicity, usually a handful.
    """
    flat = idx.reshape(-1)
    rows = g.reshape((flat.size,) + out.shape[1:])
    k = native.kernel("index_add_rows")
    if (k is not None and out.dtype in BLAS_FLOATS and rows.dtype == out.dtype and out.ndim >= 1
            and out.flags.c_contiguous and flat.dtype == np.int64):
        F = math.prod(out.shape[1:])
        # negative indices count from the end, as in NumPy
        flat = np.where(flat < 0, flat + out.shape[0], flat) if flat.size and flat.min() < 0 \
            else flat
        k(out, np.ascontiguousarray(flat), np.ascontiguousarray(rows), out.shape[0],
          flat.size, F)  # in order of appearance, as the rank-by-rank adds below
        return
    if rows.size < 65536 or flat.size < 2:
        np.add.at(out, flat, rows)
        return
    order = np.argsort(flat, kind="stable")
    sorted_idx = flat[order]
    start = np.empty(flat.size, dtype=bool)
    start[0] = True
    np.not_equal(sorted_idx[1:], sorted_idx[:-1], out=start[1:])
    first = np.flatnonzero(start)
    rank = np.arange(flat.size) - first[np.cumsum(start) - 1]
    for r in range(int(rank.max()) + 1):
        sel = order[rank == r]
        out[flat[sel]] += rows[sel]


def _row_key(key):
    """The integer array when ``key`` selects rows only (``x[idx]``), else None."""
    k = key[0] if isinstance(key, tuple) and len(key) == 1 else key
    if isinstance(k, np.ndarray) and k.dtype.kind in "iu":
        return k
    return None


class IndexAddZeros(Primitive):
    """zeros(shape) with ``g`` added at NumPy key ``key`` (repeated indices accumulate)."""

    @staticmethod
    def forward(ctx, g, key, shape):
        ctx.key = key
        out = np.zeros(shape, dtype=g.dtype)
        if _unique_targets(key):
            out[key] = g
        elif (rows := _row_key(key)) is not None:
            scatter_add_rows(out, rows, g)
        else:
            np.add.at(out, key, g)
        return out

    @staticmethod
    def backward(ctx, gg):
        return _take(gg, ctx.key)


def _take(x, key):
    """``x[key]`` for a NumPy key: a view for basic keys, a copy otherwise."""
    return call(Index if _has_arrays(key) else GetItem, x, key=key)


def index_put_add_zeros(g, key, shape):
    """zeros(shape) with ``g`` added at NumPy key ``key`` (the backward of ``x[key]``)."""
    return call(IndexAddZeros, g, key=key, shape=tuple(shape))


def getitem(input, key):
    """``input[key]`` with PyTorch's meaning for ints, slices, None, ``...``, int and bool tensors.

    Basic keys give a view; keys with index tensors give a copy. Negative slice steps are
    accepted (as in NumPy).
    """
    pk = _parse_key(key, tuple(shape_of(input)), "getitem")
    out = input
    if pk.basic is not None or pk.adv is None:
        out = call(GetItem, out, key=pk.basic if pk.basic is not None else ())
    if pk.adv is not None:
        out = call(Index, out, key=pk.adv)
    return out


# ============================================================================ index_put
class ZeroAt(Primitive):
    """A copy of ``x`` with zeros at NumPy key ``key`` (its own backward)."""

    @staticmethod
    def forward(ctx, x, key):
        ctx.key = key
        out = np.array(x, copy=True)
        out[key] = 0
        return out

    @staticmethod
    def backward(ctx, g):
        return call(ZeroAt, g, key=ctx.key)


def _reduce_to(g, shape: tuple):
    """Sum a gradient of a broadcast result back to ``shape`` (which may have extra leading 1s)."""
    from .movement import reshape
    from .reduce import sum_to

    gshape = shape_of(g)
    if gshape == shape:
        return g
    extra = len(shape) - len(gshape)
    if extra > 0:
        return reshape(sum_to(g, shape[extra:]), shape)
    return sum_to(g, shape)


class IndexPut(Primitive):
    """A copy of ``x`` with ``x[key] = values`` (or ``+=`` with ``accumulate``)."""

    @staticmethod
    def forward(ctx, x, values, key, accumulate):
        out = np.array(x, copy=True)
        v = np.asarray(values)
        if v.dtype != out.dtype:
            v = v.astype(out.dtype)
        try:
            if accumulate:
                np.add.at(out, key, v)
            else:
                out[key] = v
        except ValueError:
            raise _error(RuntimeError, f"index_put: shape mismatch: values of shape "
                                       f"{tuple(v.shape)} cannot be broadcast to the indexed "
                                       f"shape {tuple(x[key].shape)} (tensor of shape "
                                       f"{tuple(x.shape)})") from None
        ctx.key = key
        ctx.accumulate = accumulate
        ctx.v_shape = v.shape if isinstance(values, np.ndarray) else None
        return out

    @staticmethod
    def backward(ctx, g):
        gx = g if ctx.accumulate else call(ZeroAt, g, key=ctx.key)
        if ctx.v_shape is None:  # values was a number
            return gx, None
        return gx, _reduce_to(_take(g, ctx.key), ctx.v_shape)


def index_put(input, indices, values, accumulate: bool = False):
    """A copy of ``input`` with ``input[indices] = values`` (``+=`` if ``accumulate``).

    ``indices`` is any key accepted by :func:`getitem` (PyTorch's tuple of index tensors is
    one). Differentiable with respect to ``input`` (zero gradient where overwritten) and
    ``values`` (the gradient at ``indices``, summed over broadcast dims). Matches
    ``torch.index_put``; ``Tensor.__setitem__`` uses it when gradients are recorded.
    """
    key = normalize_key(indices, shape_of(input), "index_put")
    if isinstance(values, (list, tuple)):
        values = np.asarray(_to_index_value(values))
    return call(IndexPut, input, values, key=key, accumulate=bool(accumulate))


# ============================================================================ gather / scatter
def _int_index(index, op: str, name: str = "index") -> np.ndarray:
    a = index._data if isinstance(index, TensorBase) else np.asarray(index)
    if a.dtype.kind not in "iu":
        raise RuntimeError(f"{op}: expected an integer tensor for {name}, got dtype {a.dtype}")
    return a


def _check_range(idx: np.ndarray, size: int, op: str, dim: int, negative: bool = False):
    """``idx`` after checking it lies in ``[0, size)`` (``[-size, size)`` with ``negative``)."""
    if idx.size == 0:
        return idx
    lo, hi = int(idx.min()), int(idx.max())
    low = -size if negative else 0
    if lo < low or hi >= size:
        bad = lo if lo < low else hi
        raise IndexOutOfRangeError(f"{op}: index {bad} is out of bounds for dim {dim} with size "
                                   f"{size}")
    if negative and lo < 0:
        idx = np.where(idx < 0, idx + size, idx)
    return idx


def _full_index(idx: np.ndarray, axis: int) -> tuple:
    """An advanced key selecting ``idx`` along ``axis`` and every position elsewhere."""
    grids = list(np.indices(idx.shape, sparse=True))
    grids[axis] = idx
    return tuple(grids)


def _region(shape: tuple) -> tuple:
    return tuple(slice(0, s) for s in shape)


class Gather(Primitive):
    """``out[i][j][k] = x[i][idx[i][j][k]][k]`` (for axis 1); ``idx`` may be smaller than ``x``."""

    @staticmethod
    def forward(ctx, x, idx, axis):
        ctx.idx, ctx.axis, ctx.shape = idx, axis, x.shape
        return x[_full_index(idx, axis)]

    @staticmethod
    def backward(ctx, g):
        return call(ScatterAddZeros, g, idx=ctx.idx, axis=ctx.axis, shape=ctx.shape), None


class ScatterAddZeros(Primitive):
    """zeros(shape) with ``g`` scatter-added along ``axis`` at ``idx`` (the backward of gather)."""

    @staticmethod
    def forward(ctx, g, idx, axis, shape):
        ctx.idx, ctx.axis = idx, axis
        out = np.zeros(shape, dtype=g.dtype)
        np.add.at(out, _full_index(idx, axis), g)
        return out

    @staticmethod
    def backward(ctx, gg):
        return call(Gather, gg, ctx.idx, axis=ctx.axis)


def _gather_src_grad(g, idx, axis, src_shape):
    """The gradient of a scatter's ``src``: ``g`` gathered at ``idx``, zero where unused."""
    gs = call(Gather, g, idx, axis=axis)
    if tuple(idx.shape) != tuple(src_shape):
        gs = call(IndexAddZeros, gs, key=_region(idx.shape), shape=tuple(src_shape))
    return gs


class Scatter(Primitive):
    """A copy of ``x`` with ``src`` written along ``axis`` at ``idx``."""

    @staticmethod
    def forward(ctx, x, src, idx, axis):
        full = _full_index(idx, axis)
        out = np.array(x, copy=True)
        out[full] = src[_region(idx.shape)]
        ctx.idx, ctx.axis, ctx.full, ctx.src_shape = idx, axis, full, src.shape
        return out

    @staticmethod
    def backward(ctx, g):
        return (call(ZeroAt, g, key=ctx.full),
                _gather_src_grad(g, ctx.idx, ctx.axis, ctx.src_shape), None)


class ScatterAdd(Primitive):
    """A copy of ``x`` with ``src`` added along ``axis`` at ``idx`` (repeats accumulate)."""

    @staticmethod
    def forward(ctx, x, src, idx, axis):
        out = np.array(x, copy=True)
        np.add.at(out, _full_index(idx, axis), src[_region(idx.shape)].astype(out.dtype))
        ctx.idx, ctx.axis, ctx.src_shape = idx, axis, src.shape
        return out

    @staticmethod
    def backward(ctx, g):
        return g, _gather_src_grad(g, ctx.idx, ctx.axis, ctx.src_shape), None


class ScatterProdOnes(Primitive):
    """ones(shape) multiplied along ``axis`` at ``idx`` by ``src`` (scatter reduce='multiply')."""

    @staticmethod
    def forward(ctx, src, idx, axis, shape, dtype):
        out = np.ones(shape, dtype=dtype)
        full = _full_index(idx, axis)
        np.multiply.at(out, full, src[_region(idx.shape)].astype(dtype))
        flat = np.ravel_multi_index(np.broadcast_arrays(*full), shape).ravel()
        ctx.unique = np.unique(flat).size == flat.size
        ctx.idx, ctx.axis, ctx.src_shape = idx, axis, src.shape
        return out

    @staticmethod
    def backward(ctx, g):
        if not ctx.unique:
            raise RuntimeError("scatter: the gradient of reduce='multiply' with respect to src "
                               "is only implemented when no two src elements go to the same "
                               "position (PyTorch implements none)")
        return _gather_src_grad(g, ctx.idx, ctx.axis, ctx.src_shape), None


def _scatter_args(op: str, input, dim, index, src):
    """Validated ``(axis, idx, src)`` for the scatter family; scalar ``src`` becomes an array."""
    shape = tuple(shape_of(input))
    idx = _int_index(index, op)
    n = len(shape)
    axis = normalize_dim(dim, n, op)
    if idx.ndim != n and not (n <= 1 and idx.ndim <= 1):
        raise RuntimeError(f"{op}: index has {idx.ndim} dims but input has {n} (shape {shape}); "
                           f"they must have the same number of dims")
    if idx.ndim == 0:
        idx = idx.reshape(1)
    size = shape[axis]
    for d in range(idx.ndim):
        if d != axis and idx.shape[d] > shape[d]:
            raise RuntimeError(f"{op}: index of shape {tuple(idx.shape)} does not match input "
                               f"of shape {shape} outside dim {axis} (index sizes must not "
                               f"exceed the input's)")
    _check_range(idx, size, op, axis)
    sshape = tuple(shape_of(src)) if isinstance(src, (TensorBase, np.ndarray)) else ()
    if sshape:
        if len(sshape) != idx.ndim or any(i > s for i, s in zip(idx.shape, sshape)):
            raise RuntimeError(f"{op}: index of shape {tuple(idx.shape)} does not fit src of "
                               f"shape {sshape} (src must have as many dims and be at least as "
                               f"large in each)")
    elif isinstance(src, TensorBase):  # a 0-d tensor: broadcast it (differentiably)
        from .movement import broadcast_to

        src = broadcast_to(src, idx.shape)
    elif isinstance(src, (int, float, bool, np.number, np.bool_, np.ndarray)):
        dtype = input._data.dtype if isinstance(input, TensorBase) else np.asarray(input).dtype
        src = np.full(idx.shape, src, dtype=dtype)
    else:
        raise TypeError(f"{op}: src must be a tensor or a number, got {type(src).__name__}")
    return axis, idx, src


def _scalar_input_wrap(input, fn):
    """Run ``fn`` on a 0-d ``input`` viewed as 1-d, and return a 0-d result."""
    from .movement import reshape

    if len(shape_of(input)) == 0:
        return reshape(fn(reshape(input, (1,))), ())
    return fn(input)


def gather(input, dim, index, *, sparse_grad: bool = False):
    """Values of ``input`` at ``index`` along ``dim``. Matches ``torch.gather``.

    ``index`` has as many dims as ``input`` and is no larger outside ``dim``; the result has
    ``index``'s shape. The gradient scatter-adds back (repeated indices accumulate).
    """
    shape = tuple(shape_of(input))
    idx = _int_index(index, "gather")
    n = len(shape)
    axis = normalize_dim(dim, n, "gather")
    if n == 0 or idx.ndim == 0:
        if n <= 1 and idx.ndim <= 1:
            from .movement import reshape

            out = gather(reshape(input, (-1,)), 0, idx.reshape(-1))
            return reshape(out, idx.shape)
    if idx.ndim != n:
        raise RuntimeError(f"gather: index has {idx.ndim} dims but input has {n} (shape "
                           f"{shape}); they must have the same number of dims")
    for d in range(n):
        if d != axis and idx.shape[d] > shape[d]:
            raise RuntimeError(f"gather: index of shape {tuple(idx.shape)} does not match input "
                               f"of shape {shape} outside dim {axis} (index sizes must not "
                               f"exceed the input's)")
    _check_range(idx, shape[axis], "gather", axis)
    return call(Gather, input, idx, axis=axis)


def scatter(input, dim, index, src=None, *, value=None, reduce=None):
    """A copy of ``input`` with ``src`` (a tensor, or a number) written at ``index`` along ``dim``.

    ``reduce`` may be None (overwrite; with repeated targets one value wins), ``'add'`` or
    ``'multiply'``. Matches ``torch.scatter``. Gradients: for reduce=None, ``input`` gets zero
    where written and ``src`` the gathered gradient; ``'add'`` as :func:`scatter_add`;
    ``'multiply'`` to ``input``, and to ``src`` when no two elements share a target.
    """
    if src is None:
        src = value
    if src is None:
        raise TypeError("scatter: expected src (a tensor or a number) or value=")
    if reduce not in (None, "add", "multiply"):
        raise ValueError(f"scatter: reduce must be None, 'add' or 'multiply', got {reduce!r}")

    def run(x):
        axis, idx, s = _scatter_args("scatter", x, dim, index, src)
        if reduce is None:
            return call(Scatter, x, s, idx, axis=axis)
        if reduce == "add":
            return call(ScatterAdd, x, s, idx, axis=axis)
        from .binary import mul

        xd = x._data if isinstance(x, TensorBase) else np.asarray(x)
        factor = call(ScatterProdOnes, s, idx, axis=axis, shape=xd.shape, dtype=xd.dtype)
        return mul(x, factor)

    return _scalar_input_wrap(input, run)


def scatter_add(input, dim, index, src):
    """A copy of ``input`` with ``src`` added at ``index`` along ``dim`` (repeats accumulate).

    Matches ``torch.scatter_add``; the gradient of ``src`` is the gradient gathered at ``index``.
    """
    def run(x):
        axis, idx, s = _scatter_args("scatter_add", x, dim, index, src)
        return call(ScatterAdd, x, s, idx, axis=axis)

    return _scalar_input_wrap(input, run)


def _dim_key(axis: int, idx: np.ndarray) -> tuple:
    return (slice(None),) * axis + (idx,)


def _vector_index(index, op: str) -> np.ndarray:
    idx = _int_index(index, op)
    if idx.ndim > 1:
        raise RuntimeError(f"{op}: index must be 0-d or 1-d, got shape {tuple(idx.shape)}")
    return idx.reshape(-1)


def index_select(input, dim, index):
    """The slices of ``input`` at positions ``index`` (0-d or 1-d) along ``dim``.

    Matches ``torch.index_select``; repeated indices accumulate in the gradient.
    """
    idx = _vector_index(index, "index_select")
    shape = tuple(shape_of(input))
    axis = normalize_dim(dim, len(shape), "index_select")
    if not shape:
        if idx.size != 1:
            raise RuntimeError(f"index_select: a 0-d input takes exactly one index, got "
                               f"{idx.size}")
        _check_range(idx, 1, "index_select", 0)
        from .movement import reshape

        return reshape(call(Index, reshape(input, (1,)), key=(idx,)), ())
    _check_range(idx, shape[axis], "index_select", axis)
    return call(Index, input, key=_dim_key(axis, idx))


class IndexAdd(Primitive):
    """A copy of ``x`` with ``alpha * src`` added at ``key`` (repeats accumulate)."""

    @staticmethod
    def forward(ctx, x, src, key, alpha):
        out = np.array(x, copy=True)
        add = src if alpha == 1 else np.multiply(src, alpha)
        np.add.at(out, key, np.asarray(add).astype(out.dtype, copy=False))
        ctx.key, ctx.alpha = key, alpha
        return out

    @staticmethod
    def backward(ctx, g):
        gs = call(Index, g, key=ctx.key)
        return g, gs if ctx.alpha == 1 else gs * ctx.alpha


def index_add(input, dim, index, source, *, alpha=1):
    """A copy of ``input`` with ``alpha * source`` added at ``index`` along ``dim``.

    ``source`` has ``input``'s shape except ``len(index)`` along ``dim``. Matches
    ``torch.index_add``.
    """
    idx = _vector_index(index, "index_add")
    shape = tuple(shape_of(input))
    sshape = tuple(shape_of(source))
    n = len(shape)
    axis = normalize_dim(dim, n, "index_add")
    if n == 0:
        from .movement import reshape

        if idx.size != 1 or sshape not in ((), (1,)):
            raise RuntimeError(f"index_add: a 0-d input takes one index and a 0-d or 1-element "
                               f"source, got {idx.size} indices and source of shape {sshape}")
        _check_range(idx, 1, "index_add", 0)
        return reshape(index_add(reshape(input, (1,)), 0, idx, reshape(source, (1,)),
                                 alpha=alpha), ())
    expected = shape[:axis] + (idx.size,) + shape[axis + 1:]
    if sshape != expected and not (len(sshape) == 0 and expected == (1,)):
        raise RuntimeError(f"index_add: source of shape {sshape} does not match input of shape "
                           f"{shape} with dim {axis} replaced by the {idx.size} indices "
                           f"(expected {expected})")
    if sshape != expected:
        from .movement import reshape

        source = reshape(source, expected)
    _check_range(idx, shape[axis], "index_add", axis)
    return call(IndexAdd, input, source, key=_dim_key(axis, idx), alpha=alpha)


def take_along_dim(input, indices, dim=None):
    """Values of ``input`` at ``indices`` along ``dim``, broadcasting the other dims.

    With ``dim=None`` both are flattened. Negative indices count from the end. Matches
    ``torch.take_along_dim``.
    """
    idx = _int_index(indices, "take_along_dim", "indices")
    from .movement import broadcast_to, reshape

    if dim is None:
        flat = reshape(input, (-1,))
        idx = _check_range(idx.reshape(-1), shape_of(flat)[0], "take_along_dim", 0, True)
        return call(Gather, flat, idx, axis=0)
    shape = tuple(shape_of(input))
    n = len(shape)
    axis = normalize_dim(dim, n, "take_along_dim")
    if idx.ndim != n:
        raise RuntimeError(f"take_along_dim: input and indices should have the same number of "
                           f"dims, got input of shape {shape} and indices of shape "
                           f"{tuple(idx.shape)}")
    if n == 0:
        return gather(input, 0, _check_range(idx, 1, "take_along_dim", 0, True))
    try:
        b = list(np.broadcast_shapes(shape[:axis] + (1,) + shape[axis + 1:],
                                     idx.shape[:axis] + (1,) + idx.shape[axis + 1:]))
    except ValueError:
        raise RuntimeError(f"take_along_dim: input of shape {shape} and indices of shape "
                           f"{tuple(idx.shape)} cannot be broadcast outside dim {axis}") from None
    in_shape = tuple(b[:axis] + [shape[axis]] + b[axis + 1:])
    idx_shape = tuple(b[:axis] + [idx.shape[axis]] + b[axis + 1:])
    if in_shape != shape:
        input = broadcast_to(input, in_shape)
    idx = _check_range(np.broadcast_to(idx, idx_shape), shape[axis], "take_along_dim", axis,
                       True)
    return call(Gather, input, idx, axis=axis)


def take(input, index):
    """Elements of ``input`` (read as 1-d) at ``index``, shaped like ``index``.

    Negative indices count from the end. Matches ``torch.take``.
    """
    from .movement import reshape

    idx = _int_index(index, "take")
    flat = reshape(input, (-1,))
    n = shape_of(flat)[0]
    if idx.size:
        lo, hi = int(idx.min()), int(idx.max())
        if lo < -n or hi >= n:
            raise IndexOutOfRangeError(f"take: index {lo if lo < -n else hi} is out of bounds "
                                       f"for a tensor of {n} elements")
    return call(Index, flat, key=(idx,))


# ============================================================================ masks
def _bool_mask(mask, op: str) -> np.ndarray:
    m = mask._data if isinstance(mask, TensorBase) else np.asarray(mask)
    if m.dtype != bool:
        raise RuntimeError(f"{op}: expected a bool mask, got dtype {m.dtype}")
    return m


def _mask_broadcast(input, m: np.ndarray, op: str):
    """``input`` and mask broadcast to their common shape (``input`` differentiably)."""
    shape = tuple(shape_of(input))
    try:
        out_shape = np.broadcast_shapes(shape, m.shape)
    except ValueError:
        raise RuntimeError(f"{op}: mask of shape {tuple(m.shape)} is not broadcastable with "
                           f"input of shape {shape}") from None
    if out_shape != shape:
        from .movement import broadcast_to

        input = broadcast_to(input, out_shape)
    return input, np.broadcast_to(m, out_shape)


class MaskedFill(Primitive):
    """``value`` where ``mask``, else ``x`` (``value`` cast to ``x``'s dtype)."""

    @staticmethod
    def forward(ctx, x, value, mask):
        ctx.mask = mask
        ctx.value_is_array = isinstance(value, np.ndarray)
        return np.where(mask, np.asarray(value).astype(x.dtype), x)

    @staticmethod
    def backward(ctx, g):
        from .reduce import sum as _sum

        gx = call(MaskedFill, g, 0.0, mask=ctx.mask)
        if not ctx.value_is_array:
            return gx, None
        return gx, _sum(call(MaskedFill, g, 0.0, mask=~ctx.mask))


def masked_fill(input, mask, value):
    """``input`` with ``value`` (a number or 0-d tensor) where the bool ``mask`` is True.

    ``mask`` broadcasts with ``input``. Gradients: ``input`` gets zero where filled, a tensor
    ``value`` the sum of the gradient there. Matches ``torch.masked_fill``.
    """
    m = _bool_mask(mask, "masked_fill")
    if isinstance(value, TensorBase) and value._data.ndim != 0:
        raise RuntimeError(f"masked_fill: value must be a number or a 0-d tensor, got a tensor "
                           f"of shape {tuple(value._data.shape)}")
    if isinstance(value, np.ndarray) and value.ndim != 0:
        raise RuntimeError(f"masked_fill: value must be a number or a 0-d tensor, got an array "
                           f"of shape {tuple(value.shape)}")
    input, m = _mask_broadcast(input, m, "masked_fill")
    return call(MaskedFill, input, value, mask=m)


def masked_select(input, mask):
    """The elements of ``input`` where ``mask`` is True, as a 1-d tensor (broadcasting both).

    Matches ``torch.masked_select``.
    """
    m = _bool_mask(mask, "masked_select")
    input, m = _mask_broadcast(input, m, "masked_select")
    if m.ndim == 0:
        from .movement import reshape

        input, m = reshape(input, (1,)), m.reshape(1)
    return call(Index, input, key=(m,))


def index_mask(input, dim, index) -> np.ndarray:
    """A bool array of ``input``'s shape, True at positions ``index`` along ``dim``.

    Negative indices count from the end (as ``index_fill_`` accepts them).
    """
    shape = tuple(shape_of(input))
    n = len(shape)
    axis = normalize_dim(dim, n, "index_fill")
    idx = _vector_index(index, "index_fill")
    size = shape[axis] if n else 1
    idx = _check_range(idx, size, "index_fill", axis, negative=True)
    line = np.zeros(size, dtype=bool)
    line[idx] = True
    if n == 0:
        return line.reshape(())
    view = [1] * n
    view[axis] = size
    return np.array(np.broadcast_to(line.reshape(view), shape))


def diagonal_mask(input, wrap: bool = False) -> np.ndarray:
    """A bool array of ``input``'s shape, True on the main diagonal (``fill_diagonal_``'s cells).

    ``input`` must be at least 2-d, with all dims equal beyond 2-d. For a tall matrix, ``wrap``
    restarts the diagonal every ``ncols + 1`` rows (PyTorch's semantics).
    """
    shape = tuple(shape_of(input))
    if len(shape) < 2:
        raise RuntimeError(f"fill_diagonal_: the tensor must have at least 2 dims, got shape "
                           f"{shape}")
    if len(shape) > 2 and len(set(shape)) != 1:
        raise RuntimeError(f"fill_diagonal_: all dims must have the same size when the tensor "
                           f"has more than 2 dims, got shape {shape}")
    m = np.zeros(shape, dtype=bool)
    if m.size:
        n = min(shape)
        if len(shape) > 2 or not wrap or shape[0] <= shape[1]:
            m[(np.arange(n),) * len(shape)] = True
        else:
            m.reshape(-1)[::shape[1] + 1] = True
    return m


class DiagonalEmbed(Primitive):
    """zeros(shape) with ``g`` on the (offset, a1, a2) diagonal: the backward of ``diagonal``."""

    @staticmethod
    def forward(ctx, g, shape, offset, a1, a2):
        ctx.args = (offset, a1, a2)
        out = np.zeros(shape, dtype=g.dtype)
        plane = np.moveaxis(out, (a1, a2), (-2, -1))
        i = np.arange(g.shape[-1])
        plane[..., i + max(-offset, 0), i + max(offset, 0)] = g
        return out

    @staticmethod
    def backward(ctx, gg):
        from .movement import diagonal

        offset, a1, a2 = ctx.args
        return diagonal(gg, offset, a1, a2)


def diagonal_embed_like(g, shape, offset, a1, a2):
    """zeros(shape) with ``g`` placed on ``diagonal(offset, a1, a2)`` (differentiable)."""
    return call(DiagonalEmbed, g, shape=tuple(shape), offset=offset, a1=a1, a2=a2)


# ============================================================================ no-gradient ops
class OneHot(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x, num_classes):
        return (x[..., None] == np.arange(num_classes)).astype(np.int64)


def one_hot(tensor, num_classes: int = -1):
    """int64 one-hot encoding with a new last dim of ``num_classes`` (-1: max + 1).

    Matches ``torch.nn.functional.one_hot``.
    """
    a = tensor._data if isinstance(tensor, TensorBase) else np.asarray(tensor)
    if a.dtype.kind not in "iu":
        raise RuntimeError(f"one_hot: expected an integer tensor of class indices, got dtype "
                           f"{a.dtype}")
    if num_classes == -1:
        if a.size == 0:
            raise RuntimeError("one_hot: cannot infer the number of classes from an empty "
                               "tensor; pass num_classes")
        num_classes = int(a.max()) + 1
    if num_classes < 0:
        raise RuntimeError(f"one_hot: num_classes must be -1 or non-negative, got {num_classes}")
    if a.size:
        if a.min() < 0:
            raise RuntimeError(f"one_hot: class values must be non-negative, got {a.min()}")
        if a.max() >= num_classes:
            raise RuntimeError(f"one_hot: class value {a.max()} is too large for "
                               f"num_classes={num_classes} (values must be smaller)")
    return call(OneHot, tensor, num_classes=int(num_classes))


class Nonzero(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x, as_tuple):
        if as_tuple:
            if x.ndim == 0:
                return (np.zeros(int(bool(x)), dtype=np.int64),)
            return tuple(i.astype(np.int64, copy=False) for i in np.nonzero(x))
        return np.argwhere(x).astype(np.int64, copy=False)


def nonzero(input, *, as_tuple: bool = False):
    """Indices of the nonzero elements: an (n, ndim) int64 tensor, or one 1-d tensor per dim.

    Matches ``torch.nonzero``.
    """
    return call(Nonzero, input, as_tuple=bool(as_tuple))


def argwhere(input):
    """Same as ``nonzero(input)``. Matches ``torch.argwhere``."""
    return nonzero(input)


class EmbeddingLookup(Primitive):
    """Rows of ``weight`` at integer ``idx``; the row ``padding_idx`` gets no gradient."""

    @staticmethod
    def forward(ctx, weight, idx, padding_idx):
        ctx.args = (idx, padding_idx, weight.shape)
        return weight[idx]

    @staticmethod
    def backward(ctx, g):
        idx, padding_idx, shape = ctx.args
        if padding_idx is not None:
            from .binary import where

            keep = (idx != padding_idx)[..., None]
            g = where(keep, g, g * 0)
        return index_put_add_zeros(g, idx, shape), None


def embedding_lookup(input, weight, padding_idx=None):
    """``weight[input]`` for an integer tensor ``input`` (the embedding layer's lookup)."""
    idx = input._data if isinstance(input, TensorBase) else np.asarray(input)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: expected an integer index tensor (int64), got dtype "
                        f"{idx.dtype}; convert with .long()")
    n = shape_of(weight)[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx.min() if idx.min() < 0 else idx.max()
        raise IndexError(f"embedding: index {int(bad)} is out of range for an embedding table "
                         f"of {n} rows (valid: 0..{n - 1})")
    return call(EmbeddingLookup, weight, idx, padding_idx=padding_idx)
