"""Binary elementwise ops with NumPy broadcasting: arithmetic, comparisons, logic, where, clamp.

Matches: ``torch.add/sub/mul/div/floor_divide/remainder/pow/maximum/minimum/where/clamp``,
the comparison and logical ops, with PyTorch's type promotion (see :mod:`.dtypes`).

Broadcasting backward: an input that was broadcast receives the gradient summed over the
broadcast dimensions (:func:`sum_to`), so every gradient has its input's shape.
"""

from __future__ import annotations

import math

import numpy as np

from . import dtypes as dt
from .base import NO_ATTRS, NULL_CTX, Primitive, TensorBase, call, dtype_of, shape_of
from .reduce import sum_to

__all__ = ["check_broadcast", "promote", "cast", "add", "sub", "subtract", "mul", "multiply",
           "div", "true_divide", "divide", "floor_divide", "remainder", "pow", "float_power",
           "maximum", "minimum", "where", "clamp", "clip", "eq", "ne", "lt", "le", "gt", "ge",
           "greater", "greater_equal", "less", "less_equal", "not_equal", "logical_and",
           "logical_or", "logical_xor", "logical_not", "bitwise_not", "equal", "allclose",
           "isclose"]



_QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore", "under": "ignore"}


def _as_scalar(x):
    """NumPy scalars behave like Python numbers in promotion (as in PyTorch)."""
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (list, tuple)):
        raise TypeError(f"expected a tensor or a number, got a {type(x).__name__}; "
                        f"wrap it with ember.tensor(...)")
    return x


def _broadcast_error(op: str, *shapes) -> RuntimeError:
    listed = " and ".join(str(tuple(s)) for s in shapes)
    return RuntimeError(f"{op}: shapes {listed} cannot be broadcast together (each dim, aligned "
                        f"from the right, must be equal or 1)")


def check_broadcast(op: str, *operands) -> None:
    """Raise a clear error naming ``op`` and the shapes when ``operands`` do not broadcast."""
    shapes = [shape_of(x) for x in operands if x is not None]
    if all(s == shapes[0] for s in shapes[1:]):
        return
    if len(shapes) == 2 and all(x == y or x == 1 or y == 1
                                for x, y in zip(reversed(shapes[0]), reversed(shapes[1]))):
        return  # the common case, without np.broadcast_shapes' overhead
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise _broadcast_error(op, *shapes) from None


def _weak_scalar(x, rt):
    """A Python int mixed with an integer tensor wraps around into its dtype (as in PyTorch)."""
    if isinstance(x, int) and not isinstance(x, bool) and rt.kind in "iu":
        return np.asarray(x).astype(rt)
    return x


def promote(a, b, op: str, float_only: bool = False, broadcast: bool = True):
    """Cast ``a`` and ``b`` to their PyTorch result type (Python scalars stay weak).

    With ``broadcast`` (the default), also check that the shapes broadcast together.
    """
    xa = a._data if isinstance(a, TensorBase) else a
    xb = b._data if isinstance(b, TensorBase) else b
    if (type(xa) is np.ndarray and type(xb) is np.ndarray and xa.dtype is xb.dtype
            and xa.shape == xb.shape and not (float_only and xa.dtype.kind != "f")):
        return a, b  # the common case: same dtype, same shape
    da, db = dtype_of(a), dtype_of(b)
    if broadcast and da is not None and db is not None:
        sa, sb = shape_of(a), shape_of(b)
        if sa != sb:
            check_broadcast(op, a, b)
    if da is not None and da is db and not (float_only and da.kind != "f"):
        return a, b
    # float tensor with a Python number: the weak scalar keeps the tensor's dtype
    if db is None and da is not None and da.kind == "f" and type(b) in (float, int):
        return a, b
    if da is None and db is not None and db.kind == "f" and type(a) in (float, int):
        return a, b
    if da is None:
        a = _as_scalar(a)
    if db is None:
        b = _as_scalar(b)
    dims, zero = [], []
    for d, x in ((da, a), (db, b)):
        if d is not None:
            (zero if len(shape_of(x)) == 0 else dims).append(d)
    try:
        rt = dt.result_type(*dims, *(x for d, x in ((da, a), (db, b)) if d is None),
                            zero_dim=zero)
    except TypeError as e:
        raise TypeError(f"{op}: {e}") from None
    if float_only and rt.kind != "f":
        rt = dt.DEFAULT_FLOAT
    if da is not None:
        if da != rt:
            a = cast(a, rt)
    else:
        a = _weak_scalar(a, rt)
    if db is not None:
        if db != rt:
            b = cast(b, rt)
    else:
        b = _weak_scalar(b, rt)
    return a, b


