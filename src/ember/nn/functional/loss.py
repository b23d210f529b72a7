"""Loss functions of ``ember.nn.functional``: regression, classification, ranking and CTC losses.

Matches: the ``torch.nn.functional`` functions of the same names, arguments, defaults and numbers
(forward and gradients, including gradients w.r.t. targets where PyTorch has them). Every loss
takes ``reduction`` = ``'none'`` | ``'mean'`` | ``'sum'`` (plus the deprecated ``size_average`` /
``reduce`` pair, mapped as PyTorch maps them); where a per-class ``weight`` is involved, 'mean'
is PyTorch's weighted mean (the sum divided by the sum of the weights that were used).

The losses are compositions of ember ops, except where array-level work pays off: cross-entropy
with class indices (a fused log_softmax + NLL primitive, run in every classifier step), NLL,
binary cross-entropy (PyTorch's clamped logs) and CTC (the log-space alpha/beta dynamic
programme) call kernels of :mod:`ember.ops.loss`.

Deviations: ``kl_div(reduction='mean')`` does not repeat PyTorch's warning that it differs from
'batchmean'.
"""

from __future__ import annotations

import math
import warnings

from ... import ops
from ...autograd import creation
from .basic import pairwise_distance

__all__ = [
    "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy", "nll_loss",
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div",
    "cosine_embedding_loss", "margin_ranking_loss", "triplet_margin_loss", "ctc_loss",
    "poisson_nll_loss", "gaussian_nll_loss", "soft_margin_loss", "multilabel_soft_margin_loss",
    "hinge_embedding_loss", "multi_margin_loss",
]

_REDUCTIONS = ("none", "mean", "sum")


# ============================================================================ helpers
def _reduction(op: str, reduction: str, size_average=None, reduce=None, extra=()) -> str:
    """The reduction string, honouring the legacy ``size_average`` / ``reduce`` flags."""
    if size_average is not None or reduce is not None:
        sa = True if size_average is None else bool(size_average)
        rd = True if reduce is None else bool(reduce)
        return "none" if not rd else ("mean" if sa else "sum")
    if reduction not in _REDUCTIONS + tuple(extra):
        allowed = ", ".join(repr(r) for r in _REDUCTIONS + tuple(extra))
        raise ValueError(f"{op}: reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def _reduce(loss, reduction: str):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _shape(x) -> tuple:
    return tuple(ops.shape_of(x))


def _fmt(shape) -> str:
    shape = tuple(shape)
    return f"({shape[0]},)" if len(shape) == 1 else str(shape)


def _float_input(op: str, x, name: str = "input") -> None:
    d = ops.dtype_of(x)
    if d is None or d.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor for {name}, got "
                        f"{d if d is not None else type(x).__name__}")


def _broadcast_pair(op: str, input, target):
    """``input`` and ``target`` broadcast together, warning (like PyTorch) when shapes differ."""
    si, st = _shape(input), _shape(target)
    if si == st:
        return input, target
    try:
        ops.broadcast_shapes(si, st)
    except (ValueError, RuntimeError):
        raise ValueError(f"{op}: target of shape {_fmt(st)} cannot be broadcast to the input's "
                         f"shape {_fmt(si)}") from None
    warnings.warn(f"{op}: using a target size ({_fmt(st)}) that is different to the input size "
                  f"({_fmt(si)}); this will likely lead to incorrect results due to "
                  f"broadcasting. Please ensure they have the same size.", UserWarning,
                  stacklevel=3)
    return ops.broadcast_tensors(input, target)


def _same_shape(op: str, input, target, what: str = "target") -> None:
    si, st = _shape(input), _shape(target)
    if si != st:
        raise ValueError(f"{op}: expected {what} of the input's shape {_fmt(si)}, got "
                         f"{_fmt(st)}")


def _weighted(op: str, loss, input, weight, reduction: str, by_weight: bool = True):
    """Elementwise loss times ``weight`` (input's shape); 'mean' divides by weight.sum()
    (``by_weight``) or by the number of elements."""
    if weight is None:
        return _reduce(loss, reduction)
    if _shape(weight) != _shape(input):
        raise ValueError(f"{op}: expected weight of the input's shape {_fmt(_shape(input))}, "
                         f"got {_fmt(_shape(weight))}")
    loss = loss * weight
    if reduction == "mean" and by_weight:
        return loss.sum() / weight.sum()
    return _reduce(loss, reduction)


