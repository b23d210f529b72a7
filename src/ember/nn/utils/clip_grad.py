"""Gradient clipping: ``clip_grad_norm_``, ``clip_grad_value_`` (and ``get_total_norm``,
``clip_grads_with_norm_``).

Matches: ``torch.nn.utils.clip_grad_norm_``, ``clip_grad_value_``, ``get_total_norm``,
``clip_grads_with_norm_`` (same arguments; the gradients are changed in place).
"""

from __future__ import annotations

import math

from ...autograd import Tensor
from ...ops import optim_kernels as K

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
           "clip_grad_norm"]


def _as_list(tensors) -> list:
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def _grads(parameters) -> list:
    return [p.grad for p in _as_list(parameters) if p.grad is not None]


def _norm_type(norm_type, who: str) -> float:
    if isinstance(norm_type, str):
        if norm_type.lower() in ("inf", "+inf"):
            return math.inf
        if norm_type.lower() == "-inf":
            return -math.inf
        raise ValueError(f"{who}: unknown norm_type {norm_type!r} (expected a number or 'inf')")
    return float(norm_type)


def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite: bool = False,
                   foreach=None) -> Tensor:
    """The ``norm_type``-norm of all ``tensors`` together (as if concatenated).

    Args:
        tensors: a tensor or an iterable of tensors (e.g. gradients).
        norm_type: p of the p-norm; ``inf`` for the max-norm.
        error_if_nonfinite: raise if the norm is nan or inf.
        foreach: accepted for PyTorch compatibility.
    Returns:
        A 0-d tensor (float32 for no tensors, else the tensors' dtype).
    """
    nt = _norm_type(norm_type, "get_total_norm")
    ts = [t for t in _as_list(tensors) if t is not None]
    arrays = [t._data for t in ts]
    total = K.total_norm_of(arrays, nt, arrays[0].dtype if arrays else "float32")
    if error_if_nonfinite and not K.is_finite_scalar(total):
        raise RuntimeError(f"the total norm of order {norm_type} for gradients from "
                           f"{len(arrays)} tensors is non-finite, so it cannot be clipped; set "
                           f"error_if_nonfinite=False to clip anyway (the gradients become "
                           f"nan or zero)")
    return Tensor._make(total)


def clip_grads_with_norm_(parameters, max_norm: float, total_norm, foreach=None) -> None:
    """Scale the gradients by ``max_norm / (total_norm + 1e-6)`` when that is below 1."""
    grads = _grads(parameters)
    if not grads:
        return
    total = float(total_norm.item() if isinstance(total_norm, Tensor) else total_norm)
    coef = min(float(max_norm) / (total + 1e-6), 1.0)
    K.scale_all([g._data for g in grads], coef)
    for g in grads:
        g._version[0] += 1


def clip_grad_norm_(parameters, max_norm: float, norm_type=2.0,
                    error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Rescale gradients so that their total norm is at most ``max_norm``.

    Args:
        parameters: a tensor or an iterable of tensors whose ``.grad`` to clip.
        max_norm: the maximal total norm.
        norm_type: p of the p-norm (default 2); ``float('inf')`` or ``'inf'`` for the max-norm.
        error_if_nonfinite: raise ``RuntimeError`` if the total norm is nan or inf.
        foreach: accepted for PyTorch compatibility.
    Returns:
        The total norm of the gradients before clipping (a 0-d tensor).

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.ones(4))
        >>> (w * 3).sum().backward()
        >>> ember.nn.utils.clip_grad_norm_([w], max_norm=1.0)
        tensor(6.)
    """
    params = _as_list(parameters)
    grads = _grads(params)
    if not grads:
        return Tensor._make(K.total_norm_of([], 2, "float32"))
    total = get_total_norm(grads, norm_type, error_if_nonfinite, foreach)
    clip_grads_with_norm_(params, max_norm, total, foreach)
    return total


def clip_grad_norm(parameters, max_norm: float, norm_type=2.0,
                   error_if_nonfinite: bool = False, foreach=None) -> Tensor:
    """Deprecated alias of :func:`clip_grad_norm_` (as in PyTorch)."""
    return clip_grad_norm_(parameters, max_norm, norm_type, error_if_nonfinite, foreach)


def clip_grad_value_(parameters, clip_value: float, foreach=None) -> None:
    """Clamp every gradient into ``[-clip_value, clip_value]`` in place.

    Args:
        parameters: a tensor or an iterable of tensors whose ``.grad`` to clip.
        clip_value: the maximal absolute value.
        foreach: accepted for PyTorch compatibility.
    """
    clip_value = float(clip_value)
    grads = _grads(parameters)
    K.clamp_all([g._data for g in grads], -clip_value, clip_value)
    for g in grads:
        g._version[0] += 1