class Cast(Primitive):
    """Convert to another dtype; the gradient is converted back."""

    @staticmethod
    def forward(ctx, x, dtype):
        ctx.in_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return cast(g, ctx.in_dtype) if ctx.in_dtype.kind == "f" else None


def cast(x, dtype):
    """``x`` converted to NumPy dtype ``dtype`` (no copy when it already has it)."""
    if dtype_of(x) == dtype:
        return x
    if dtype_of(x) is None:
        return np.asarray(x, dtype=dtype)
    return call(Cast, x, dtype=dtype)


class Add(Primitive):
    @staticmethod
    def forward(ctx, a, b, alpha=1):
        if ctx is not NULL_CTX:  # (a no-grad call keeps nothing)
            ctx.shapes = (shape_of(a), shape_of(b))
            ctx.alpha = alpha
        return np.add(a, b) if alpha == 1 else np.add(a, np.multiply(b, alpha))

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        need = ctx.needs_input_grad
        gb = None
        if need[1]:
            gb = sum_to(g if ctx.alpha == 1 else g * ctx.alpha, sb)
        return (sum_to(g, sa) if need[0] else None), gb


class Sub(Primitive):
    @staticmethod
    def forward(ctx, a, b, alpha=1):
        if ctx is not NULL_CTX:  # (a no-grad call keeps nothing)
            ctx.shapes = (shape_of(a), shape_of(b))
            ctx.alpha = alpha
        return np.subtract(a, b) if alpha == 1 else np.subtract(a, np.multiply(b, alpha))

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        need = ctx.needs_input_grad
        gb = None
        if need[1]:
            gb = sum_to(-g if ctx.alpha == 1 else g * -ctx.alpha, sb)
        return (sum_to(g, sa) if need[0] else None), gb


class Mul(Primitive):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        need = ctx.needs_input_grad
        return (sum_to(g * b, shape_of(a)) if need[0] else None,
                sum_to(g * a, shape_of(b)) if need[1] else None)


