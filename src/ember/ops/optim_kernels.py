"""Fused, in-place update kernels for the optimizers of :mod:`ember.optim` and gradient clipping.

Every function works on raw NumPy arrays: ``param`` and the state arrays are updated in place
(``out=``), ``grad`` is only read. Intermediate values go into the scratch arrays of a
:class:`Workspace` that the optimizer owns, so that a training step allocates no per-parameter
temporaries once the workspace has grown to the largest parameter.

Scalars (learning rate, betas, bias corrections) arrive as Python floats; NumPy then computes in
the parameter's dtype (float32 stays float32, as in PyTorch).

The formulas follow the PyTorch single-tensor implementations' order of operations (PyTorch's
CPU default), so float32 results agree to rounding.
"""

from __future__ import annotations

import math

import numpy as np

from . import native


class Workspace:
    """Reusable scratch arrays: one growing flat buffer per (slot, dtype).

    ``get(slot, like)`` returns an uninitialized array of ``like``'s shape and dtype that stays
    valid until the next ``get`` of the same slot and dtype.
    """

    __slots__ = ("_bufs",)

    def __init__(self) -> None:
        self._bufs = {}

    def get(self, slot: int, like: np.ndarray) -> np.ndarray:
        key = (slot, like.dtype.str)
        buf = self._bufs.get(key)
        n = like.size
        if buf is None or buf.size < n:
            buf = np.empty(n, dtype=like.dtype)
            self._bufs[key] = buf
        return buf[:n].reshape(like.shape)

    def clear(self) -> None:
        self._bufs.clear()


def _fusable(param, *others) -> bool:
    """Whether the compiled kernels can update ``param`` with these arrays (None skipped):
    all C-contiguous, of one float dtype and size."""
    dt = param.dtype
    if dt.kind != "f" or dt.itemsize < 4 or not dt.isnative or not param.flags.c_contiguous:
        return False
    return all(a is None or (a.dtype is param.dtype and a.size == param.size
                             and a.flags.c_contiguous) for a in others)


def _partition(items, fused, n: int):
    """(the items a compiled group kernel takes, the rest for the NumPy step): by whether the
    first ``n`` arrays of each are :func:`_fusable`; all the rest without the kernel."""
    if fused is None:
        return [], items
    batch, rest = [], []
    for it in items:
        (batch if _fusable(*it[:n]) else rest).append(it)
    return batch, rest


def tick(step: np.ndarray) -> float:
    """Increment a 0-d step-counter array in place; return the new count as a float."""
    step += 1
    return float(step)


def _effective_grad(param, grad, weight_decay: float, maximize: bool, ws: Workspace):
    """``(-grad if maximize else grad) + weight_decay * param``, without touching ``grad``."""
    if weight_decay == 0:
        if not maximize:
            return grad
        g = ws.get(0, param)
        np.negative(grad, out=g)
        return g
    g = ws.get(0, param)
    np.multiply(param, weight_decay, out=g)
    if maximize:
        np.subtract(g, grad, out=g)
    else:
        np.add(g, grad, out=g)
    return g


def _lerp_into(dst, end, weight: float, tmp) -> None:
    """``dst += weight * (end - dst)`` (PyTorch's ``lerp_`` with a scalar weight)."""
    np.subtract(end, dst, out=tmp)
    if weight < 0.5:
        np.multiply(tmp, weight, out=tmp)
        np.add(dst, tmp, out=dst)
    else:  # the form PyTorch uses for large weights: end - (end - dst) * (1 - weight)
        np.multiply(tmp, 1.0 - weight, out=tmp)
        np.subtract(end, tmp, out=dst)


def _addcmul_sq_into(dst, g, value: float, tmp) -> None:
    """``dst += value * g * g``."""
    np.multiply(g, g, out=tmp)
    np.multiply(tmp, value, out=tmp)
    np.add(dst, tmp, out=dst)


