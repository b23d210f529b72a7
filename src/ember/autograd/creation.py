"""Tensor creation: ``tensor``, ``from_numpy``, ``zeros``, ``ones``, ``full``, ``arange`` ...

Matches: the ``torch`` functions of the same names (float32 by default for floats, int64 for
integers; ``device`` accepts only "cpu").
"""

from __future__ import annotations

import functools
import re

import numpy as np

from .. import ops
from ..ops import dtypes as _dt
from .tensor import Tensor, check_device

_NAMED = re.compile(r"[\w.]+: ")  # a message that already names its op


def _named(fn):
    """Prefix errors raised while creating a tensor with the creation function's name."""
    op = fn.__name__

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (TypeError, ValueError, RuntimeError) as e:
            msg = str(e)
            if _NAMED.match(msg) or type(e) not in (TypeError, ValueError, RuntimeError):
                raise
            raise type(e)(f"{op}: {msg}") from None

    return wrapper


def _to_array(data, dtype=None) -> np.ndarray:
    """Build an array from nested lists, numbers, arrays or tensors, inferring like PyTorch."""
    npd = _dt.as_np_dtype(dtype)
    if isinstance(data, Tensor):
        arr = data._data
    elif isinstance(data, (list, tuple)):
        data = _unwrap_nested(data)
        arr = np.array(data)
        if arr.dtype == object:
            raise ValueError("tensor: nested sequences must be rectangular and hold numbers")
        if npd is None and arr.dtype.kind == "f":
            arr = arr.astype(_dt.DEFAULT_FLOAT)
    elif isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, (bool, int, float, np.generic)):
        arr = np.array(data)
        if npd is None and isinstance(data, float) and not isinstance(data, np.floating):
            arr = arr.astype(_dt.DEFAULT_FLOAT)
    else:
        raise TypeError(f"tensor: cannot build a tensor from {type(data).__name__}; expected a "
                        f"number, a (nested) list or tuple of numbers, or a NumPy array")
    if arr.dtype.kind in "iu" and npd is None and arr.dtype != _dt.DEFAULT_INT and \
            not isinstance(data, np.ndarray):
        arr = arr.astype(_dt.DEFAULT_INT)
    if npd is not None and arr.dtype != npd:
        arr = arr.astype(npd)
    if arr.dtype not in _dt.FROM_NP:
        raise TypeError(f"tensor: NumPy dtype {arr.dtype} is not supported; expected one of "
                        f"{', '.join(repr(d) for d in _dt.ALL)}")
    return arr


def _unwrap_nested(data):
    if isinstance(data, Tensor):
        return data._data
    if isinstance(data, (list, tuple)):
        return [_unwrap_nested(d) for d in data]
    return data


def _finish(arr, requires_grad: bool, device) -> Tensor:
    if device is not None:
        check_device(device)
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


@_named
def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``. Matches ``torch.tensor``.

    Example:
        >>> import ember
        >>> ember.tensor([[1, 2], [3, 4]]).dtype
        ember.int64
    """
    arr = _to_array(data, dtype)
    if isinstance(data, (np.ndarray, Tensor)) and arr is (data._data if isinstance(data, Tensor)
                                                          else data):
        arr = arr.copy()
    return _finish(arr, requires_grad, device)


@_named
def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like :func:`tensor` but shares memory with a NumPy array or tensor when it can."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == _dt.as_dtype(dtype)):
        return data
    return _finish(_to_array(data, dtype), False, device)


@_named
def from_numpy(ndarray: np.ndarray) -> Tensor:
    """A tensor sharing memory with ``ndarray`` (no copy). Matches ``torch.from_numpy``."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy: expected a NumPy array, got {type(ndarray).__name__}")
    _dt.from_np(ndarray.dtype, "from_numpy")
    return Tensor._make(ndarray)


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise TypeError(f"expected a shape of ints, got {size!r}")
        if s < 0:
            raise RuntimeError(f"negative dimension {s} in shape {tuple(size)}")
        out.append(int(s))
    return tuple(out)


def _float_dtype(dtype):
    return _dt.DEFAULT_FLOAT if dtype is None else _dt.as_np_dtype(dtype)


@_named
def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros. Matches ``torch.zeros``."""
    return _finish(ops.zeros_array(_size(size), _float_dtype(dtype)), requires_grad, device)


@_named
def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones. Matches ``torch.ones``."""
    return _finish(ops.ones_array(_size(size), _float_dtype(dtype)), requires_grad, device)


@_named
def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An uninitialized tensor (ember fills it with zeros). Matches ``torch.empty``."""
    return zeros(*size, dtype=dtype, device=device, requires_grad=requires_grad)


@_named
def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value`` (its dtype inferred like PyTorch). Matches torch.full."""
    if dtype is None:
        dtype = _to_array(fill_value).dtype
    arr = ops.zeros_array(_size((size,)), _dt.as_np_dtype(dtype))
    ops.fill_into(arr, fill_value)
    return _finish(arr, requires_grad, device)


def _like(fn, input, dtype, requires_grad, device, *args):
    return fn(*args, input.shape, dtype=input.dtype if dtype is None else dtype,
              requires_grad=requires_grad, device=device)


@_named
def zeros_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros(input.shape, dtype=input.dtype if dtype is None else dtype,
                 requires_grad=requires_grad, device=device)


