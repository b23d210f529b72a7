"""Activation functions and softmax: relu, leaky_relu, elu, gelu, silu, softplus, softmax ...

Matches: the ``torch.nn.functional`` functions of the same names, arguments and defaults
(``sigmoid`` and ``tanh`` live in :mod:`.unary`).

Design. Every activation is one fused primitive:

- *piecewise-linear* ones (relu, relu6, leaky_relu, hardtanh, threshold, hardsigmoid) keep a
  boolean mask; their backward ``where(mask, g, ...)`` is exact at every order;
- *smooth* ones (elu, gelu, silu, softplus ...) compute the derivative dy/dx in forward from the
  intermediates they already have (only when a backward will run), so an ordinary backward is a
  single multiply. Under ``create_graph=True`` the backward instead rebuilds the derivative with
  ops functions from the saved input/output, so that it is differentiable again.

Conventions at kinks follow PyTorch: relu'(0) = 0, leaky_relu'(0) = negative_slope,
elu'(0) = alpha, hardtanh/relu6/hardsigmoid have zero gradient at their bounds (exclusive),
threshold'(threshold) = 0, hardswish'(-3) = 0 and hardswish'(3) = 1.

``inplace=True`` is accepted for compatibility but ignored: these functions always return a new
tensor (use the tensor's in-place methods such as ``relu_()`` to modify one in place).

Stability: softplus, logsigmoid, softmax, log_softmax and mish never overflow for finite input
(softmax subtracts the row max; softplus/logsigmoid use ``max(x, 0) + log1p(exp(-|x|))``).
"""

from __future__ import annotations

import math

import numpy as np

from . import dtypes as dt
from . import native
from .arrays import BLAS_FLOATS
from .base import NO_ATTRS, NULL_CTX, Primitive, TensorBase, call, dtype_of, normalize_dim, shape_of

__all__ = [
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus",
    "hardtanh", "hardsigmoid", "hardswish", "logsigmoid", "softsign", "tanhshrink", "threshold",
    "hardshrink", "softshrink", "softmax", "log_softmax", "softmin", "glu",
]

_QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore", "under": "ignore"}

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


def _floatify(x, op: str):
    """Float inputs pass through; integer/bool ones become float32 (like ember's unary math)."""
    d = dtype_of(x)
    if d is None:
        if isinstance(x, (list, tuple)):
            raise TypeError(f"{op}: expected a tensor, got a {type(x).__name__}")
        return np.asarray(x, dtype=dt.DEFAULT_FLOAT)
    if d.kind != "f":
        return cast(x, dt.DEFAULT_FLOAT)
    return x


def _graph(g, x) -> bool:
    """True when backward runs under create_graph (tensors): use the differentiable formula."""
    return isinstance(g, TensorBase) or isinstance(x, TensorBase)