# ============================================================================ regression
def mse_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
             weight=None):
    """Mean squared error ``(input - target)^2``. Matches ``F.mse_loss``.

    Args: input, target of the same shape (broadcast with a warning otherwise); ``weight``
    (input's shape) multiplies each term, and 'mean' then divides by ``weight.sum()``.
    """
    reduction = _reduction("mse_loss", reduction, size_average, reduce)
    input, target = _broadcast_pair("mse_loss", input, target)
    d = input - target
    return _weighted("mse_loss", d * d, input, weight, reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
            weight=None):
    """Mean absolute error ``|input - target|``. Matches ``F.l1_loss`` (gradient 0 at ties)."""
    reduction = _reduction("l1_loss", reduction, size_average, reduce)
    input, target = _broadcast_pair("l1_loss", input, target)
    return _weighted("l1_loss", ops.abs(input - target), input, weight, reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0):
    """``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``. Matches
    ``F.smooth_l1_loss`` (``beta=0`` is the L1 loss)."""
    reduction = _reduction("smooth_l1_loss", reduction, size_average, reduce)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    input, target = _broadcast_pair("smooth_l1_loss", input, target)
    d = input - target
    a = ops.abs(d)
    if beta == 0:
        return _reduce(a, reduction)
    loss = ops.where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """``0.5 d^2`` where ``|d| < delta``, else ``delta (|d| - 0.5 delta)``. Matches
    ``F.huber_loss`` (``weight``, of the input's shape, multiplies each term; unlike
    mse_loss/l1_loss, PyTorch's 'mean' is then the plain mean)."""
    reduction = _reduction("huber_loss", reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    input, target = _broadcast_pair("huber_loss", input, target)
    d = input - target
    a = ops.abs(d)
    loss = ops.where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta)
    return _weighted("huber_loss", loss, input, weight, reduction, by_weight=False)


# ============================================================================ classification
def _class_input(op: str, input, target):
    """(input as (N, C, ...), target, unbatched?) for class-index losses; validates ranks."""
    _float_input(op, input)
    shape = _shape(input)
    if len(shape) == 0:
        raise ValueError(f"{op}: expected input of shape (C,), (N, C) or (N, C, d1, ...), got a "
                         f"0-d tensor")
    if len(shape) == 1:
        ts = _shape(target)
        td = ops.dtype_of(target)
        if td is not None and td.kind in "iu":
            if ts != ():
                raise ValueError(f"{op}: expected a 0-d target (one class index in [0, "
                                 f"{shape[0]})) for unbatched input of shape {_fmt(shape)}, "
                                 f"got shape {_fmt(ts)}")
            return ops.reshape(input, (1, shape[0])), ops.reshape(target, (1,)), True
        if ts == shape:
            return ops.reshape(input, (1, shape[0])), ops.reshape(target, (1, shape[0])), True
        return ops.reshape(input, (1, shape[0])), target, True
    return input, target, False


def cross_entropy(input, target, weight=None, size_average=None, ignore_index: int = -100,
                  reduce=None, reduction: str = "mean", label_smoothing: float = 0.0):
    """Cross-entropy between logits and targets (log_softmax + NLL, fused). Matches
    ``F.cross_entropy``.

    Args:
        input: logits (N, C), (N, C, d1, ...) or unbatched (C,).
        target: class indices (N,) / (N, d1, ...) / () of an integer dtype, or class
            probabilities of the input's shape (floating point).
        weight: (C,) per-class rescaling; 'mean' divides by the sum of the targets' weights.
        ignore_index: target value that contributes neither loss nor gradient (index targets).
        label_smoothing: in [0, 1]; mixes the target with the uniform distribution.
    Shape: output () for 'mean'/'sum', the target's shape (indices) or the input's shape
    without the class dim (probabilities) for 'none'.
    """
    op = "cross_entropy"
    reduction = _reduction(op, reduction, size_average, reduce)
    x, t, unbatched = _class_input(op, input, target)
    td = ops.dtype_of(t)
    if td is not None and td.kind == "f":
        out = _cross_entropy_probs(x, t, weight, reduction, label_smoothing)
    else:
        info = ops.class_targets(op, _shape(x), t, weight, ignore_index, label_smoothing,
                                 reduction, ops.dtype_of(x))
        out = ops.softmax_cross_entropy(x, info)
    if unbatched and reduction == "none":
        out = ops.reshape(out, ())
    return out