# ---------------------------------------------------------------------------------------- SGD
def sgd_step(param, grad, buf, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
             first: bool, ws: Workspace) -> None:
    """SGD with optional (Nesterov) momentum; ``buf`` is the momentum buffer (or None).

    On the ``first`` step the buffer is set to the gradient (no dampening), as in PyTorch. In
    NumPy: the reference of the compiled ``sgd_many`` kernel (see :func:`sgd_many`).
    """
    g = _effective_grad(param, grad, weight_decay, maximize, ws)
    if momentum != 0:
        if first:
            np.copyto(buf, g)
        else:
            np.multiply(buf, momentum, out=buf)
            tmp = ws.get(1, param)
            np.multiply(g, 1.0 - dampening, out=tmp)
            np.add(buf, tmp, out=buf)
        if nesterov:
            tmp = ws.get(1, param)
            np.multiply(buf, momentum, out=tmp)
            np.add(tmp, g, out=tmp)
            g = tmp
        else:
            g = buf
    out = ws.get(1, param)  # may be the memory g already lives in: elementwise, so safe
    np.multiply(g, lr, out=out)
    np.subtract(param, out, out=param)


def sgd_many(items, *, lr, momentum, dampening, weight_decay, nesterov, maximize,
             ws: Workspace) -> None:
    """:func:`sgd_step` over ``items``, a list of ``(param, grad, buf, first)``: the compiled
    kernel takes every parameter it can in one call (the same bits), the NumPy path the rest."""
    fused = native.kernel("sgd_many")
    batch, rest = _partition(items, fused, 3)
    if batch:
        cols = list(zip(*batch))
        fused(list(cols[0]), list(cols[1]), list(cols[2]) if momentum != 0 else None,
              list(cols[3]), lr, weight_decay, maximize, momentum, 1.0 - dampening, nesterov)
    for pa, ga, buf, first in rest:
        sgd_step(pa, ga, buf, lr=lr, momentum=momentum, dampening=dampening,
                 weight_decay=weight_decay, nesterov=nesterov, maximize=maximize, first=first,
                 ws=ws)


def _decayed_grad(param, grad, lr, weight_decay, decoupled: bool, maximize: bool,
                  ws: Workspace):
    """The gradient after weight decay: decoupled (AdamW style) shrinks ``param`` in place by
    ``lr * weight_decay``; otherwise ``weight_decay * param`` is added to the gradient."""
    if decoupled:
        if weight_decay != 0:
            np.multiply(param, 1.0 - lr * weight_decay, out=param)
        return _effective_grad(param, grad, 0, maximize, ws)
    return _effective_grad(param, grad, weight_decay, maximize, ws)


def _update_moments(param, g, exp_avg, exp_avg_sq, beta1, beta2, ws: Workspace):
    """Adam's running moments, in place: m = lerp(m, g, 1 - beta1) and
    v = beta2 v + (1 - beta2) g^2. Returns the scratch buffer it used (free to reuse)."""
    tmp = ws.get(1, param)
    _lerp_into(exp_avg, g, 1.0 - beta1, tmp)
    np.multiply(exp_avg_sq, beta2, out=exp_avg_sq)
    _addcmul_sq_into(exp_avg_sq, g, 1.0 - beta2, tmp)
    return tmp


# --------------------------------------------------------------------------------------- Adam
def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, *, step: float, lr, beta1,
              beta2, eps, weight_decay, decoupled: bool, maximize: bool,
              ws: Workspace) -> None:
    """One Adam / AdamW step (``decoupled`` selects AdamW's weight decay), in NumPy: the
    reference of the compiled ``adam_many`` kernel (see :func:`adam_many`)."""
    g = _decayed_grad(param, grad, lr, weight_decay, decoupled, maximize, ws)
    tmp = _update_moments(param, g, exp_avg, exp_avg_sq, beta1, beta2, ws)
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2 = 1.0 - beta2 ** step
    step_size = lr / bias_correction1
    bc2_sqrt = math.sqrt(bias_correction2)
    v = exp_avg_sq
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    denom = tmp
    np.sqrt(v, out=denom)
    np.divide(denom, bc2_sqrt, out=denom)
    np.add(denom, eps, out=denom)
    _addcdiv_into(param, exp_avg, denom, -step_size)


def adam_many(items, *, lr, beta1, beta2, eps, weight_decay, decoupled: bool, maximize: bool,
              amsgrad: bool, ws: Workspace) -> None:
    """:func:`adam_step` over ``items``, a list of ``(param, grad, exp_avg, exp_avg_sq,
    max_exp_avg_sq, step)``: the compiled kernel takes every parameter it can in one call (the
    same bits as one call each), the NumPy path the rest."""
    fused = native.kernel("adam_many")
    batch, rest = _partition(items, fused, 5)
    if batch:
        cols = list(zip(*batch))
        fused(list(cols[0]), list(cols[1]), list(cols[2]), list(cols[3]),
              list(cols[4]) if amsgrad else None, list(cols[5]), lr, beta1, beta2, eps,
              weight_decay, decoupled, maximize)
    for pa, ga, m, v, vmax, step in rest:
        adam_step(pa, ga, m, v, vmax, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps,
                  weight_decay=weight_decay, decoupled=decoupled, maximize=maximize, ws=ws)


