"""ember's data types and PyTorch's type-promotion rules, mapped onto NumPy dtypes.

Matches: ``torch.float32`` & co. and ``torch.result_type``.

PyTorch and NumPy promote differently, and ember follows PyTorch:
- a Python scalar only raises the *category* (bool < integer < floating), never the width:
  ``int64 tensor * 2.5`` is float32 (the default float type), ``float32 tensor * 2.5`` stays
  float32;
- a 0-d tensor only decides the dtype when it is of a higher category than the tensors with dims:
  ``float32 tensor * float64 0-d tensor`` is float32;
- an integer tensor mixed with a float tensor takes the float tensor's dtype (NumPy would give
  float64);
- true division of integers gives the default float type (float32).
"""

from __future__ import annotations

import numpy as np

__all__ = ["dtype", "float16", "float32", "float64", "int8", "uint8", "int16", "int32", "int64",
           "bool_", "as_dtype", "as_np_dtype", "from_np", "category", "scalar_category",
           "result_type"]

class dtype:  # noqa: N801 - named like torch.dtype
    """A tensor element type: ``ember.float32``, ``ember.int64``, ``ember.bool`` ..."""

    __slots__ = ("name", "np", "is_floating_point", "itemsize", "_rank")

    def __init__(self, name: str, np_type, rank: int):
        self.name = name
        self.np = np.dtype(np_type)
        self.is_floating_point = self.np.kind == "f"
        self.itemsize = self.np.itemsize
        self._rank = rank  # category: 0 bool, 1 integer, 2 floating

    def __repr__(self) -> str:
        return f"ember.{self.name}"

    def __reduce__(self):  # dtypes are singletons
        return self.name


float16 = dtype("float16", np.float16, 2)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)
int8 = dtype("int8", np.int8, 1)
uint8 = dtype("uint8", np.uint8, 1)
int16 = dtype("int16", np.int16, 1)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
bool_ = dtype("bool", np.bool_, 0)

ALL = (float16, float32, float64, int8, uint8, int16, int32, int64, bool_)
FROM_NP = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "half": float16, "long": int64,
                 "int": int32, "short": int16, "bool_": bool_})
_PY_TYPES = {float: float32, int: int64, bool: bool_}

DEFAULT_FLOAT = np.dtype(np.float32)
DEFAULT_INT = np.dtype(np.int64)
F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)


def _names() -> str:
    return ", ".join(f"ember.{d.name}" for d in ALL)


def as_dtype(d) -> dtype:
    """Resolve ``d`` (an ember dtype, NumPy dtype, Python type or name) to an ember dtype."""
    if isinstance(d, dtype):
        return d
    found = None
    if isinstance(d, str):
        found = _BY_NAME.get(d.replace("ember.", "").replace("torch.", ""))
    elif d in _PY_TYPES:
        found = _PY_TYPES[d]
    else:
        try:
            found = FROM_NP.get(np.dtype(d))
        except TypeError:
            found = None
    if found is None:
        raise TypeError(f"unknown dtype {d!r}; expected one of {_names()}")
    return found


def as_np_dtype(d) -> np.dtype:
    """The NumPy dtype behind ``d`` (anything :func:`as_dtype` accepts); None stays None."""
    if d is None:
        return None
    if isinstance(d, dtype):
        return d.np
    return as_dtype(d).np


def from_np(npd: np.dtype, where: str = "tensor") -> dtype:
    found = FROM_NP.get(npd)
    if found is None:
        raise TypeError(f"{where}: NumPy dtype {npd} has no ember equivalent; expected one of "
                        f"{_names()}")
    return found


def category(npd: np.dtype) -> int:
    """0 for bool, 1 for integers, 2 for floating point."""
    k = npd.kind
    return 2 if k == "f" else (0 if k == "b" else 1)


def scalar_category(x) -> int:
    if isinstance(x, bool):
        return 0
    if isinstance(x, int):
        return 1
    if isinstance(x, float):
        return 2
    raise TypeError(f"expected a tensor or a Python number, got {type(x).__name__}")


def _promote_within(dtypes: list) -> np.dtype:
    """Promote dtypes the PyTorch way: the highest category wins, widths promote inside it."""
    top = max(category(d) for d in dtypes)
    same = [d for d in dtypes if category(d) == top]
    out = same[0]
    for d in same[1:]:
        if d != out:
            out = np.promote_types(out, d)
    return out


def result_type(*dtypes_and_scalars, zero_dim=()) -> np.dtype:
    """PyTorch's result type for NumPy dtypes (of tensors) and Python scalars.

    PyTorch ranks operands in three tiers: tensors with dims, then 0-d tensors (passed as
    ``zero_dim``), then Python scalars. A lower tier only matters when it is of a higher category
    (bool < integer < floating) than everything above it: a 0-d tensor then brings its own dtype,
    a scalar the default dtype of its category (``int64 tensor * 2.5`` is float32).
    """
    arrays = [d for d in dtypes_and_scalars if isinstance(d, np.dtype)]
    scalars = [s for s in dtypes_and_scalars if not isinstance(s, np.dtype)]
    zero_dim = list(zero_dim)
    if not arrays:
        arrays, zero_dim = zero_dim, []
    out = _promote_within(arrays) if arrays else None
    if zero_dim:
        z = _promote_within(zero_dim)
        if category(z) > category(out):
            out = z
    scal = max((scalar_category(s) for s in scalars), default=0)
    if out is None:
        return DEFAULT_FLOAT if scal == 2 else (DEFAULT_INT if scal == 1 else np.dtype(np.bool_))
    if scal > category(out):  # a scalar raises the category: take that category's default
        return DEFAULT_FLOAT if scal == 2 else DEFAULT_INT
    return out