def _cross_entropy_probs(x, t, weight, reduction, eps):
    op = "cross_entropy"
    shape = _shape(x)
    if _shape(t) != shape:
        n, c = shape[0], shape[1]
        raise ValueError(f"{op}: expected target of shape {_fmt((n,) + shape[2:])} with class "
                         f"indices in [0, {c}) (integer dtype) or class probabilities of the "
                         f"input's shape {_fmt(shape)} (floating point), got a "
                         f"{ops.dtype_of(t)} target of shape {_fmt(_shape(t))}")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {eps}")
    c = shape[1]
    logp = ops.log_softmax(x, 1)
    q = t if eps == 0 else t * (1.0 - eps) + eps / c
    if weight is not None:
        if _shape(weight) != (c,):
            raise ValueError(f"{op}: expected weight of shape ({c},), got "
                             f"{_fmt(_shape(weight))}")
        q = q * ops.reshape(weight, (1, c) + (1,) * (len(shape) - 2))
    loss = -(logp * q).sum(1)
    return _reduce(loss, reduction)


def nll_loss(input, target, weight=None, size_average=None, ignore_index: int = -100,
             reduce=None, reduction: str = "mean"):
    """Negative log-likelihood of log-probabilities at class-index targets. Matches
    ``F.nll_loss``.

    Args: input (N, C), (N, C, d1, ...) or (C,) log-probabilities; target (N,) / (N, d1, ...)
    / () integer class indices; ``weight`` (C,) with PyTorch's weighted mean; ``ignore_index``.
    """
    op = "nll_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    x, t, unbatched = _class_input(op, input, target)
    info = ops.class_targets(op, _shape(x), t, weight, ignore_index, 0.0, reduction,
                             ops.dtype_of(x))
    out = ops.nll_class_loss(x, info)
    if unbatched and reduction == "none":
        out = ops.reshape(out, ())
    return out


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """``-(y log p + (1 - y) log(1 - p))`` of probabilities ``p``, logs clamped at -100.
    Matches ``F.binary_cross_entropy``.

    Args: input probabilities in [0, 1], target of the same shape (probabilities), ``weight``
    broadcastable to the input (multiplies each term; 'mean' is the plain mean).
    """
    op = "binary_cross_entropy"
    reduction = _reduction(op, reduction, size_average, reduce)
    _float_input(op, input)
    _float_input(op, target, "target")
    _same_shape(op, input, target)
    loss = ops.binary_cross_entropy_pointwise(input, target)
    if weight is not None:
        loss = loss * _weight_like(op, weight, input)
    return _reduce(loss, reduction)


def _weight_like(op, weight, input, name="weight"):
    try:
        ops.broadcast_shapes(_shape(weight), _shape(input))
    except (ValueError, RuntimeError):
        raise ValueError(f"{op}: {name} of shape {_fmt(_shape(weight))} cannot be broadcast to "
                         f"the input's shape {_fmt(_shape(input))}") from None
    return weight


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None,
                                     reduce=None, reduction: str = "mean", pos_weight=None):
    """Binary cross-entropy of logits, computed stably as
    ``(1 - y) x - (1 + (pos_weight - 1) y) logsigmoid(x)``. Matches
    ``F.binary_cross_entropy_with_logits``.

    Args: input logits and target of the same shape; ``weight`` broadcastable to the input;
    ``pos_weight`` broadcastable to the input (per class, along the last dim) weighs the
    positive term.
    """
    op = "binary_cross_entropy_with_logits"
    reduction = _reduction(op, reduction, size_average, reduce)
    _float_input(op, input)
    _float_input(op, target, "target")
    _same_shape(op, input, target)
    ls = ops.logsigmoid(input)
    if pos_weight is not None:
        lw = (_weight_like(op, pos_weight, input, "pos_weight") - 1.0) * target + 1.0
        loss = (1.0 - target) * input - lw * ls
    else:
        loss = (1.0 - target) * input - ls
    if weight is not None:
        loss = loss * _weight_like(op, weight, input)
    return _reduce(loss, reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction: str = "mean",
           log_target: bool = False):
    """Kullback-Leibler divergence ``target * (log target - input)`` with ``input`` in log
    space (``target`` too if ``log_target``). Matches ``F.kl_div``.

    ``reduction='batchmean'`` divides the sum by the batch size (the mathematical KL
    divergence); 'mean' divides by the number of elements.
    """
    op = "kl_div"
    reduction = _reduction(op, reduction, size_average, reduce, extra=("batchmean",))
    input, target = _broadcast_pair(op, input, target)
    if log_target:
        loss = ops.exp(target) * (target - input)
    else:
        pos = target > 0
        safe = ops.where(pos, target, 1.0)
        loss = target * ops.log(safe) - target * input
    if reduction == "batchmean":
        shape = _shape(input)
        total = loss.sum()
        return total / shape[0] if shape else total
    return _reduce(loss, reduction)


