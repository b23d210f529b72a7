"""Unary elementwise math: exp/log family, powers, trigonometry, rounding, tests for NaN/Inf.

Matches: the ``torch`` functions of the same names. Integer and bool inputs of the float
functions are computed in float32, as PyTorch does.

Each primitive's backward is written with the ops functions, so it is differentiable again.
Conventions at kinks follow PyTorch: d|x|/dx = sign(x) (0 at 0); sign, floor, ceil, round and
trunc have zero gradient.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import dtypes as dt
from .base import Primitive, call, dtype_of

__all__ = ["erf_array", "erf_numpy", "neg", "negative", "abs", "absolute", "sign", "exp", "expm1",
           "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "reciprocal", "square", "sin", "cos",
           "tan", "tanh", "sigmoid", "erf", "floor", "ceil", "trunc", "fix", "isnan", "isinf",
           "isfinite", "isposinf", "isneginf", "round", "nan_to_num", "erfc"]


_QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore", "under": "ignore"}


def _quiet(fn):
    """Run a backward formula without NumPy warnings: inf/nan gradients come silently, as in
    PyTorch (d log(x) at 0 is inf)."""

    @functools.wraps(fn)
    def wrapper(ctx, g):
        with np.errstate(**_QUIET):
            return fn(ctx, g)

    return wrapper


def _floatify(x):
    """Integer/bool inputs of float-valued functions become float32 (PyTorch's rule)."""
    if isinstance(x, np.generic):  # NumPy scalars (from 0-d array math) keep their dtype
        x = np.asarray(x)
    d = dtype_of(x)
    if d is None:
        return np.asarray(x, dtype=dt.DEFAULT_FLOAT)
    if d.kind != "f":
        from .binary import cast

        return cast(x, dt.DEFAULT_FLOAT)
    return x


class Neg(Primitive):
    @staticmethod
    def forward(ctx, x):
        return np.negative(x)

    @staticmethod
    def backward(ctx, g):
        return -g


class Abs(Primitive):
    @staticmethod
    def forward(ctx, x):
        ctx.sign = np.sign(x)
        return np.abs(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.sign


class Sign(Primitive):
    differentiable = False

    @staticmethod
    def forward(ctx, x):
        return np.sign(x) if x.dtype != np.bool_ else x.copy()


class Exp(Primitive):
    @staticmethod
    def forward(ctx, x):
        with np.errstate(**_QUIET):
            y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y


class Expm1(Primitive):
    @staticmethod
    def forward(ctx, x):
        with np.errstate(**_QUIET):
            y = np.expm1(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (y + 1)


class Log(Primitive):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(**_QUIET):
            return np.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / x


class Log1p(Primitive):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(**_QUIET):
            return np.log1p(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (x + 1)


class Log2(Primitive):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(**_QUIET):
            return np.log2(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (x * math.log(2.0))


class Log10(Primitive):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(**_QUIET):
            return np.log10(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (x * math.log(10.0))


class Sqrt(Primitive):
    @staticmethod
    def forward(ctx, x):
        with np.errstate(**_QUIET):
            y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g / (y * 2)


class Rsqrt(Primitive):
    """1 / sqrt(x); d/dx = -0.5 * y**3."""

    @staticmethod
    def forward(ctx, x):
        with np.errstate(**_QUIET):
            y = 1.0 / np.sqrt(x)
        ctx.save_for_backward(y)
        return y.astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (y * y * y) * -0.5


class Reciprocal(Primitive):
    @staticmethod
    def forward(ctx, x):
        with np.errstate(**_QUIET):
            y = np.reciprocal(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return -g * y * y


class Square(Primitive):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(**_QUIET):
            return np.square(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * x * 2


class Sin(Primitive):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(**_QUIET):
            return np.sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * cos(x)


class Cos(Primitive):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        with np.errstate(**_QUIET):
            return np.cos(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return -g * sin(x)


class Tan(Primitive):
    @staticmethod
    def forward(ctx, x):
        with np.errstate(**_QUIET):
            y = np.tan(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (y * y + 1)


class Tanh(Primitive):
    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (1 - y * y)


class Sigmoid(Primitive):
    """1 / (1 + exp(-x)), computed without overflow for any finite x."""

    @staticmethod
    def forward(ctx, x):
        with np.errstate(**_QUIET):
            e = np.exp(-np.abs(x))
            r = 1.0 / (1.0 + e)  # sigmoid(|x|)
            y = np.where(x >= 0, r, e * r).astype(x.dtype, copy=False)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (y * (1 - y))


class Erf(Primitive):
    """The error function; d/dx erf(x) = 2/sqrt(pi) * exp(-x^2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return erf_array(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * exp(-(x * x)) * (2.0 / math.sqrt(math.pi))


class _NoGrad(Primitive):
    differentiable = False
    fn = None

    @classmethod
    def forward(cls, ctx, x):
        return cls.fn(x)


def _nograd_primitive(name: str, fn):
    return type(name, (_NoGrad,), {"fn": staticmethod(fn)})


Floor = _nograd_primitive("Floor", np.floor)
Ceil = _nograd_primitive("Ceil", np.ceil)
Trunc = _nograd_primitive("Trunc", np.trunc)
IsNan = _nograd_primitive("IsNan", np.isnan)
IsInf = _nograd_primitive("IsInf", np.isinf)
IsFinite = _nograd_primitive("IsFinite", np.isfinite)
IsPosInf = _nograd_primitive("IsPosInf", np.isposinf)
IsNegInf = _nograd_primitive("IsNegInf", np.isneginf)


class Round(Primitive):
    """Round half to even (as ``torch.round``); ``decimals`` rounds to that many places."""

    differentiable = False

    @staticmethod
    def forward(ctx, x, decimals=0):
        return np.round(x, decimals)


class NanToNum(Primitive):
    @staticmethod
    def forward(ctx, x, nan, posinf, neginf):
        ctx.finite = np.isfinite(x)
        return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    @staticmethod
    def backward(ctx, g):
        from .binary import where

        return where(ctx.finite, g, g * 0)


# ---------------------------------------------------------------------------- erf without SciPy
_SCIPY_ERF = None


def erf_array(x: np.ndarray) -> np.ndarray:
    """erf elementwise: SciPy's when installed, else :func:`erf_numpy` (same precision class)."""
    global _SCIPY_ERF
    if _SCIPY_ERF is None:
        try:
            from scipy.special import erf as scipy_erf

            _SCIPY_ERF = scipy_erf
        except ImportError:
            _SCIPY_ERF = False
    if _SCIPY_ERF:
        return np.asarray(_SCIPY_ERF(x)).astype(x.dtype, copy=False)
    return erf_numpy(x)


def erf_numpy(x: np.ndarray) -> np.ndarray:
    """erf in pure NumPy, accurate to about 1e-15 (float64).

    erf(x) = P(1/2, x^2), the regularized lower incomplete gamma function: its power series
    converges fast for x^2 < 2.5; above that, the complement Q(1/2, x^2) = erfc(|x|) comes from
    the Lentz continued fraction. A fixed number of terms keeps it vectorized.
    """
    with np.errstate(**_QUIET):
        return _erf_numpy(x)


def _erf_numpy(x):
    # beyond |x| = 7, erf is +-1 to far below float64 precision (erfc(7) ~ 4e-23)
    x64 = np.clip(np.asarray(x, dtype=np.float64), -7.0, 7.0)
    z = x64 * x64
    small = z < 2.5
    out = np.empty_like(x64)
    zs = z[small]
    # series: P(a, z) = exp(-z) z^a / Gamma(a+1) * sum_n z^n / ((a+1)...(a+n)), a = 1/2
    term = np.ones_like(zs)
    total = np.ones_like(zs)
    for n in range(1, 60):
        term = term * zs / (0.5 + n)
        total = total + term
    pref = np.exp(-zs) * np.sqrt(zs) / math.gamma(1.5)
    out[small] = np.sign(x64[small]) * pref * total
    zl = z[~small]
    # continued fraction for Q(a, z), modified Lentz
    tiny = 1e-300
    b = zl + 1.0 - 0.5
    c = np.full_like(zl, 1.0 / tiny)
    d = 1.0 / b
    h = d.copy()
    for i in range(1, 80):
        an = -i * (i - 0.5)
        b = b + 2.0
        d = an * d + b
        d = np.where(np.abs(d) < tiny, tiny, d)
        c = b + an / c
        c = np.where(np.abs(c) < tiny, tiny, c)
        d = 1.0 / d
        h = h * d * c
    q = np.exp(-zl) * np.sqrt(zl) * h / math.sqrt(math.pi)
    out[~small] = np.sign(x64[~small]) * (1.0 - q)
    return out.astype(np.result_type(x), copy=False) if np.ndim(x) else out.astype(
        np.result_type(x))


# ---------------------------------------------------------------------------- public functions
def _unary(prim, name: str, floating: bool = True):
    def fn(input):
        return call(prim, _floatify(input) if floating else input)

    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{name}``. Matches ``torch.{name}``."
    return fn


neg = _unary(Neg, "neg", floating=False)
negative = neg
abs = _unary(Abs, "abs", floating=False)  # noqa: A001
absolute = abs
sign = _unary(Sign, "sign", floating=False)
exp = _unary(Exp, "exp")
expm1 = _unary(Expm1, "expm1")
log = _unary(Log, "log")
log1p = _unary(Log1p, "log1p")
log2 = _unary(Log2, "log2")
log10 = _unary(Log10, "log10")
sqrt = _unary(Sqrt, "sqrt")
rsqrt = _unary(Rsqrt, "rsqrt")
reciprocal = _unary(Reciprocal, "reciprocal")
square = _unary(Square, "square", floating=False)
sin = _unary(Sin, "sin")
cos = _unary(Cos, "cos")
tan = _unary(Tan, "tan")
tanh = _unary(Tanh, "tanh")
sigmoid = _unary(Sigmoid, "sigmoid")
erf = _unary(Erf, "erf")
floor = _unary(Floor, "floor", floating=False)
ceil = _unary(Ceil, "ceil", floating=False)
trunc = _unary(Trunc, "trunc", floating=False)
fix = trunc
isnan = _unary(IsNan, "isnan", floating=False)
isinf = _unary(IsInf, "isinf", floating=False)
isfinite = _unary(IsFinite, "isfinite", floating=False)
isposinf = _unary(IsPosInf, "isposinf", floating=False)
isneginf = _unary(IsNegInf, "isneginf", floating=False)


def round(input, *, decimals: int = 0):  # noqa: A001
    """Round half to even (no gradient). Matches ``torch.round``."""
    return call(Round, input, decimals=decimals)


def nan_to_num(input, nan: float = 0.0, posinf=None, neginf=None):
    """Replace NaN and infinities with finite numbers. Matches ``torch.nan_to_num``."""
    return call(NanToNum, input, nan=nan, posinf=posinf, neginf=neginf)


def erfc(input):
    """1 - erf(x). Matches ``torch.erfc``."""
    return 1 - erf(input)
