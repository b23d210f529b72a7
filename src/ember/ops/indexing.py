"""Indexing: basic and advanced ``x[key]``, gather/scatter, index_select/index_add, masks, one_hot.

Matches: ``torch.Tensor.__getitem__`` and the ``torch`` functions of the same names.

Backward of a gather-like op scatters the gradient back with *addition*, so indices that repeat
accumulate their gradients (``x[[0, 0]]`` sends twice the gradient to ``x[0]``).
"""

from __future__ import annotations

import numpy as np

from .base import Primitive, TensorBase, call, normalize_dim, shape_of


def normalize_key(key, shape, op: str = "getitem"):
    """Turn tensors inside an index into arrays (bool tensors stay masks)."""
    if isinstance(key, tuple):
        return tuple(_key_part(k) for k in key)
    return _key_part(key)


def _key_part(k):
    if isinstance(k, TensorBase):
        return k._data
    if isinstance(k, list):
        return np.asarray([x._data if isinstance(x, TensorBase) else x for x in k])
    return k


def _is_basic(key) -> bool:
    parts = key if isinstance(key, tuple) else (key,)
    return all(isinstance(k, (int, np.integer, slice)) or k is None or k is Ellipsis
               for k in parts)


class GetItem(Primitive):
    """``x[key]``: a view for basic indexing (ints, slices, None, ...), a copy otherwise."""

    view = True

    @staticmethod
    def forward(ctx, x, key):
        ctx.args = (x.shape, x.dtype, key)
        return x[key]

    @staticmethod
    def backward(ctx, g):
        shape, dtype, key = ctx.args
        return index_put_add_zeros(g, key, shape)


class IndexAddZeros(Primitive):
    """zeros(shape) with ``g`` added at ``key`` (repeated indices accumulate)."""

    @staticmethod
    def forward(ctx, g, key, shape):
        ctx.key = key
        out = np.zeros(shape, dtype=g.dtype)
        if _is_basic(key):
            out[key] = g
        else:
            np.add.at(out, key, g)
        return out

    @staticmethod
    def backward(ctx, gg):
        return getitem(gg, ctx.key)


def index_put_add_zeros(g, key, shape):
    return call(IndexAddZeros, g, key=key, shape=tuple(shape))


def getitem(input, key):
    """``input[key]`` with NumPy semantics for ints, slices, None, Ellipsis, int and bool arrays."""
    k = normalize_key(key, shape_of(input))
    return call(GetItem, input, key=k)


class TakeAlongDim(Primitive):
    @staticmethod
    def forward(ctx, x, idx, axis):
        ctx.args = (x.shape, axis)
        ctx.idx = idx
        return np.take_along_axis(x, idx, axis)

    @staticmethod
    def backward(ctx, g):
        shape, axis = ctx.args
        return call(ScatterAddZeros, g, idx=ctx.idx, axis=axis, shape=shape), None


class ScatterAddZeros(Primitive):
    @staticmethod
    def forward(ctx, g, idx, axis, shape):
        ctx.args = (idx, axis)
        out = np.zeros(shape, dtype=g.dtype)
        full = _full_index(idx, axis)
        np.add.at(out, full, g)
        return out

    @staticmethod
    def backward(ctx, gg):
        idx, axis = ctx.args
        return call(TakeAlongDim, gg, idx, axis=axis)


def _full_index(idx: np.ndarray, axis: int) -> tuple:
    """An advanced index selecting ``idx`` along ``axis`` and every position elsewhere."""
    grids = list(np.ogrid[tuple(slice(0, s) for s in idx.shape)])
    grids[axis] = idx
    return tuple(grids)


def take_along_dim(input, indices, dim=None):
    """Values of ``input`` at ``indices`` along ``dim``. Matches ``torch.take_along_dim``."""
    if dim is None:
        from .movement import reshape

        return take_along_dim(reshape(input, (-1,)), reshape(indices, (-1,)), 0)
    axis = normalize_dim(dim, len(shape_of(input)), "take_along_dim")
    idx = indices._data if isinstance(indices, TensorBase) else np.asarray(indices)
    return call(TakeAlongDim, input, idx, axis=axis)