# ============================================================================ embedding / ranking
def cosine_embedding_loss(input1, input2, target, margin: float = 0.0, size_average=None,
                          reduce=None, reduction: str = "mean"):
    """``1 - cos(x1, x2)`` where ``y = 1``, ``max(0, cos(x1, x2) - margin)`` where ``y = -1``.
    Matches ``F.cosine_embedding_loss``.

    Shape: input1, input2 (N, D) or (D,); target (N,) or () of 1 / -1.
    """
    op = "cosine_embedding_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    s1, s2, st = _shape(input1), _shape(input2), _shape(target)
    if len(s1) not in (1, 2) or s1 != s2:
        raise ValueError(f"{op}: expected input1 and input2 of the same shape (N, D) or (D,), "
                         f"got {_fmt(s1)} and {_fmt(s2)}")
    if st != s1[:-1]:
        raise ValueError(f"{op}: expected target of shape {_fmt(s1[:-1]) if s1[:-1] else '()'}"
                         f" (one 1/-1 label per pair), got {_fmt(st) if st else '()'}")
    dim = len(s1) - 1
    eps = 1e-12
    prod = (input1 * input2).sum(dim)
    m1 = (input1 * input1).sum(dim) + eps
    m2 = (input2 * input2).sum(dim) + eps
    cos = prod / ops.sqrt(m1 * m2)
    zero = cos * 0.0
    pos = ops.where(target == 1, 1.0 - cos, zero)
    neg = ops.where(target == -1, ops.clamp(cos - margin, min=0.0), zero)
    return _reduce(pos + neg, reduction)


def margin_ranking_loss(input1, input2, target, margin: float = 0.0, size_average=None,
                        reduce=None, reduction: str = "mean"):
    """``max(0, -y (x1 - x2) + margin)``. Matches ``F.margin_ranking_loss``.

    Shape: input1, input2 and target of the same shape ((N,) or ()).
    """
    op = "margin_ranking_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    s1, s2, st = _shape(input1), _shape(input2), _shape(target)
    if not (s1 == s2 == st):
        raise ValueError(f"{op}: expected input1, input2 and target of the same shape, got "
                         f"{_fmt(s1)}, {_fmt(s2)} and {_fmt(st)}")
    loss = ops.clamp(-target * (input1 - input2) + margin, min=0.0)
    return _reduce(loss, reduction)


def triplet_margin_loss(anchor, positive, negative, margin: float = 1.0, p: float = 2,
                        eps: float = 1e-6, swap: bool = False, size_average=None, reduce=None,
                        reduction: str = "mean"):
    """``max(d(a, p) - d(a, n) + margin, 0)`` with ``d`` the pairwise p-norm distance (plus
    ``eps``); ``swap`` uses ``min(d(a, n), d(p, n))``. Matches ``F.triplet_margin_loss``.

    Shape: anchor, positive, negative (N, D) or (D,).
    """
    op = "triplet_margin_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    sa, sp, sn = _shape(anchor), _shape(positive), _shape(negative)
    if len(sa) not in (1, 2) or not (sa == sp == sn):
        raise ValueError(f"{op}: expected anchor, positive and negative of the same shape "
                         f"(N, D) or (D,), got {_fmt(sa)}, {_fmt(sp)} and {_fmt(sn)}")
    if margin <= 0:
        raise ValueError(f"{op}: margin must be greater than 0, got {margin}")
    d_pos = pairwise_distance(anchor, positive, p, eps)
    d_neg = pairwise_distance(anchor, negative, p, eps)
    if swap:
        d_neg = ops.minimum(d_neg, pairwise_distance(positive, negative, p, eps))
    loss = ops.clamp(d_pos - d_neg + margin, min=0.0)
    return _reduce(loss, reduction)