def _addcdiv_into(dst, num, denom, value: float) -> None:
    """``dst += value * num / denom``; overwrites ``denom``."""
    np.divide(num, denom, out=denom)
    np.multiply(denom, value, out=denom)
    np.add(dst, denom, out=dst)


def adamax_step(param, grad, exp_avg, exp_inf, *, step: float, lr, beta1, beta2, eps,
                weight_decay, maximize, ws: Workspace) -> None:
    """One Adamax step (Adam with the infinity norm)."""
    g = _effective_grad(param, grad, weight_decay, maximize, ws)
    tmp = ws.get(1, param)
    _lerp_into(exp_avg, g, 1.0 - beta1, tmp)
    np.multiply(exp_inf, beta2, out=exp_inf)
    np.abs(g, out=tmp)
    np.add(tmp, eps, out=tmp)
    np.maximum(exp_inf, tmp, out=exp_inf)
    clr = lr / (1.0 - beta1 ** step)
    np.divide(exp_avg, exp_inf, out=tmp)
    np.multiply(tmp, -clr, out=tmp)
    np.add(param, tmp, out=param)


def nadam_step(param, grad, exp_avg, exp_avg_sq, mu_product, *, step: float, lr, beta1,
               beta2, eps, weight_decay, momentum_decay, decoupled: bool, maximize: bool,
               ws: Workspace) -> None:
    """One NAdam step; ``mu_product`` (0-d array, the running product of the momentum
    coefficients, float32 like PyTorch's) is updated in place too."""
    bias_correction2 = 1.0 - beta2 ** step
    g = _decayed_grad(param, grad, lr, weight_decay, decoupled, maximize, ws)
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    np.multiply(mu_product, mu, out=mu_product)
    mu_product = float(mu_product)
    tmp = _update_moments(param, g, exp_avg, exp_avg_sq, beta1, beta2, ws)
    denom = ws.get(2, param)
    np.divide(exp_avg_sq, bias_correction2, out=denom)
    np.sqrt(denom, out=denom)
    np.add(denom, eps, out=denom)
    mu_product_next = mu_product * mu_next
    np.divide(g, denom, out=tmp)
    np.multiply(tmp, -lr * (1.0 - mu) / (1.0 - mu_product), out=tmp)
    np.add(param, tmp, out=param)
    _addcdiv_into(param, exp_avg, denom, (-lr * mu_next) / (1.0 - mu_product_next))


def radam_step(param, grad, exp_avg, exp_avg_sq, *, step: float, lr, beta1, beta2, eps,
               weight_decay, decoupled: bool, maximize: bool, ws: Workspace) -> None:
    """One RAdam step (rectified adaptive learning rate once the variance is tractable)."""
    g = _decayed_grad(param, grad, lr, weight_decay, decoupled, maximize, ws)
    tmp = _update_moments(param, g, exp_avg, exp_avg_sq, beta1, beta2, ws)
    bias_correction1 = 1.0 - beta1 ** step
    bias_correction2 = 1.0 - beta2 ** step
    upd = ws.get(2, param)
    np.divide(exp_avg, bias_correction1, out=upd)
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho_t = rho_inf - 2.0 * step * (beta2 ** step) / bias_correction2
    np.multiply(upd, lr, out=upd)
    if rho_t > 5.0:
        rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf /
                         ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        np.sqrt(exp_avg_sq, out=tmp)
        np.add(tmp, eps, out=tmp)
        np.divide(math.sqrt(bias_correction2), tmp, out=tmp)
        np.multiply(upd, tmp, out=upd)
        np.multiply(upd, rect, out=upd)
    np.subtract(param, upd, out=param)


