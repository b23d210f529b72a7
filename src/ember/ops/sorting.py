"""Sorting and selection: sort, argsort, topk, kthvalue-free helpers, unique.

Matches: ``torch.sort``, ``torch.argsort``, ``torch.topk``, ``torch.unique`` (values and indices
as PyTorch returns them). Gradients flow to the selected positions through
:func:`take_along_dim`, so sorting is differentiable with respect to the values.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .base import Primitive, call, normalize_dim, shape_of

__all__ = ["sort", "argsort", "topk", "unique", "msort"]

SortResult = namedtuple("sort", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])


class _ArgSort(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x, axis, descending, stable):
        kind = "stable" if stable or descending else "quicksort"
        if descending:
            # a stable descending order: sort the negated keys (NaN first, as in PyTorch)
            keys = -x if x.dtype.kind in "fi" else ~x if x.dtype == np.bool_ else -x.astype(
                np.int64)
            if x.dtype.kind == "f":
                keys = np.where(np.isnan(x), -np.inf, keys)
            return np.argsort(keys, axis=axis, kind=kind).astype(np.int64)
        return np.argsort(x, axis=axis, kind=kind).astype(np.int64)


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """Indices that sort ``input`` along ``dim``. Matches ``torch.argsort``."""
    nd = len(shape_of(input))
    if nd == 0:
        return call(_Zeros0d, input)
    axis = normalize_dim(dim, nd, "argsort")
    return call(_ArgSort, input, axis=axis, descending=descending, stable=stable)


class _Zeros0d(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x):
        return np.zeros((), dtype=np.int64)


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """Sorted values and their original indices along ``dim``. Matches ``torch.sort``."""
    from .indexing import take_along_dim

    if len(shape_of(input)) == 0:
        return SortResult(input, argsort(input))
    idx = argsort(input, dim, descending, stable)
    return SortResult(take_along_dim(input, idx, dim), idx)


def msort(input):
    return sort(input, 0).values


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):  # noqa: A002
    """The ``k`` largest (or smallest) values along ``dim`` and their indices.

    Matches ``torch.topk`` (results are always sorted, which ``sorted=False`` allows).
    """
    from .indexing import take_along_dim
    from .movement import narrow

    shape = shape_of(input)
    axis = normalize_dim(dim, len(shape), "topk") if shape else 0
    n = shape[axis] if shape else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"topk: k ({k}) is out of range for dim {dim} of size {n}")
    if not shape:
        return TopkResult(input, argsort(input))
    idx = narrow(argsort(input, axis, descending=largest, stable=True), axis, 0, k)
    return TopkResult(take_along_dim(input, idx, axis), idx)


def unique(input, sorted: bool = True, return_inverse: bool = False,  # noqa: A002
           return_counts: bool = False, dim=None):
    """The distinct values (no gradient). Matches ``torch.unique`` for ``dim=None``."""
    if dim is not None:
        raise NotImplementedError("unique: only dim=None is supported")
    out = call(_Unique, input, inverse=return_inverse, counts=return_counts)
    return out


class _Unique(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x, inverse, counts):
        res = np.unique(x, return_inverse=inverse, return_counts=counts)
        if not (inverse or counts):
            return res
        vals = [res[0]]
        if inverse:
            vals.append(res[1].reshape(x.shape).astype(np.int64))
        if counts:
            vals.append(res[-1].astype(np.int64))
        return tuple(vals)