# ============================================================================ CTC
def ctc_loss(log_probs, targets, input_lengths, target_lengths, blank: int = 0,
             reduction: str = "mean", zero_infinity: bool = False):
    """Connectionist Temporal Classification loss. Matches ``F.ctc_loss``.

    Args:
        log_probs: (T, N, C) or unbatched (T, C) log-probabilities (e.g. ``log_softmax``).
        targets: (N, S) padded label sequences, or the 1-D concatenation of all sequences
            (length ``sum(target_lengths)``); unbatched: (S,). Labels in [0, C), not ``blank``.
        input_lengths, target_lengths: (N,) ints (tensors or sequences), or ints (unbatched).
        blank: index of the blank label.
        reduction: 'mean' divides each sequence's loss by its target length (at least 1),
            then averages over the batch; 'sum' adds; 'none' gives (N,).
        zero_infinity: replace infinite losses (impossible alignments) and their gradients
            by zero.
    Gradient: PyTorch's, i.e. exact w.r.t. the logits when ``log_probs = log_softmax(logits)``.
    """
    op = "ctc_loss"
    reduction = _reduction(op, reduction)
    shape = _shape(log_probs)
    _float_input(op, log_probs, "log_probs")
    unbatched = len(shape) == 2
    if unbatched:
        log_probs = ops.unsqueeze(log_probs, 1)
        tshape = _shape(targets)
        if len(tshape) != 1:
            raise ValueError(f"{op}: expected targets of shape (S,) for unbatched log_probs of "
                             f"shape {_fmt(shape)}, got {_fmt(tshape)}")
        targets = ops.reshape(targets, (1, tshape[0]))
        input_lengths = ops.reshape(ops.loss_int_array(input_lengths, op, "input_lengths"),
                                    (1,))
        target_lengths = ops.reshape(ops.loss_int_array(target_lengths, op, "target_lengths"),
                                     (1,))
    elif len(shape) != 3:
        raise ValueError(f"{op}: expected log_probs of shape (T, N, C) or (T, C), got "
                         f"{_fmt(shape)}")
    info = ops.ctc_targets(_shape(log_probs), targets, input_lengths, target_lengths, blank,
                           zero_infinity)
    nll = ops.ctc_nll(log_probs, info)
    if reduction == "mean":
        return (nll / info.mean_divisor(ops.dtype_of(log_probs))).mean()
    if reduction == "sum":
        return nll.sum()
    return ops.reshape(nll, ()) if unbatched else nll


# ============================================================================ further losses
def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False,
                     size_average=None, eps: float = 1e-8, reduce=None,
                     reduction: str = "mean"):
    """Poisson negative log-likelihood: ``exp(input) - target * input`` (``log_input``) or
    ``input - target * log(input + eps)``; ``full`` adds Stirling's term for target > 1.
    Matches ``F.poisson_nll_loss``."""
    op = "poisson_nll_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    input, target = _broadcast_pair(op, input, target)
    if log_input:
        loss = ops.exp(input) - target * input
    else:
        loss = input - target * ops.log(input + eps)
    if full:
        big = target > 1
        safe = ops.where(big, target, 1.0)
        stirling = safe * ops.log(safe) - safe + 0.5 * ops.log(safe * (2 * math.pi))
        loss = loss + ops.where(big, stirling, 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6,
                      reduction: str = "mean"):
    """Gaussian negative log-likelihood ``0.5 (log var + (input - target)^2 / var)``
    (+ ``0.5 log 2 pi`` if ``full``). Matches ``F.gaussian_nll_loss``.

    ``var`` has the input's shape, or lacks its last dim, or has size 1 there (one variance
    per sample), or is a number. Values are clamped at ``eps`` for stability; as in PyTorch
    the clamp is not differentiated (the gradient passes through unchanged).
    """
    op = "gaussian_nll_loss"
    reduction = _reduction(op, reduction)
    si = _shape(input)
    if isinstance(var, (int, float)):
        if var < 0:
            raise ValueError(f"{op}: var has negative entry/entries ({var})")
        var = creation.full(si, max(float(var), eps), dtype=input.dtype)
    else:
        sv = _shape(var)
        if sv != si:
            if si[:-1] == sv:
                var = ops.unsqueeze(var, -1)
            elif not (si[:-1] == sv[:-1] and sv and sv[-1] == 1):
                raise ValueError(f"{op}: var of shape {_fmt(sv)} does not match input of shape "
                                 f"{_fmt(si)} (expected the input's shape, the input's shape "
                                 f"without its last dim, or a last dim of size 1)")
        if bool(ops.any(var < 0)):
            raise ValueError(f"{op}: var has negative entry/entries")
        detached = var.detach()
        var = var + (ops.clamp(detached, min=eps) - detached)
    if _shape(target) != si:
        input, target = _broadcast_pair(op, input, target)
    d = input - target
    loss = (ops.log(var) + d * d / var) * 0.5
    if full:
        loss = loss + 0.5 * math.log(2 * math.pi)
    return _reduce(loss, reduction)