@_named
def ones_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return ones(input.shape, dtype=input.dtype if dtype is None else dtype,
                requires_grad=requires_grad, device=device)


@_named
def empty_like(input, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return zeros_like(input, dtype=dtype, device=device, requires_grad=requires_grad)


@_named
def full_like(input, fill_value, *, dtype=None, device=None,
              requires_grad: bool = False) -> Tensor:
    return full(input.shape, fill_value, dtype=input.dtype if dtype is None else dtype,
                requires_grad=requires_grad, device=device)


@_named
def arange(start, end=None, step=1, *, dtype=None, device=None,
           requires_grad: bool = False) -> Tensor:
    """Values from ``start`` to ``end`` (exclusive) by ``step``. Matches ``torch.arange``."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise RuntimeError("arange: step must be nonzero")
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        dtype = _dt.DEFAULT_FLOAT if is_float else _dt.DEFAULT_INT
    arr = ops.arange_array(start, end, step, _dt.as_np_dtype(dtype))
    return _finish(arr, requires_grad, device)


@_named
def linspace(start, end, steps: int, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from ``start`` to ``end``. Matches ``torch.linspace``."""
    if steps < 0:
        raise RuntimeError(f"linspace: number of steps must be non-negative, got {steps}")
    arr = ops.linspace_array(start, end, steps, _float_dtype(dtype))
    return _finish(arr, requires_grad, device)


@_named
def logspace(start, end, steps: int, base: float = 10.0, *, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    arr = ops.linspace_array(start, end, steps, np.dtype(np.float64))
    return _finish((base ** arr).astype(_float_dtype(dtype)), requires_grad, device)


@_named
def eye(n: int, m: int | None = None, *, dtype=None, device=None,
        requires_grad: bool = False) -> Tensor:
    """The identity matrix (n x m). Matches ``torch.eye``."""
    return _finish(ops.eye_array(n, m, _float_dtype(dtype)), requires_grad, device)


@_named
def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1). Matches ``torch.rand``."""
    arr = ops.random.uniform(_size(size), 0.0, 1.0, _float_dtype(dtype), generator)
    return _finish(arr, requires_grad, device)


@_named
def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples. Matches ``torch.randn``."""
    arr = ops.random.normal(_size(size), 0.0, 1.0, _float_dtype(dtype), generator)
    return _finish(arr, requires_grad, device)


@_named
def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None,
            requires_grad: bool = False) -> Tensor:
    """Integers uniform in [low, high). Matches ``torch.randint(low=0, high, size)``."""
    if size is None:
        if not isinstance(high, (tuple, list)):
            raise TypeError("randint: expected randint(high, size) or randint(low, high, size)")
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    dt = _dt.DEFAULT_INT if dtype is None else _dt.as_np_dtype(dtype)
    arr = ops.random.randint(low, high, _size((size,)), dt, generator)
    return _finish(arr, requires_grad, device)


@_named
def randperm(n: int, *, generator=None, dtype=None, device=None) -> Tensor:
    """A random permutation of 0..n-1. Matches ``torch.randperm``."""
    dt = _dt.DEFAULT_INT if dtype is None else _dt.as_np_dtype(dtype)
    return _finish(ops.random.randperm(n, dt, generator), False, device)


@_named
def rand_like(input, *, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    return rand(input.shape, dtype=input.dtype if dtype is None else dtype,
                generator=generator, requires_grad=requires_grad)


@_named
def randn_like(input, *, dtype=None, generator=None, requires_grad: bool = False) -> Tensor:
    return randn(input.shape, dtype=input.dtype if dtype is None else dtype,
                 generator=generator, requires_grad=requires_grad)


@_named
def randint_like(input, low, high=None, *, dtype=None, generator=None) -> Tensor:
    return randint(low, high, input.shape, dtype=input.dtype if dtype is None else dtype,
                   generator=generator)


@_named
def bernoulli(input, p=None, *, generator=None) -> Tensor:
    """0/1 samples with probabilities ``input`` (or ``p``). Matches ``torch.bernoulli``."""
    probs = input._data if p is None else np.full(input.shape, p, dtype=input._data.dtype)
    return Tensor._make(ops.random.bernoulli_from(probs, generator))


@_named
def multinomial(input, num_samples: int, replacement: bool = False, *, generator=None) -> Tensor:
    """Sample indices from rows of (unnormalized) probabilities. Matches ``torch.multinomial``."""
    return Tensor._make(ops.random.multinomial(input._data, num_samples, replacement, generator))


@_named
def normal(mean, std, size=None, *, generator=None) -> Tensor:
    """Normal samples with the given mean and std (numbers or tensors). Matches ``torch.normal``."""
    m = mean._data if isinstance(mean, Tensor) else mean
    s = std._data if isinstance(std, Tensor) else std
    shape = size if size is not None else np.broadcast_shapes(np.shape(m), np.shape(s))
    z = ops.random.normal(tuple(shape), 0.0, 1.0, _dt.DEFAULT_FLOAT, generator)
    return Tensor._make((z * s + m).astype(_dt.DEFAULT_FLOAT if np.ndim(m) == 0 and
                                           np.ndim(s) == 0 else np.result_type(m, s, z)))