# ------------------------------------------------------------------ RMSprop, Adagrad, Adadelta
def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, *, lr, alpha, eps,
                 weight_decay, momentum, maximize, ws: Workspace) -> None:
    """One RMSprop step; ``grad_avg`` is given when centered, ``momentum_buffer`` if momentum."""
    g = _effective_grad(param, grad, weight_decay, maximize, ws)
    tmp = ws.get(1, param)
    np.multiply(square_avg, alpha, out=square_avg)
    _addcmul_sq_into(square_avg, g, 1.0 - alpha, tmp)
    avg = ws.get(2, param)
    if grad_avg is not None:
        _lerp_into(grad_avg, g, 1.0 - alpha, tmp)
        np.multiply(grad_avg, grad_avg, out=avg)
        np.subtract(square_avg, avg, out=avg)
        np.sqrt(avg, out=avg)
    else:
        np.sqrt(square_avg, out=avg)
    np.add(avg, eps, out=avg)
    if momentum > 0:
        np.multiply(momentum_buffer, momentum, out=momentum_buffer)
        np.divide(g, avg, out=tmp)
        np.add(momentum_buffer, tmp, out=momentum_buffer)
        np.multiply(momentum_buffer, lr, out=tmp)
        np.subtract(param, tmp, out=param)
    else:
        _addcdiv_into(param, g, avg, -lr)


def adagrad_step(param, grad, state_sum, *, step: float, lr, lr_decay, eps, weight_decay,
                 maximize, ws: Workspace) -> None:
    """One Adagrad step with learning-rate decay ``lr / (1 + (step - 1) * lr_decay)``."""
    g = _effective_grad(param, grad, weight_decay, maximize, ws)
    clr = lr / (1 + (step - 1) * lr_decay)
    tmp = ws.get(1, param)
    _addcmul_sq_into(state_sum, g, 1.0, tmp)
    np.sqrt(state_sum, out=tmp)
    np.add(tmp, eps, out=tmp)
    _addcdiv_into(param, g, tmp, -clr)


def adadelta_step(param, grad, square_avg, acc_delta, *, lr, rho, eps, weight_decay, maximize,
                  ws: Workspace) -> None:
    """One Adadelta step."""
    g = _effective_grad(param, grad, weight_decay, maximize, ws)
    tmp = ws.get(1, param)
    np.multiply(square_avg, rho, out=square_avg)
    _addcmul_sq_into(square_avg, g, 1.0 - rho, tmp)
    std = ws.get(2, param)
    np.add(square_avg, eps, out=std)
    np.sqrt(std, out=std)
    delta = tmp
    np.add(acc_delta, eps, out=delta)
    np.sqrt(delta, out=delta)
    np.divide(delta, std, out=delta)
    np.multiply(delta, g, out=delta)
    np.multiply(acc_delta, rho, out=acc_delta)
    _addcmul_sq_into(acc_delta, delta, 1.0 - rho, std)
    np.multiply(delta, lr, out=delta)
    np.subtract(param, delta, out=param)


# ------------------------------------------------------------------------ gradient clipping
def vector_norm_of(a: np.ndarray, norm_type: float):
    """The ``norm_type``-norm of all elements of ``a`` (0-d array of ``a``'s dtype)."""
    flat = a.reshape(-1)
    dt = a.dtype
    if flat.size == 0:
        return np.zeros((), dt)
    if norm_type == math.inf:
        return np.asarray(np.max(np.abs(flat)), dtype=dt)
    if norm_type == -math.inf:
        return np.asarray(np.min(np.abs(flat)), dtype=dt)
    if norm_type == 0:
        return np.asarray(np.count_nonzero(flat), dtype=dt)
    if norm_type == 1:
        return np.asarray(np.sum(np.abs(flat)), dtype=dt)
    if norm_type == 2:
        return np.asarray(np.sqrt(np.dot(flat, flat)), dtype=dt)
    return np.asarray(np.sum(np.abs(flat) ** norm_type) ** (1.0 / norm_type), dtype=dt)


def total_norm_of(arrays, norm_type: float, dtype) -> np.ndarray:
    """The norm of the per-array norms (= the norm of all arrays concatenated), 0-d array."""
    if not arrays:
        return np.zeros((), dtype)
    norms = np.stack([vector_norm_of(a, norm_type).astype(dtype, copy=False) for a in arrays])
    return vector_norm_of(norms, norm_type)


def is_finite_scalar(a) -> bool:
    return bool(np.isfinite(a))


def scale_all(arrays, coef) -> None:
    """Multiply every array by ``coef`` in place."""
    for a in arrays:
        np.multiply(a, coef, out=a, casting="unsafe")


def clamp_all(arrays, low: float, high: float) -> None:
    """Clamp every array into ``[low, high]`` in place."""
    for a in arrays:
        np.clip(a, low, high, out=a)