def soft_margin_loss(input, target, size_average=None, reduce=None, reduction: str = "mean"):
    """Two-class logistic loss ``log(1 + exp(-y x))``. Matches ``F.soft_margin_loss``."""
    op = "soft_margin_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    input, target = _broadcast_pair(op, input, target)
    return _reduce(-ops.logsigmoid(target * input), reduction)


def multilabel_soft_margin_loss(input, target, weight=None, size_average=None, reduce=None,
                                reduction: str = "mean"):
    """Multi-label one-versus-all logistic loss, averaged over the C classes. Matches
    ``F.multilabel_soft_margin_loss``.

    Shape: input and target (N, C) (or (C,)); ``weight`` broadcastable to them.
    """
    op = "multilabel_soft_margin_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    _same_shape(op, input, target)
    loss = -(target * ops.logsigmoid(input) + (1.0 - target) * ops.logsigmoid(-input))
    if weight is not None:
        loss = loss * _weight_like(op, weight, input)
    shape = _shape(input)
    dim = len(shape) - 1
    loss = loss.sum(dim) / shape[-1]
    return _reduce(loss, reduction)


def hinge_embedding_loss(input, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean"):
    """``x`` where ``y = 1``, ``max(0, margin - x)`` where ``y = -1``. Matches
    ``F.hinge_embedding_loss``."""
    op = "hinge_embedding_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    input, target = _broadcast_pair(op, input, target)
    zero = input * 0.0
    neg = ops.where(target != 1, ops.clamp(margin - input, min=0.0), zero)
    pos = ops.where(target != -1, input, zero)
    return _reduce(neg + pos, reduction)


def multi_margin_loss(input, target, p: int = 1, margin: float = 1.0, weight=None,
                      size_average=None, reduce=None, reduction: str = "mean"):
    """Multi-class hinge loss ``sum_{j != y} max(0, margin - x_y + x_j)^p / C`` (times
    ``weight[y]``). Matches ``F.multi_margin_loss``.

    Shape: input (N, C) or (C,); target (N,) or () integer class indices; p in {1, 2}.
    """
    op = "multi_margin_loss"
    reduction = _reduction(op, reduction, size_average, reduce)
    if p not in (1, 2):
        raise ValueError(f"{op}: only p == 1 and p == 2 are supported, got {p}")
    x, t, unbatched = _class_input(op, input, target)
    shape = _shape(x)
    if len(shape) != 2:
        raise ValueError(f"{op}: expected input of shape (N, C) or (C,), got {_fmt(shape)}")
    info = ops.class_targets(op, shape, t, weight, -100, 0.0, reduction, ops.dtype_of(x))
    c = shape[1]
    xy = ops.gather(x, 1, info.tix)
    z = ops.clamp(x - xy + margin, min=0.0)
    if p == 2:
        z = z * z
    if info.wt is not None:
        z = z * ops.unsqueeze(info.wt, 1)
    z = ops.where(ops.gt(ops.one_hot(info.t, c), 0), 0.0, z)
    loss = z.sum(1) / c
    if unbatched and reduction == "none":
        return ops.reshape(loss, ())
    return _reduce(loss, reduction)
