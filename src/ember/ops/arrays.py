"""Array utilities and the in-place kernels behind ``add_``, ``copy_``, ``x[i] = v`` and friends."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .base import TensorBase


def as_array(x, dtype=None) -> np.ndarray:
    return np.asarray(x._data if isinstance(x, TensorBase) else x, dtype=dtype)


def numel_of_shape(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def zeros_array(shape, dtype) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


def ones_array(shape, dtype) -> np.ndarray:
    return np.ones(shape, dtype=dtype)


def owned_copy(a) -> np.ndarray:
    """A writeable, contiguous array nobody else references (e.g. to become a ``.grad``)."""
    return np.array(a, copy=True, order="C")


def all_finite(a) -> bool:
    a = np.asarray(a)
    return a.dtype.kind != "f" or bool(np.isfinite(a).all())


def _check_inplace(dst: np.ndarray, src, op: str) -> None:
    shape = np.shape(src)
    if shape != dst.shape:
        try:
            b = np.broadcast_shapes(dst.shape, shape)
        except ValueError:
            b = None
        if b != dst.shape:
            raise RuntimeError(f"{op}: a value of shape {tuple(shape)} cannot be broadcast to "
                               f"the tensor's shape {tuple(dst.shape)}")
    if not dst.flags.writeable:
        raise RuntimeError(f"{op}: this tensor is a read-only view (e.g. from expand or "
                           f"broadcast_to); clone() it before changing it in place")


def add_into(dst: np.ndarray, src, alpha=1) -> None:
    """``dst += alpha * src`` in place."""
    _check_inplace(dst, src, "add_")
    if alpha == 1:
        np.add(dst, src, out=dst, casting="unsafe")
    elif alpha == -1:
        np.subtract(dst, src, out=dst, casting="unsafe")
    else:
        np.add(dst, np.multiply(src, alpha), out=dst, casting="unsafe")


def mul_into(dst: np.ndarray, src) -> None:
    _check_inplace(dst, src, "mul_")
    np.multiply(dst, src, out=dst, casting="unsafe")


def fill_into(dst: np.ndarray, value) -> None:
    value = np.asarray(value)
    if value.size != 1:
        raise RuntimeError(f"fill_: expected a number or a one-element tensor, got shape "
                           f"{tuple(value.shape)}")
    if not dst.flags.writeable:
        _check_inplace(dst, dst, "fill_")
    dst.fill(value.item())


def copy_into(dst: np.ndarray, src, cast: bool = False) -> None:
    _check_inplace(dst, src, "copy_")
    np.copyto(dst, src, casting="unsafe")


def setitem_into(dst: np.ndarray, key, value) -> None:
    from .indexing import normalize_key

    if not dst.flags.writeable:
        raise RuntimeError("__setitem__: this tensor is a read-only view (e.g. from expand); "
                           "clone() it first")
    k = normalize_key(key, dst.shape, "__setitem__")
    try:
        dst[k] = value
    except (ValueError, IndexError) as e:
        raise IndexError(f"__setitem__: cannot assign a value of shape {np.shape(value)} to "
                         f"index {key!r} of a tensor of shape {dst.shape}: {e}") from None


def format_tensor(data: np.ndarray, extras: list) -> str:
    """PyTorch-style repr: ``tensor([[1., 2.], [3., 4.]], requires_grad=True)``."""
    if data.size == 0:
        body = "[]" if data.ndim <= 1 else f"size={tuple(data.shape)}"
    else:
        fmt = {}
        if data.dtype.kind == "f":
            finite = data[np.isfinite(data)]
            integral = finite.size == 0 or bool(np.all(finite == np.round(finite)))
            big = finite.size and (np.abs(finite).max() >= 1e8 or
                                   0 < np.abs(finite[finite != 0]).min(initial=1) < 1e-4)
            if big:
                fmt["float_kind"] = lambda v: f"{v:.4e}"
            elif integral:
                fmt["float_kind"] = lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)
            else:
                fmt["float_kind"] = lambda v: f"{v:.4f}" if np.isfinite(v) else str(v)
        body = np.array2string(data, separator=", ", prefix="tensor(", formatter=fmt or None,
                               threshold=1000, edgeitems=3, max_line_width=80)
    return "tensor(" + body + "".join(", " + e for e in extras) + ")"


def arange_array(start, end, step, dtype) -> np.ndarray:
    return np.arange(start, end, step).astype(dtype, copy=False)


def linspace_array(start, end, steps, dtype) -> np.ndarray:
    return np.linspace(start, end, steps).astype(dtype, copy=False)


def eye_array(n, m, dtype) -> np.ndarray:
    return np.eye(n, m, dtype=dtype)


def unique_rows(idx) -> np.ndarray:
    """The distinct values of an integer index array, sorted."""
    return np.unique(np.asarray(idx))


def quiet_fp():
    """A context in which NumPy computes inf/nan silently, as PyTorch does (used around the
    whole backward pass, once, instead of around every gradient formula)."""
    return np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore")


def tune_allocator() -> bool:
    """Keep freed large arrays in the process heap instead of returning them to the OS.

    glibc's malloc hands multi-MB blocks (every activation and gradient of a mid-sized layer)
    straight back to the kernel when they are freed, so the next training step page-faults
    every page of its temporaries in again: measured at ~8,000 minor faults and ~29 ms of
    system time per Transformer training step here, about 20% of the step. Raising the mmap
    and trim thresholds keeps that memory in the heap for reuse. Process-wide and glibc-only;
    set ``EMBER_MALLOC_TUNING=0`` to leave the allocator alone. Returns whether it applied.
    """
    import ctypes
    import os
    import sys

    if os.environ.get("EMBER_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")  # glibc; elsewhere this fails and nothing changes
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = mallopt(m_mmap_threshold, 32 * 1024 * 1024) == 1
    return bool(mallopt(m_trim_threshold, 256 * 1024 * 1024) == 1 and ok)


@lru_cache(maxsize=64)
def ones_vector(n: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of ``n`` ones (cached): BLAS sums rows and columns with it."""
    a = np.ones(n, dtype)
    a.flags.writeable = False
    return a


#: the float dtypes BLAS and the compiled kernels (``ops.native``) work in
BLAS_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def column_sums(a: np.ndarray) -> np.ndarray:
    """Sums over the rows of a 2-D array (a bias gradient), as one BLAS matrix-vector product
    with a ones vector when the array allows (NumPy's ``sum(0)`` otherwise)."""
    if a.dtype not in BLAS_FLOATS or not a.flags.c_contiguous or not a.size:
        return a.sum(0)
    return ones_vector(a.shape[0], a.dtype) @ a


def channel_sums(g: np.ndarray) -> np.ndarray:
    """Sums of ``g`` (N, C, *S) over every axis but 1 (a conv bias gradient), shape (C,).

    One BLAS matrix-vector product over the batch, then a small sum: NumPy's own reduction
    over axes (0, 2, ...) of a (100, 25, 20) array took 10x as long here.
    """
    if g.dtype not in BLAS_FLOATS or not g.flags.c_contiguous or g.ndim < 2 or not g.size:
        return g.sum((0,) + tuple(range(2, g.ndim)))
    return column_sums(g.reshape(g.shape[0], -1)).reshape(g.shape[1], -1).sum(1)