# ============================================================================ piecewise linear
class Relu(Primitive):
    """max(x, 0); the gradient at exactly 0 is 0 (PyTorch's convention)."""

    @staticmethod
    def forward(ctx, x):
        k = native.kernel("relu_fwd")
        if k is not None and x.dtype in BLAS_FLOATS and x.flags.c_contiguous:  # one compiled pass
            y = np.empty(x.shape, x.dtype)
            k(x, y)
        else:
            # against a zero *row* NumPy runs its vectorized loop (about twice as fast as
            # against the scalar 0); maximum propagates NaN, like PyTorch's relu (below ~2k
            # elements the call overhead dominates and the scalar form is cheaper)
            y = np.maximum(x, np.zeros(x.shape[-1:], x.dtype)) if x.size > 2048 else \
                np.maximum(x, 0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        k = native.kernel("relu_bwd")
        if (k is not None and type(g) is np.ndarray and g.dtype == y.dtype and g.shape == y.shape
                and g.dtype in BLAS_FLOATS and y.flags.c_contiguous):
            gx = np.empty_like(y)
            k(np.ascontiguousarray(g), y, gx)  # g where y > 0 (0 elsewhere, even for an inf g)
            return gx
        if type(g) is np.ndarray:  # 0 where the unit is off, even for an inf g (as PyTorch)
            gx = np.zeros(np.broadcast_shapes(g.shape, y.shape), g.dtype)
            np.copyto(gx, g, where=y > 0)
            return gx
        return g * (y > 0)  # recorded on tensors (create_graph)


class Hardtanh(Primitive):
    """clip(x, lo, hi); gradient 1 strictly inside (lo, hi), 0 at and beyond the bounds."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        if ctx is not NULL_CTX:
            ctx.mask = (x > lo) & (x < hi)
        return np.clip(x, lo, hi).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        return where(ctx.mask, g, 0.0)


class Threshold(Primitive):
    """x where x > threshold, else value; gradient 1 where x > threshold, else 0."""

    @staticmethod
    def forward(ctx, x, threshold, value):
        mask = x > threshold
        ctx.mask = mask
        return np.where(mask, x, np.asarray(value, dtype=x.dtype))

    @staticmethod
    def backward(ctx, g):
        return where(ctx.mask, g, 0.0)


class LeakyRelu(Primitive):
    """x for x > 0 else slope * x; the gradient at 0 is ``slope`` (PyTorch's convention)."""

    @staticmethod
    def forward(ctx, x, slope):
        mask = x > 0
        ctx.mask = mask
        ctx.slope = slope
        return np.where(mask, x, x * slope)

    @staticmethod
    def backward(ctx, g):
        return where(ctx.mask, g, g * ctx.slope)


class Hardsigmoid(Primitive):
    """relu6(x + 3) / 6; gradient 1/6 strictly inside (-3, 3)."""

    @staticmethod
    def forward(ctx, x):
        if ctx is not NULL_CTX:
            ctx.mask = (x > -3) & (x < 3)
        y = np.asarray(np.add(x, 3.0))
        np.clip(y, 0.0, 6.0, out=y)
        y *= 1.0 / 6.0
        return y

    @staticmethod
    def backward(ctx, g):
        return where(ctx.mask, g * (1.0 / 6.0), 0.0)


class Shrink(Primitive):
    """hardshrink (shift = 0) and softshrink (shift = lambd): zero inside [-lambd, lambd]."""

    @staticmethod
    def forward(ctx, x, lambd, soft):
        mask = (x > lambd) | (x < -lambd)
        ctx.mask = mask
        if soft:
            y = np.where(x > lambd, x - lambd, np.where(x < -lambd, x + lambd, 0))
            return y.astype(x.dtype, copy=False)
        return np.where(mask, x, 0).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        return where(ctx.mask, g, 0.0)


# ============================================================================ smooth
class _Smooth(Primitive):
    """Base of the smooth activations.

    Subclasses implement ``compute(x, need_d, *params) -> (y, d)`` in NumPy (``d`` = dy/dx, only
    computed when ``need_d``) and ``deriv(x, y, *params)`` with ops functions (used under
    create_graph). Parameters are passed positionally as ``params``.
    """

    @classmethod
    def forward(cls, ctx, x, params=()):
        need = ctx is not NULL_CTX
        with np.errstate(**_QUIET):
            y, d = cls.compute(x, need, *params)
        if type(y) is not np.ndarray:  # ufuncs return NumPy scalars for 0-d input
            y = np.asarray(y)
        if need:
            ctx.save_for_backward(x, y)
            ctx.d = d
            ctx.params = params
        return y

    @classmethod
    def backward(cls, ctx, g):
        x, y = ctx.saved
        if _graph(g, x):
            return g * cls.deriv(x, y, *ctx.params)
        return g * ctx.d


class Elu(_Smooth):
    """scale * (x if x > 0 else alpha * (exp(x * input_scale) - 1)); covers elu, selu, celu."""

    @staticmethod
    def compute(x, need_d, alpha, scale, input_scale):
        pos = x > 0
        e = np.expm1(np.minimum(x, 0) * input_scale)  # no overflow on the unused branch
        y = np.where(pos, x, e * alpha)
        if scale != 1:
            y *= scale
        d = None
        if need_d:
            d = np.where(pos, scale, (e + 1) * (alpha * scale * input_scale)).astype(x.dtype)
        return y, d

    @staticmethod
    def deriv(x, y, alpha, scale, input_scale):
        # x <= 0: scale*alpha*input_scale*exp(x*input_scale) = input_scale*(y + scale*alpha)
        return where(gt(x, 0), scale, (y + scale * alpha) * input_scale)


class Gelu(_Smooth):
    """x * Phi(x) (exact, with erf) or its tanh approximation."""

    @staticmethod
    def compute(x, need_d, approx):
        if approx:
            inner = (x + _GELU_C * x * x * x) * _SQRT_2_OVER_PI
            t = np.tanh(inner)
            half1t = (t + 1.0) * 0.5
            y = x * half1t
            d = None
            if need_d:
                d = half1t + (x * 0.5) * (1.0 - t * t) * _SQRT_2_OVER_PI * (
                    1.0 + 3.0 * _GELU_C * x * x)
            return y, d
        cdf = (erf_array(x * _INV_SQRT2) + 1.0) * 0.5
        y = x * cdf
        d = None
        if need_d:
            d = cdf + x * np.exp(x * x * -0.5) * _INV_SQRT_2PI
        return y, d

    @staticmethod
    def deriv(x, y, approx):
        if approx:
            t = tanh((x + x * x * x * _GELU_C) * _SQRT_2_OVER_PI)
            return (t + 1.0) * 0.5 + (x * 0.5) * (1.0 - t * t) * _SQRT_2_OVER_PI * (
                x * x * (3.0 * _GELU_C) + 1.0)
        cdf = (erf(x * _INV_SQRT2) + 1.0) * 0.5
        return cdf + x * exp(x * x * -0.5) * _INV_SQRT_2PI


def _sigmoid_np(x):
    """Overflow-free logistic function in NumPy (x's dtype)."""
    e = np.exp(-np.abs(x))
    r = 1.0 / (1.0 + e)
    return np.where(x >= 0, r, e * r).astype(x.dtype, copy=False)


def _softplus_np(x):
    """log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)), finite for every finite x."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


class Silu(_Smooth):
    """x * sigmoid(x)."""

    @staticmethod
    def compute(x, need_d, *_):
        s = _sigmoid_np(x)
        y = x * s
        d = s * (1.0 + x * (1.0 - s)) if need_d else None
        return y, d

    @staticmethod
    def deriv(x, y, *_):
        s = sigmoid(x)
        return s * (x * (1.0 - s) + 1.0)


class Mish(_Smooth):
    """x * tanh(softplus(x))."""

    @staticmethod
    def compute(x, need_d, *_):
        t = np.tanh(_softplus_np(x))
        y = x * t
        d = t + x * _sigmoid_np(x) * (1.0 - t * t) if need_d else None
        return y, d

    @staticmethod
    def deriv(x, y, *_):
        t = tanh(_softplus_ops(x))
        return t + x * sigmoid(x) * (1.0 - t * t)


def _softplus_ops(x):
    return relu(x) + log1p(exp(-abs_(x)))


class Softplus(_Smooth):
    """log(1 + exp(beta x)) / beta, and x itself where beta * x > threshold (PyTorch's rule)."""

    @staticmethod
    def compute(x, need_d, beta, threshold):
        bx = x * beta if beta != 1 else x
        lin = bx > threshold
        sp = _softplus_np(bx)
        if beta != 1:
            sp = sp / beta
        y = np.where(lin, x, sp).astype(x.dtype, copy=False)
        d = np.where(lin, 1.0, _sigmoid_np(bx)).astype(x.dtype, copy=False) if need_d else None
        return y, d

    @staticmethod
    def deriv(x, y, beta, threshold):
        bx = x * beta if beta != 1 else x
        return where(gt(bx, threshold), 1.0, sigmoid(bx))


class Logsigmoid(_Smooth):
    """log(sigmoid(x)) = -softplus(-x), stable for any finite x; d/dx = sigmoid(-x)."""

    @staticmethod
    def compute(x, need_d, *_):
        y = np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))
        d = _sigmoid_np(-x) if need_d else None
        return y.astype(x.dtype, copy=False), d

    @staticmethod
    def deriv(x, y, *_):
        return sigmoid(-x)


class Softsign(_Smooth):
    """x / (1 + |x|); d/dx = 1 / (1 + |x|)^2."""

    @staticmethod
    def compute(x, need_d, *_):
        r = 1.0 / (1.0 + np.abs(x))
        return x * r, (r * r if need_d else None)

    @staticmethod
    def deriv(x, y, *_):
        r = 1.0 / (abs_(x) + 1.0)
        return r * r


class Tanhshrink(_Smooth):
    """x - tanh(x); d/dx = tanh(x)^2."""

    @staticmethod
    def compute(x, need_d, *_):
        t = np.tanh(x)
        return x - t, (t * t if need_d else None)

    @staticmethod
    def deriv(x, y, *_):
        t = tanh(x)
        return t * t


class Hardswish(_Smooth):
    """x * relu6(x + 3) / 6; d/dx = 0 for x <= -3, 1 for x >= 3, x/3 + 1/2 between."""

    @staticmethod
    def compute(x, need_d, *_):
        y = x * (np.clip(x + 3.0, 0.0, 6.0) * (1.0 / 6.0))
        d = None
        if need_d:
            d = np.where(x <= -3, 0.0, np.where(x >= 3, 1.0, x * (1.0 / 3.0) + 0.5))
            d = d.astype(x.dtype, copy=False)
        return y.astype(x.dtype, copy=False), d

    @staticmethod
    def deriv(x, y, *_):
        return where(le(x, -3), 0.0, where(ge(x, 3), 1.0, x * (1.0 / 3.0) + 0.5))


# ============================================================================ softmax family
def _row_max(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    if not np.isfinite(m).all():  # rows of -inf (or inf/nan): keep them from poisoning x - m
        m = np.where(np.isfinite(m), m, 0).astype(x.dtype, copy=False)
    return m


class Softmax(Primitive):
    """exp(x - max) / sum(exp(x - max)) along one axis; backward y * (g - sum(g * y))."""

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        if x.size == 0:
            y = x.copy()
        else:
            with np.errstate(**_QUIET):
                y = np.asarray(np.subtract(x, _row_max(x, axis)))
                np.exp(y, out=y)
                y /= y.sum(axis=axis, keepdims=True)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        gy = g * y
        return gy - y * sum_(gy, ctx.axis, keepdim=True)


class LogSoftmax(Primitive):
    """x - max - log(sum(exp(x - max))) along one axis; backward g - exp(y) * sum(g)."""

    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        if x.size == 0:
            y = x.copy()
        else:
            with np.errstate(**_QUIET):
                y = np.asarray(np.subtract(x, _row_max(x, axis)))
                lse = np.log(np.exp(y).sum(axis=axis, keepdims=True))
                y -= lse
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g - exp(y) * sum_(g, ctx.axis, keepdim=True)


# ============================================================================ public functions
def relu(input, inplace: bool = False):
    """max(x, 0). Matches ``torch.relu`` / ``F.relu`` (``inplace`` is ignored)."""
    if isinstance(input, TensorBase):  # (call's dispatch, inlined: relu runs everywhere)
        return input._apply_primitive(Relu, (input,), NO_ATTRS)
    return call(Relu, input)


def relu6(input, inplace: bool = False):
    """min(max(x, 0), 6). Matches ``F.relu6`` (zero gradient at 0 and 6)."""
    return call(Hardtanh, input, lo=0, hi=6)


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """clip(x, min_val, max_val). Matches ``F.hardtanh`` (zero gradient at the bounds)."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val "
                         f"({max_val})")
    return call(Hardtanh, input, lo=min_val, hi=max_val)


def threshold(input, threshold: float, value: float, inplace: bool = False):
    """x where x > threshold, else value. Matches ``F.threshold``."""
    return call(Threshold, input, threshold=threshold, value=value)


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False):
    """x if x > 0 else negative_slope * x. Matches ``F.leaky_relu``."""
    return call(LeakyRelu, _floatify(input, "leaky_relu"), slope=negative_slope)


def hardsigmoid(input, inplace: bool = False):
    """relu6(x + 3) / 6. Matches ``F.hardsigmoid``."""
    return call(Hardsigmoid, _floatify(input, "hardsigmoid"))


def hardshrink(input, lambd: float = 0.5):
    """x where |x| > lambd, else 0. Matches ``F.hardshrink``."""
    return call(Shrink, _floatify(input, "hardshrink"), lambd=lambd, soft=False)


def softshrink(input, lambd: float = 0.5):
    """x - lambd*sign(x) where |x| > lambd, else 0. Matches ``F.softshrink``."""
    if lambd < 0:
        raise ValueError(f"softshrink: lambd must be non-negative, got {lambd}")
    return call(Shrink, _floatify(input, "softshrink"), lambd=lambd, soft=True)


def elu(input, alpha: float = 1.0, inplace: bool = False):
    """x if x > 0 else alpha * (exp(x) - 1). Matches ``F.elu``."""
    return call(Elu, _floatify(input, "elu"), params=(alpha, 1.0, 1.0))


def selu(input, inplace: bool = False):
    """scale * elu(x, alpha) with the self-normalizing constants. Matches ``F.selu``."""
    return call(Elu, _floatify(input, "selu"), params=(SELU_ALPHA, SELU_SCALE, 1.0))


def celu(input, alpha: float = 1.0, inplace: bool = False):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1)). Matches ``F.celu``."""
    if alpha == 0:
        raise ValueError("celu: alpha cannot be 0")
    return call(Elu, _floatify(input, "celu"), params=(alpha, 1.0, 1.0 / alpha))


def gelu(input, approximate: str = "none"):
    """x * Phi(x); ``approximate='tanh'`` uses the tanh formula. Matches ``F.gelu``."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return call(Gelu, _floatify(input, "gelu"), params=(approximate == "tanh",))


def silu(input, inplace: bool = False):
    """x * sigmoid(x) (swish). Matches ``F.silu``."""
    return call(Silu, _floatify(input, "silu"))


def mish(input, inplace: bool = False):
    """x * tanh(softplus(x)). Matches ``F.mish``."""
    return call(Mish, _floatify(input, "mish"))


def softplus(input, beta: float = 1.0, threshold: float = 20.0):
    """log(1 + exp(beta x)) / beta, linear where beta * x > threshold. Matches ``F.softplus``."""
    return call(Softplus, _floatify(input, "softplus"), params=(beta, threshold))


def logsigmoid(input):
    """log(sigmoid(x)), stable for large |x|. Matches ``F.logsigmoid``."""
    return call(Logsigmoid, _floatify(input, "logsigmoid"))


def softsign(input):
    """x / (1 + |x|). Matches ``F.softsign``."""
    return call(Softsign, _floatify(input, "softsign"))


def tanhshrink(input):
    """x - tanh(x). Matches ``F.tanhshrink``."""
    return call(Tanhshrink, _floatify(input, "tanhshrink"))


def hardswish(input, inplace: bool = False):
    """x * relu6(x + 3) / 6. Matches ``F.hardswish``."""
    return call(Hardswish, _floatify(input, "hardswish"))


def _softmax_dim(input, dim, dtype, op: str):
    if dtype is not None:
        input = cast(input, dt.as_np_dtype(dtype))
    input = _floatify(input, op)
    ndim = len(shape_of(input))
    if dim is None:  # PyTorch's legacy implicit choice
        dim = 0 if ndim in (0, 1, 3) else 1
    axis = normalize_dim(dim, ndim, op)
    return input, (axis if ndim else None)


def softmax(input, dim=None, dtype=None, **_legacy):
    """exp(x) / sum(exp(x)) along ``dim``, stable for any finite input. Matches ``F.softmax``.

    ``dtype`` casts the input first. ``dim=None`` picks PyTorch's legacy implicit dim (0 for
    0-, 1- and 3-d inputs, else 1) without PyTorch's deprecation warning.
    """
    x, axis = _softmax_dim(input, dim, dtype, "softmax")
    return call(Softmax, x, axis=axis)


def log_softmax(input, dim=None, dtype=None, **_legacy):
    """log(softmax(x)) along ``dim``, computed stably. Matches ``F.log_softmax``."""
    x, axis = _softmax_dim(input, dim, dtype, "log_softmax")
    return call(LogSoftmax, x, axis=axis)


def softmin(input, dim=None, dtype=None, **_legacy):
    """softmax(-x) along ``dim``. Matches ``F.softmin``."""
    x, axis = _softmax_dim(input, dim, dtype, "softmin")
    return call(Softmax, -x, axis=axis)


def glu(input, dim: int = -1):
    """a * sigmoid(b), a and b the two halves of ``input`` along ``dim``. Matches ``F.glu``."""
    from .movement import narrow

    shape = shape_of(input)
    if not shape:
        raise RuntimeError("glu: does not support 0-d (scalar) tensors")
    axis = normalize_dim(dim, len(shape), "glu")
    n = shape[axis]
    if n % 2:
        raise RuntimeError(f"glu: halving dimension must be even, but dimension {dim} of "
                           f"shape {shape} has size {n}")
    x = _floatify(input, "glu")
    return narrow(x, axis, 0, n // 2) * sigmoid(narrow(x, axis, n // 2, n // 2))


# ops used in backward formulas (imported last: these modules import each other)
from .binary import cast, ge, gt, le, where  # noqa: E402
from .reduce import sum as sum_  # noqa: E402
from .unary import abs as abs_  # noqa: E402
from .unary import erf, erf_array, exp, log1p, sigmoid, tanh  # noqa: E402
