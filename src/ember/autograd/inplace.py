"""In-place tensor methods (``add_``, ``mul_``, ``zero_``, ``copy_``, ``x[i] = v`` ...).

Matches: the ``torch.Tensor`` methods of the same names.

Rules, as in PyTorch:
- outside ``no_grad``, a *leaf* that requires grad may not be changed in place (it would make
  its own gradient meaningless): update parameters under ``with ember.no_grad():``;
- a non-leaf tensor may be changed in place: the op is recorded as if computed out of place and
  the tensor's ``grad_fn`` moves to it (its old value flows in through a clone);
- every in-place change bumps the tensor's version counter (shared with its views), so that a
  backward that needs the old value raises an error instead of silently using the new one.
"""

from __future__ import annotations

from .. import ops
from ..ops import dtypes as _dt
from .grad_mode import STATE

INPLACE_METHODS = (
    "add_", "sub_", "mul_", "div_", "pow_", "neg_", "abs_", "exp_", "log_", "sqrt_", "tanh_",
    "sigmoid_", "relu_", "clamp_", "clip_", "floor_", "ceil_", "round_", "sign_", "reciprocal_",
    "zero_", "fill_", "copy_", "masked_fill_", "scatter_", "scatter_add_", "index_add_",
    "addcmul_", "addcdiv_", "lerp_", "uniform_", "normal_", "bernoulli_", "exponential_",
    "unsqueeze_", "squeeze_", "t_", "transpose_", "fill_diagonal_", "index_fill_",
)


def _tensor_type():
    from .tensor import Tensor

    return Tensor


def _grad_involved(self, others) -> bool:
    if not STATE.enabled:
        return False
    Tensor = _tensor_type()
    return self._requires_grad or any(isinstance(o, Tensor) and o._requires_grad for o in others)


def _check_target(self, op: str) -> None:
    if self.grad_fn is None and self._requires_grad:
        raise RuntimeError(
            f"{op}: a leaf tensor that requires grad (shape {tuple(self.shape)}) cannot be "
            f"changed in place while gradients are recorded; do it under `with ember.no_grad():` "
            f"(as optimizers do) or use the out-of-place op")
    base = self._base
    if base is not None and base._requires_grad:
        raise RuntimeError(
            f"{op}: in-place change of a view of a tensor that requires grad is not supported; "
            f"use out-of-place ops (e.g. torch.cat / ember.where) or clone() the view first")


def _write(self, result, op: str) -> None:
    """Store ``result`` (a Tensor) into ``self``'s own memory, with PyTorch's cast rules."""
    r = result._data
    if r.shape != self._data.shape:
        raise RuntimeError(f"{op}: the result has shape {tuple(r.shape)}, which cannot be "
                           f"written into a tensor of shape {tuple(self._data.shape)}")
    if _dt.category(r.dtype) > _dt.category(self._data.dtype):
        raise RuntimeError(f"{op}: result type {_dt.from_np(r.dtype)} can't be cast to the "
                           f"tensor's dtype {self.dtype}")
    ops.copy_into(self._data, r)


def apply_inplace(self, op: str, fn, *others):
    """Run ``fn(self, *others)`` (out of place) and make ``self`` hold the result."""
    if _grad_involved(self, others):
        _check_target(self, op)
        result = fn(self.clone(), *others)
        _write(self, result, op)
        if result.grad_fn is not None:
            self.grad_fn = result.grad_fn
            self._output_nr = result._output_nr
            self._requires_grad = True
    else:
        from .grad_mode import no_grad

        with no_grad():
            result = fn(self, *others)
        _write(self, result, op)
    self._version[0] += 1
    return self


def _unwrap(x):
    return x._data if isinstance(x, _tensor_type()) else x


def _same_category(self, other) -> bool:
    """True if ``other`` cannot raise this tensor's dtype category (float into int ...)."""
    d = ops.dtype_of(other)
    if d is not None:
        return _dt.category(d) <= _dt.category(self._data.dtype)
    if isinstance(other, (bool, int, float)):
        return _dt.scalar_category(other) <= _dt.category(self._data.dtype)
    return False


def _fast(self, others) -> bool:
    """No graph to record: update the array directly (the optimizer path)."""
    return not _grad_involved(self, others)


def _bump(self):
    self._version[0] += 1
    return self


def add_(self, other, alpha=1):
    """``self += alpha * other``."""
    if _fast(self, (other,)) and _same_category(self, other):
        ops.add_into(self._data, _unwrap(other), alpha)
        return _bump(self)
    return apply_inplace(self, "add_", lambda s, o: ops.add(s, o, alpha=alpha), other)


def sub_(self, other, alpha=1):
    """``self -= alpha * other``."""
    return add_(self, other, -alpha)


def mul_(self, other):
    """``self *= other``."""
    if _fast(self, (other,)) and _same_category(self, other):
        ops.mul_into(self._data, _unwrap(other))
        return _bump(self)
    return apply_inplace(self, "mul_", ops.mul, other)


def div_(self, other, rounding_mode=None):
    return apply_inplace(self, "div_", lambda s, o: ops.div(s, o, rounding_mode=rounding_mode),
                         other)


def pow_(self, exponent):
    return apply_inplace(self, "pow_", ops.pow, exponent)


def _unary(name: str):
    def method(self):
        return apply_inplace(self, name + "_", getattr(ops, name))

    method.__name__ = name + "_"
    method.__doc__ = f"In-place ``{name}``."
    return method