class Div(Primitive):
    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.true_divide(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        ga = g / b
        need = ctx.needs_input_grad
        return (sum_to(ga, shape_of(a)) if need[0] else None,
                sum_to(-ga * a / b, shape_of(b)) if need[1] else None)


class FloorDivide(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.floor_divide(a, b)


class TruncDivide(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.true_divide(a, b)
            return np.trunc(q).astype(np.result_type(a, b)) if np.ndim(q) else \
                np.asarray(np.trunc(q)).astype(np.result_type(a, b))


class Remainder(Primitive):
    """Python-style modulo (sign of the divisor); d/da = 1, d/db = -floor(a / b)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.remainder(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return sum_to(g, shape_of(a)), sum_to(-g * floor(div(a, b)), shape_of(b))


class Pow(Primitive):
    """``a ** b``. Convention: d/db is 0 where a == 0 and b >= 0 (as in PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = np.power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved
        if isinstance(b, (int, float)):
            if b == 0:
                return g * 0, None
            if b == 1:
                return g, None
            if b == 2:
                return g * a * 2, None
            return g * b * a ** (b - 1), None
        ga = None
        if not isinstance(a, (int, float)):
            # d/da = b * a^(b-1), taken as 0 where b == 0 (even at a == 0, as PyTorch)
            ga = sum_to(where(eq(b, 0), 0.0, g * b * a ** (b - 1)), shape_of(a))
        if isinstance(a, (int, float)) and a > 0:
            return ga, sum_to(g * out * math.log(a), shape_of(b))
        logs = where(logical_and(eq(a, 0), ge(b, 0)), 0.0, out * log(a))
        return ga, sum_to(g * logs, shape_of(b))


class Maximum(Primitive):
    """Elementwise max; at ties the gradient is split evenly (as in PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.wa = np.where(np.greater(a, b), 1.0, np.where(np.equal(a, b), 0.5, 0.0)).astype(
            np.result_type(a, b))
        ctx.shapes = (shape_of(a), shape_of(b))
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        ga = g * ctx.wa
        return sum_to(ga, ctx.shapes[0]), sum_to(g - ga, ctx.shapes[1])


class Minimum(Maximum):
    """Elementwise min; at ties the gradient is split evenly (as in PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.wa = np.where(np.less(a, b), 1.0, np.where(np.equal(a, b), 0.5, 0.0)).astype(
            np.result_type(a, b))
        ctx.shapes = (shape_of(a), shape_of(b))
        return np.minimum(a, b)


class Where(Primitive):
    """``cond ? a : b``; each branch gets the gradient where it was chosen."""

    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond = cond
        ctx.shapes = (shape_of(a), shape_of(b))
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        zero = g * 0
        return (None, sum_to(where(ctx.cond, g, zero), sa),
                sum_to(where(ctx.cond, zero, g), sb))


class Clamp(Primitive):
    """Clamp into [lo, hi] (``min(max(x, lo), hi)``), with PyTorch's gradient routing.

    x gets the gradient where lo <= x <= hi (inclusive); lo where x < lo < hi; hi where x > hi
    or lo > hi (then the output is hi everywhere).
    """

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.shapes = (np.shape(x), np.shape(lo), np.shape(hi))
        ctx.arrays = (isinstance(lo, np.ndarray), isinstance(hi, np.ndarray))
        keep = np.ones(np.shape(x), dtype=bool)
        if lo is not None:
            keep = keep & np.greater_equal(x, lo)
            below = np.less(x, lo)
            ctx.below = below if hi is None else below & np.less(lo, hi)
        if hi is not None:
            keep = keep & np.less_equal(x, hi)
            above = np.greater(x, hi)
            ctx.above = above if lo is None else above | np.greater(lo, hi)
        ctx.keep = keep
        out = x
        if lo is not None:
            out = np.maximum(out, lo)
        if hi is not None:
            out = np.minimum(out, hi)
        return np.asarray(out, dtype=np.result_type(x))

    @staticmethod
    def backward(ctx, g):
        zero = g * 0
        gx = sum_to(where(ctx.keep, g, zero), ctx.shapes[0])
        glo = ghi = None
        if ctx.arrays[0]:
            glo = sum_to(where(ctx.below, g, zero), ctx.shapes[1])
        if ctx.arrays[1]:
            ghi = sum_to(where(ctx.above, g, zero), ctx.shapes[2])
        return gx, glo, ghi


class _Compare(Primitive):
    differentiable = False
    fn = None

    @classmethod
    def forward(cls, ctx, a, b):
        return cls.fn(a, b)


def _compare_primitive(name: str, fn):
    return type(name, (_Compare,), {"fn": staticmethod(fn), "__doc__": f"Elementwise {name}."})


Eq = _compare_primitive("Eq", np.equal)
Ne = _compare_primitive("Ne", np.not_equal)
Lt = _compare_primitive("Lt", np.less)
Le = _compare_primitive("Le", np.less_equal)
Gt = _compare_primitive("Gt", np.greater)
Ge = _compare_primitive("Ge", np.greater_equal)
LogicalAnd = _compare_primitive("LogicalAnd", np.logical_and)
LogicalOr = _compare_primitive("LogicalOr", np.logical_or)
LogicalXor = _compare_primitive("LogicalXor", np.logical_xor)


class BitwiseNot(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x):
        return np.logical_not(x) if x.dtype == np.bool_ else np.invert(x)


class LogicalNot(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x):
        return np.logical_not(x)


# ---------------------------------------------------------------------------- public functions
def add(input, other, *, alpha=1):
    """``input + alpha * other`` with broadcasting. Matches ``torch.add``."""
    if alpha == 1 and isinstance(input, TensorBase) and isinstance(other, TensorBase):
        xa, xb = input._data, other._data
        if xa.dtype is xb.dtype and xa.shape == xb.shape:  # nothing to promote or broadcast
            return input._apply_primitive(Add, (input, other), NO_ATTRS)
    a, b = promote(input, other, "add")
    return call(Add, a, b, alpha=alpha)


def sub(input, other, *, alpha=1):
    """``input - alpha * other`` with broadcasting. Matches ``torch.sub``."""
    a, b = promote(input, other, "sub")
    if dtype_of(a) == np.bool_ and dtype_of(b) == np.bool_:
        raise TypeError("sub: subtraction of two bool tensors is not supported; use "
                        "logical_xor (^) instead")
    return call(Sub, a, b, alpha=alpha)


subtract = sub


def mul(input, other):
    """Elementwise product with broadcasting. Matches ``torch.mul``."""
    a, b = promote(input, other, "mul")
    return call(Mul, a, b)


multiply = mul


def div(input, other, *, rounding_mode=None):
    """Division: true (default, float result), ``"floor"`` or ``"trunc"``. Matches ``torch.div``."""
    if rounding_mode is None:
        a, b = promote(input, other, "div", float_only=True)
        return call(Div, a, b)
    a, b = promote(input, other, "div")
    if rounding_mode == "floor":
        return call(FloorDivide, a, b)
    if rounding_mode == "trunc":
        return call(TruncDivide, a, b)
    raise ValueError(f"div: rounding_mode must be None, 'floor' or 'trunc', got {rounding_mode!r}")


true_divide = divide = div


def floor_divide(input, other):
    """Division rounded toward minus infinity (no gradient). Matches ``torch.floor_divide``."""
    a, b = promote(input, other, "floor_divide")
    return call(FloorDivide, a, b)


def remainder(input, other):
    """Modulo with the sign of the divisor (Python's %). Matches ``torch.remainder``."""
    a, b = promote(input, other, "remainder")
    return call(Remainder, a, b)


def pow(input, exponent):  # noqa: A001 - PyTorch's name
    """``input ** exponent`` elementwise. Matches ``torch.pow``."""
    if dtype_of(exponent) is None:
        exponent = _as_scalar(exponent)
        if isinstance(exponent, int) and not isinstance(exponent, bool) and exponent < 0 and \
                dtype_of(input) is not None and dtype_of(input).kind != "f":
            raise RuntimeError("pow: integers to negative integer powers are not allowed")
    a, b = promote(input, exponent, "pow")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a ** b
    return call(Pow, a, b)


float_power = pow


def maximum(input, other):
    """Elementwise maximum. Matches ``torch.maximum``."""
    a, b = promote(input, other, "maximum")
    return call(Maximum, a, b)


def minimum(input, other):
    """Elementwise minimum. Matches ``torch.minimum``."""
    a, b = promote(input, other, "minimum")
    return call(Minimum, a, b)


def where(condition, input=None, other=None):
    """``input`` where ``condition`` else ``other``. Matches ``torch.where``.

    With only ``condition``, returns the indices of its nonzero elements (like ``nonzero``).
    """
    if input is None and other is None:
        from .indexing import nonzero

        return nonzero(condition, as_tuple=True)
    c = condition
    if dtype_of(c) is not None and dtype_of(c) != np.bool_:
        c = cast(c, np.dtype(bool))
    a, b = promote(input, other, "where")
    sc = shape_of(c)
    if sc != shape_of(a) or sc != shape_of(b):
        check_broadcast("where", c, a, b)
    return call(Where, c, a, b)


def clamp(input, min=None, max=None):  # noqa: A002 - PyTorch's argument names
    """Clamp every element into ``[min, max]``. Matches ``torch.clamp``."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    lo = min if min is None or isinstance(min, TensorBase) else _as_scalar(min)
    hi = max if max is None or isinstance(max, TensorBase) else _as_scalar(max)
    x = input
    for bound in (lo, hi):
        if bound is not None:
            x, _ = promote(x, bound, "clamp")
    d = dtype_of(x)
    lo = cast(lo, d) if isinstance(lo, TensorBase) else lo
    hi = cast(hi, d) if isinstance(hi, TensorBase) else hi
    return call(Clamp, x, lo, hi)


clip = clamp


def _compare(prim, name):
    def fn(input, other):
        a, b = promote(input, other, name)
        return call(prim, a, b)

    fn.__name__ = name
    fn.__doc__ = (f"Elementwise ``{name}`` comparison giving a bool tensor. "
                  f"Matches ``torch.{name}``.")
    return fn


eq = _compare(Eq, "eq")
ne = _compare(Ne, "ne")
lt = _compare(Lt, "lt")
le = _compare(Le, "le")
gt = _compare(Gt, "gt")
ge = _compare(Ge, "ge")
greater, greater_equal, less, less_equal, not_equal = gt, ge, lt, le, ne
logical_and = _compare(LogicalAnd, "logical_and")
logical_or = _compare(LogicalOr, "logical_or")
logical_xor = _compare(LogicalXor, "logical_xor")


def logical_not(input):
    """Elementwise not, giving a bool tensor. Matches ``torch.logical_not``."""
    return call(LogicalNot, input)


def bitwise_not(input):
    """``~x``: logical not for bool tensors, bitwise not for integers."""
    if dtype_of(input) is not None and dtype_of(input).kind == "f":
        raise TypeError("bitwise_not (~): only bool and integer tensors are supported, "
                        f"got {dtype_of(input)}")
    return call(BitwiseNot, input)


def equal(input, other) -> bool:
    """True if both have the same shape and elements. Matches ``torch.equal``."""
    a, b = input._data if isinstance(input, TensorBase) else input, \
        other._data if isinstance(other, TensorBase) else other
    return bool(np.shape(a) == np.shape(b) and np.array_equal(a, b))


def allclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
    """Matches ``torch.allclose``."""
    a = input._data if isinstance(input, TensorBase) else input
    b = other._data if isinstance(other, TensorBase) else other
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


def isclose(input, other, rtol=1e-5, atol=1e-8, equal_nan=False):
    """Matches ``torch.isclose`` (bool tensor, no gradient)."""
    return call(IsClose, input, other, rtol=rtol, atol=atol, equal_nan=equal_nan)


class IsClose(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, a, b, rtol, atol, equal_nan):
        return np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan)


# imported at the end: these modules use the functions above in their backward formulas
from .unary import floor, log  # noqa: E402