neg_ = _unary("neg")
abs_ = _unary("abs")
exp_ = _unary("exp")
log_ = _unary("log")
sqrt_ = _unary("sqrt")
tanh_ = _unary("tanh")
sigmoid_ = _unary("sigmoid")
relu_ = _unary("relu")
floor_ = _unary("floor")
ceil_ = _unary("ceil")
round_ = _unary("round")
sign_ = _unary("sign")
reciprocal_ = _unary("reciprocal")


def clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's argument names
    return apply_inplace(self, "clamp_", lambda s: ops.clamp(s, min, max))


clip_ = clamp_


def zero_(self):
    """Fill with zeros."""
    return fill_(self, 0)


def fill_(self, value):
    """Fill with ``value`` (a number or a one-element tensor)."""
    if _fast(self, (value,)):
        ops.fill_into(self._data, _unwrap(value))
        return _bump(self)
    return apply_inplace(self, "fill_", lambda s, v: ops.where(ops.ones_like_bool(s), v, s), value)


def copy_(self, src, non_blocking: bool = False):
    """Copy ``src`` (broadcast to this shape, cast to this dtype) into this tensor."""
    if _fast(self, (src,)):
        ops.copy_into(self._data, _unwrap(src), cast=True)
        return _bump(self)
    Tensor = _tensor_type()
    if not isinstance(src, Tensor):
        src = Tensor._make(ops.as_array(src))
    return apply_inplace(self, "copy_", lambda s, o: ops.cast(ops.expand(o, s.shape),
                                                               s._data.dtype) + s * 0, src)


def masked_fill_(self, mask, value):
    return apply_inplace(self, "masked_fill_", lambda s, m, v: ops.masked_fill(s, m, v),
                         mask, value)


def scatter_(self, dim, index, src=None, value=None, reduce=None):
    return apply_inplace(self, "scatter_",
                         lambda s, i, v: ops.scatter(s, dim, i, v, reduce=reduce),
                         index, src if src is not None else value)


def scatter_add_(self, dim, index, src):
    return apply_inplace(self, "scatter_add_", lambda s, i, v: ops.scatter_add(s, dim, i, v),
                         index, src)


def index_add_(self, dim, index, source, alpha=1):
    return apply_inplace(self, "index_add_",
                         lambda s, i, v: ops.index_add(s, dim, i, v, alpha=alpha), index, source)


def index_fill_(self, dim, index, value):
    def fill(s, i, v):
        mask = ops.index_mask(s, dim, i)
        return ops.masked_fill(s, mask, v)

    return apply_inplace(self, "index_fill_", fill, index, value)


def addcmul_(self, tensor1, tensor2, value=1):
    """``self += value * tensor1 * tensor2``."""
    return add_(self, ops.mul(tensor1, tensor2), value)


def addcdiv_(self, tensor1, tensor2, value=1):
    """``self += value * tensor1 / tensor2``."""
    return add_(self, ops.div(tensor1, tensor2), value)


def lerp_(self, end, weight):
    """``self += weight * (end - self)``."""
    return add_(self, ops.mul(ops.sub(end, self), weight))


def fill_diagonal_(self, fill_value, wrap: bool = False):
    return apply_inplace(self, "fill_diagonal_",
                         lambda s: ops.masked_fill(s, ops.diagonal_mask(s, wrap), fill_value))


def _random_fill(name: str, sampler):
    def method(self, *args, generator=None, **kwargs):
        if self._requires_grad and STATE.enabled and self.grad_fn is None:
            _check_target(self, name)
        arr = sampler(self._data.shape, self._data.dtype, *args, generator=generator, **kwargs)
        ops.copy_into(self._data, arr)
        return _bump(self)

    method.__name__ = name
    return method


uniform_ = _random_fill("uniform_", lambda shape, dt, a=0.0, b=1.0, generator=None:
                        ops.random.uniform(shape, a, b, dt, generator))
normal_ = _random_fill("normal_", lambda shape, dt, mean=0.0, std=1.0, generator=None:
                       ops.random.normal(shape, mean, std, dt, generator))
bernoulli_ = _random_fill("bernoulli_", lambda shape, dt, p=0.5, generator=None:
                          ops.random.bernoulli(shape, p, dt, generator))
exponential_ = _random_fill("exponential_", lambda shape, dt, lambd=1.0, generator=None:
                            ops.random.exponential(shape, lambd, dt, generator))


def _reshape_inplace(name: str, fn):
    def method(self, *args):
        if self._requires_grad and STATE.enabled:
            raise RuntimeError(f"{name}: in-place shape change of a tensor that requires grad is "
                               f"not supported; use the out-of-place {name[:-1]}")
        self._data = fn(self, *args)._data
        return self

    method.__name__ = name
    return method


unsqueeze_ = _reshape_inplace("unsqueeze_", ops.unsqueeze)
squeeze_ = _reshape_inplace("squeeze_", ops.squeeze)
t_ = _reshape_inplace("t_", ops.t)
transpose_ = _reshape_inplace("transpose_", ops.transpose)


def setitem_(self, key, value) -> None:
    """``self[key] = value``; with grad recorded, as an out-of-place ``index_put``."""
    if _fast(self, (value,) + _key_tensors(key)):
        ops.setitem_into(self._data, key, _unwrap(value))
        _bump(self)
        return
    apply_inplace(self, "__setitem__", lambda s, v: ops.index_put(s, key, v), value)


def _key_tensors(key) -> tuple:
    Tensor = _tensor_type()
    keys = key if isinstance(key, tuple) else (key,)
    return tuple(k for k in keys if isinstance(k, Tensor))
