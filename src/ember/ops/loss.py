"""Loss kernels: fused softmax cross-entropy, class-index NLL, binary cross-entropy and CTC.

Matches: the numbers (forward and gradients) of ``torch.nn.functional.cross_entropy`` (class-index
targets), ``nll_loss``, ``binary_cross_entropy`` and ``ctc_loss``. The user-facing functions with
PyTorch's signatures live in :mod:`ember.nn.functional.loss`; this module holds the array work.

Design.

- *Class-index targets* (cross-entropy, NLL) share :class:`ClassTargets`, built once per call by
  :func:`class_targets`: it validates the target (shape, integer dtype, range) and precomputes
  the per-position weight ``w[target]`` (0 at ``ignore_index``), the mean's denominator (the sum
  of those weights, PyTorch's weighted mean) and the label-smoothing constants.
- :class:`SoftmaxCrossEntropy` fuses log_softmax, the pick at the target and the reduction into
  one primitive. With ``q`` the (smoothed, weighted) target distribution of a position, its loss
  is ``-sum_c q_c log p_c`` and its gradient ``c * (p * sum_c q_c - q)`` (``c`` the upstream
  gradient times the reduction's scale). The softmax ``p`` is kept from forward, so a training
  step's backward is one multiply and one indexed subtract. The gradient is itself a primitive
  (:class:`SoftmaxCrossEntropyGrad`) whose backward is written with ops functions, so
  ``create_graph=True`` gives exact second (and higher) derivatives.
- :class:`BinaryCrossEntropy` is elementwise, with PyTorch's clamp of the logs at -100 and of
  ``p (1 - p)`` at 1e-12 in the gradient.
- :class:`CtcLoss` runs the CTC forward (alpha) and backward (beta) recursions in log space over
  the extended label sequence (blanks between and around the labels), vectorized over the batch
  and the sequence positions, looping over time only. Its gradient w.r.t. ``log_probs`` follows
  PyTorch's convention: ``exp(log_probs) - exp(log(sum alpha beta) + nll - log_probs)``, which is
  the exact gradient w.r.t. the logits when ``log_probs = log_softmax(logits)`` (the extra
  ``exp(log_probs)`` term is annihilated by log_softmax's backward), and zero past each input
  length. The CTC gradient is not itself differentiable (as in PyTorch).

Inf/NaN that are part of the semantics (all targets ignored -> NaN mean, impossible alignments
-> inf) are produced under ``np.errstate`` so they raise no NumPy warnings.
"""

from __future__ import annotations

import numpy as np

from . import native
from .arrays import BLAS_FLOATS
from .base import NULL_CTX, Primitive, TensorBase, call, dtype_of

__all__ = [
    "ClassTargets", "class_targets", "softmax_cross_entropy", "nll_class_loss",
    "binary_cross_entropy_pointwise", "CtcTargets", "ctc_targets", "ctc_nll", "loss_int_array",
]

_QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore", "under": "ignore"}
_REDUCTIONS = ("none", "mean", "sum")


def _data(x):
    return x._data if isinstance(x, TensorBase) else x


def _graph(*xs) -> bool:
    return any(isinstance(x, TensorBase) for x in xs)


def _needs(ctx, i: int) -> bool:
    need = getattr(ctx, "needs_input_grad", None)
    return True if need is None else bool(need[i])


def _shape_str(shape) -> str:
    shape = tuple(shape)
    return f"({shape[0]},)" if len(shape) == 1 else str(shape)


def loss_int_array(x, op: str, name: str) -> np.ndarray:
    """``x`` (tensor, array, int or sequence of ints) as an integer array, or a clear TypeError."""
    a = np.asarray(_data(x))
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and a.size and np.all(a == np.round(a)) and name.endswith(
                "lengths"):
            return a.astype(np.int64)
        raise TypeError(f"{op}: expected {name} of an integer dtype, got {a.dtype}")
    return a.astype(np.int64, copy=False)


# ============================================================================ class-index targets
class ClassTargets:
    """The non-differentiable data of a class-index loss (see :func:`class_targets`)."""

    __slots__ = ("t", "tix", "rows", "wt", "valid", "weight", "wb", "eps", "C", "reduction",
                 "k", "denom", "s", "dtype", "shape")


def class_targets(op: str, input_shape, target, weight=None, ignore_index: int = -100,
                  label_smoothing: float = 0.0, reduction: str = "mean",
                  dtype=np.float32) -> ClassTargets:
    """Validate a class-index ``target`` for input of ``input_shape`` (N, C, d1, ...).

    Returns the :class:`ClassTargets` that :func:`softmax_cross_entropy` and
    :func:`nll_class_loss` use. Raises ValueError/TypeError/IndexError naming ``op``.
    """
    shape = tuple(input_shape)
    if len(shape) < 2:
        raise ValueError(f"{op}: expected input of shape (N, C) or (N, C, d1, ...), got "
                         f"{_shape_str(shape) if shape else '()'}")
    n, c = shape[0], shape[1]
    want = (n,) + shape[2:]
    a = np.asarray(_data(target))
    if a.dtype.kind not in "iu":
        if a.dtype.kind == "f" and tuple(a.shape) == shape:
            raise TypeError(f"{op}: got a floating-point target of the input's shape "
                            f"{shape}: class probabilities are only supported by "
                            f"cross_entropy; nll_loss expects integer class indices of shape "
                            f"{_shape_str(want)}")
        raise TypeError(f"{op}: expected target of integer class indices (dtype int64) of "
                        f"shape {_shape_str(want)}, got dtype {a.dtype} of shape "
                        f"{_shape_str(a.shape) if a.shape else '()'}")
    if tuple(a.shape) != want:
        raise ValueError(f"{op}: expected target of shape {_shape_str(want)} with class "
                         f"indices in [0, {c}), got shape "
                         f"{_shape_str(a.shape) if a.shape else '()'}")
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if lo >= 0 and hi < c and not lo <= ignore_index <= hi:
        valid, all_valid, t = None, True, a  # the common case: one pass over the target
    else:
        valid = a != ignore_index
        all_valid = bool(valid.all())
        t = a if all_valid else np.where(valid, a, 0)
        lo, hi = (int(t.min()), int(t.max())) if t.size else (0, 0)
    if t.size:
        if lo < 0 or hi >= c:
            bad = lo if lo < 0 else hi
            raise IndexError(f"{op}: target class index {bad} is out of range: expected class "
                             f"indices in [0, {c}) (or ignore_index={ignore_index}) for input "
                             f"of shape {shape}")
    info = ClassTargets()
    info.dtype = np.dtype(dtype)
    info.shape = shape
    info.C = c
    info.t = t
    info.tix = t[:, None]
    info.rows = np.arange(n) if len(shape) == 2 else None
    info.valid = None if all_valid else valid
    info.reduction = reduction
    info.eps = float(label_smoothing)
    w = None
    if weight is not None:
        w = np.asarray(_data(weight))
        if w.shape != (c,):
            raise ValueError(f"{op}: expected weight of shape ({c},) (one per class), got "
                             f"{_shape_str(w.shape) if w.shape else '()'}")
        w = w.astype(info.dtype, copy=False)
    info.weight = w
    info.wb = None if w is None else w.reshape((1, c) + (1,) * (len(shape) - 2))
    if w is not None:
        wt = w[t]
        if not all_valid:
            wt = wt * valid
    else:
        wt = None if all_valid else valid.astype(info.dtype)
    info.wt = wt
    denom = float(t.size) if wt is None else float(wt.sum(dtype=np.float64))
    info.denom = denom
    if reduction == "mean":
        info.k = 1.0 / denom if denom != 0 else 0.0
    else:
        info.k = 1.0
    # s = sum_c q_c per position (q: the weighted, smoothed target distribution)
    eps = info.eps
    if eps == 0.0:
        info.s = 1.0 if wt is None else wt
    else:
        total = float(c) if w is None else float(w.sum(dtype=np.float64))
        base = 1.0 - eps if wt is None else wt * (1.0 - eps)
        smooth = eps / c * total
        s = base + (smooth if all_valid else valid * smooth)
        info.s = float(s) if np.ndim(s) == 0 else np.asarray(s, dtype=info.dtype)
    return info


def _pick(a: np.ndarray, info: ClassTargets) -> np.ndarray:
    """``a[i, t_i, ...]``: the entries at the target classes (shape of the target)."""
    if info.rows is not None:
        return a[info.rows, info.t]
    return np.take_along_axis(a, info.tix, 1)[:, 0]


def _add_at(out: np.ndarray, info: ClassTargets, vals) -> None:
    """``out[i, t_i, ...] += vals`` in place (one entry per position, so no collisions)."""
    if info.rows is not None:
        out[info.rows, info.t] += vals
        return
    cur = np.take_along_axis(out, info.tix, 1)
    np.put_along_axis(out, info.tix, cur + np.expand_dims(np.asarray(vals), 1), 1)


def _reduce_np(loss: np.ndarray, info: ClassTargets) -> np.ndarray:
    dt = info.dtype
    if info.reduction == "none":
        return loss.astype(dt, copy=False)
    total = loss.sum(dtype=np.float64) if dt == np.float32 else loss.sum()
    if info.reduction == "sum":
        return np.asarray(total, dtype=dt)
    with np.errstate(**_QUIET):
        return np.asarray(np.float64(total) / info.denom, dtype=dt)


def _fused_rows(x, info: ClassTargets, name: str):
    """The compiled cross-entropy kernel ``name`` when it applies: (N, C) float rows, plain
    class targets (no class weights, ignored entries or label smoothing); else None."""
    k = native.kernel(name)
    if (k is None or info.rows is None or info.wt is not None or info.eps or not x.shape[1]
            or x.dtype not in BLAS_FLOATS or not x.flags.c_contiguous
            or info.t.dtype != np.int64 or not info.t.flags.c_contiguous):
        return None
    return k


def _expand_c(c):
    """A per-position array (N, d...) as (N, 1, d...) to broadcast over classes; scalars pass."""
    return c if np.ndim(c) == 0 else np.expand_dims(c, 1)


class SoftmaxCrossEntropy(Primitive):
    """Fused log_softmax + weighted/smoothed NLL + reduction over class axis 1."""

    @staticmethod
    def forward(ctx, x, info):
        fused = _fused_rows(x, info, "xent_fwd")
        if fused is not None:  # the compiled kernel: the same math, one pass per row
            e, loss = np.empty_like(x), np.empty(x.shape[0], x.dtype)
            if fused(x, info.t, e, loss, *x.shape):  # False: a non-finite row, see below
                if ctx is not NULL_CTX:
                    ctx.save_for_backward(x)
                    ctx.info, ctx.p = info, e
                return _reduce_np(loss, info)
        with np.errstate(**_QUIET):
            m = x.max(axis=1, keepdims=True)
            if not np.isfinite(m.sum()):  # a non-finite row max (an overflowing sum is harmless)
                m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
            sh = x - m
            e = np.exp(sh)
            se = e.sum(axis=1, keepdims=True)
            logz = np.log(se)[:, 0]
            loss = logz - _pick(sh, info)  # -log p at the target
            if info.wt is not None:
                loss *= info.wt
            eps = info.eps
            if eps:
                c = info.C
                if info.weight is None:
                    sm = c * logz - sh.sum(axis=1)
                else:
                    sm = float(info.weight.sum()) * logz - (sh * info.wb).sum(axis=1)
                if info.valid is not None:
                    sm *= info.valid
                loss = loss * (1.0 - eps) + sm * (eps / c)
            out = _reduce_np(loss, info)
        if ctx is not NULL_CTX:
            ctx.save_for_backward(x)
            ctx.info = info
            with np.errstate(**_QUIET):  # an inf logit gives NaN probabilities, as in PyTorch
                e /= se
            ctx.p = e
        return out

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return call(SoftmaxCrossEntropyGrad, g, x, info=ctx.info, p=ctx.p)


class SoftmaxCrossEntropyGrad(Primitive):
    """d(cross_entropy)/dx = c * (p * s - q); its own backward is written with ops functions."""

    @staticmethod
    def forward(ctx, g, x, info, p):
        if ctx is not NULL_CTX:
            ctx.save_for_backward(g, x)
            ctx.info = info
            ctx.p = p
        c = g * info.k if info.k != 1.0 else g
        c = np.asarray(c, dtype=info.dtype)
        fused = _fused_rows(p, info, "xent_bwd") if c.ndim == 0 else None
        if fused is not None:  # c (p - onehot(t)) in one pass
            out = np.empty_like(p)
            fused(p, info.t, float(c), out, *p.shape)
            return out
        out = p * _expand_c(c * info.s)
        cq = c * (1.0 - info.eps)
        if info.wt is not None:
            cq = cq * info.wt
        if np.ndim(cq) == 0:
            cq = np.full(info.t.shape, cq, dtype=info.dtype)
        _add_at(out, info, -cq)
        if info.eps:
            cv = c * (info.eps / info.C)
            if info.valid is not None:
                cv = cv * info.valid
            cv = _expand_c(cv)
            out -= cv * info.wb if info.wb is not None else cv
        return out.astype(info.dtype, copy=False)

    @staticmethod
    def backward(ctx, gg):
        g, x = ctx.saved
        info = ctx.info
        p = softmax(x, 1) if _graph(gg, g, x) else ctx.p
        need_g, need_x = _needs(ctx, 0), _needs(ctx, 1)
        per = info.reduction == "none"
        s = info.s
        gx = gg_out = None
        if need_x:
            cs = g * (info.k * s) if np.ndim(s) == 0 else mul(g, info.k) * s
            a = mul(gg, unsqueeze(cs, 1)) if per or np.ndim(s) else mul(gg, cs)
            gx = p * (a - sum_(a * p, 1, keepdim=True))
        if need_g:
            h = sum_(gg * p, 1) * s
            picked = squeeze(gather(gg, 1, info.tix), 1) * (1.0 - info.eps)
            if info.wt is not None:
                picked = picked * info.wt
            h = h - picked
            if info.eps:
                wgg = gg * info.wb if info.wb is not None else gg
                sm = sum_(wgg, 1) * (info.eps / info.C)
                if info.valid is not None:
                    sm = sm * info.valid.astype(info.dtype)
                h = h - sm
            gg_out = h * info.k if per else sum_(h) * info.k
        return gg_out, gx


class NllClassLoss(Primitive):
    """-w[t] * x[i, t_i, ...] with PyTorch's weighted mean; x holds log-probabilities."""

    @staticmethod
    def forward(ctx, x, info):
        loss = -_pick(x, info)
        if info.wt is not None:
            with np.errstate(**_QUIET):
                loss = loss * info.wt
        if ctx is not NULL_CTX:
            ctx.info = info
        return _reduce_np(loss, info)

    @staticmethod
    def backward(ctx, g):
        return call(NllClassGrad, g, info=ctx.info)


class NllClassGrad(Primitive):
    """zeros(x.shape) with -c * w[t] at the targets (linear in the upstream gradient)."""

    @staticmethod
    def forward(ctx, g, info):
        if ctx is not NULL_CTX:
            ctx.info = info
        out = np.zeros(info.shape, dtype=info.dtype)
        c = np.asarray(g * info.k if info.k != 1.0 else g, dtype=info.dtype)
        v = -c if info.wt is None else -c * info.wt
        if np.ndim(v) == 0:
            v = np.full(info.t.shape, v, dtype=info.dtype)
        _add_at(out, info, v)
        return out

    @staticmethod
    def backward(ctx, gg):
        info = ctx.info
        h = -squeeze(gather(gg, 1, info.tix), 1)
        if info.wt is not None:
            h = h * info.wt
        return (h * info.k if info.reduction == "none" else sum_(h) * info.k),


def softmax_cross_entropy(input, info: ClassTargets):
    """Cross-entropy of logits ``input`` (N, C, d...) with class-index targets in ``info``.

    Reduced as ``info.reduction`` says (PyTorch's weighted mean for 'mean').
    """
    return call(SoftmaxCrossEntropy, input, info=info)


def nll_class_loss(input, info: ClassTargets):
    """Negative log-likelihood of log-probabilities ``input`` (N, C, d...) at the targets."""
    return call(NllClassLoss, input, info=info)


# ============================================================================ binary cross-entropy
class BinaryCrossEntropy(Primitive):
    """-(y log p + (1 - y) log(1 - p)) elementwise, each log clamped at -100 (as PyTorch)."""

    @staticmethod
    def forward(ctx, p, y):
        with np.errstate(**_QUIET):
            lp = np.maximum(np.log(p), -100.0)
            l1p = np.maximum(np.log1p(-p), -100.0)
            out = (y - 1.0) * l1p - y * lp
        if ctx is not NULL_CTX:
            ctx.save_for_backward(p, y)
        return np.asarray(out, dtype=p.dtype)

    @staticmethod
    def backward(ctx, g):
        p, y = ctx.saved
        gp = gy = None
        if _needs(ctx, 0):
            gp = g * (p - y) / clamp(p * (1.0 - p), min=1e-12)
        if _needs(ctx, 1):
            gy = g * call(BceTargetGrad, p)
        return gp, gy


class BceTargetGrad(Primitive):
    """d(bce)/dy = max(log(1 - p), -100) - max(log p, -100) (constant in y)."""

    @staticmethod
    def forward(ctx, p):
        with np.errstate(**_QUIET):
            return (np.maximum(np.log1p(-p), -100.0) - np.maximum(np.log(p), -100.0)).astype(
                p.dtype, copy=False)

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("binary_cross_entropy: the second derivative w.r.t. (input, target) "
                           "is not implemented")


def binary_cross_entropy_pointwise(input, target):
    """Elementwise binary cross-entropy of probabilities ``input`` (no reduction, no weight)."""
    a = np.asarray(_data(input))
    if a.size and (a.min() < 0 or a.max() > 1 or np.isnan(a).any()):
        raise ValueError("binary_cross_entropy: all elements of input should be between 0 and "
                         f"1 (probabilities), got values in [{a.min()}, {a.max()}]; use "
                         "binary_cross_entropy_with_logits for unnormalized scores")
    return call(BinaryCrossEntropy, input, target)


# ============================================================================ CTC
class CtcTargets:
    """The non-differentiable data of a CTC loss: extended labels, lengths and masks."""

    __slots__ = ("ext", "skip", "S", "T", "blank", "zero_infinity")

    def mean_divisor(self, dtype) -> np.ndarray:
        """The target lengths clamped at 1 (what 'mean' divides each sequence's loss by)."""
        return np.maximum(self.S, 1).astype(dtype)


def ctc_targets(log_probs_shape, targets, input_lengths, target_lengths, blank: int = 0,
                zero_infinity: bool = False) -> CtcTargets:
    """Validate CTC targets for log_probs of shape (T, N, C); builds the extended labels."""
    op = "ctc_loss"
    T, N, C = log_probs_shape
    if not 0 <= blank < C:
        raise ValueError(f"{op}: blank must be in [0, {C}) for log_probs with {C} classes, got "
                         f"{blank}")
    tg = np.asarray(_data(targets))
    if tg.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected targets of an integer dtype (class indices), got "
                        f"{tg.dtype}")
    il = loss_int_array(input_lengths, op, "input_lengths").reshape(-1)
    tl = loss_int_array(target_lengths, op, "target_lengths").reshape(-1)
    if il.shape != (N,) or tl.shape != (N,):
        raise ValueError(f"{op}: expected input_lengths and target_lengths with one entry per "
                         f"batch element ({N}), got {il.size} and {tl.size}")
    if il.size and (il.min() < 0 or il.max() > T):
        raise ValueError(f"{op}: input_lengths must be in [0, {T}] (log_probs has {T} time "
                         f"steps), got {il.tolist()}")
    if tl.size and tl.min() < 0:
        raise ValueError(f"{op}: target_lengths must be non-negative, got {tl.tolist()}")
    s_max = int(tl.max()) if tl.size else 0
    if tg.ndim == 2:
        if tg.shape[0] != N:
            raise ValueError(f"{op}: expected padded targets of shape ({N}, S), got "
                             f"{tuple(tg.shape)}")
        if s_max > tg.shape[1]:
            raise ValueError(f"{op}: target_lengths {tl.tolist()} exceed the padded targets' "
                             f"length {tg.shape[1]} (targets of shape {tuple(tg.shape)})")
        padded = tg[:, :s_max]
    elif tg.ndim == 1:
        if int(tl.sum()) != tg.shape[0]:
            raise ValueError(f"{op}: 1-D (concatenated) targets must have sum(target_lengths) = "
                             f"{int(tl.sum())} elements, got {tg.shape[0]}")
        off = np.concatenate([[0], np.cumsum(tl)[:-1]]).astype(np.int64)
        idx = off[:, None] + np.arange(s_max)[None, :]
        idx = np.minimum(idx, max(tg.shape[0] - 1, 0))
        padded = tg[idx] if tg.size else np.zeros((N, s_max), np.int64)
    else:
        raise ValueError(f"{op}: expected targets of shape (N, S) or 1-D concatenated targets, "
                         f"got shape {tuple(tg.shape)}")
    inside = np.arange(s_max)[None, :] < tl[:, None]
    padded = np.where(inside, padded, blank).astype(np.int64)
    if padded.size and (padded.min() < 0 or padded.max() >= C):
        bad = int(padded.min()) if padded.min() < 0 else int(padded.max())
        raise IndexError(f"{op}: target label {bad} is out of range for log_probs with {C} "
                         f"classes (expected labels in [0, {C}))")
    L = 2 * s_max + 1
    ext = np.full((N, L), blank, dtype=np.int64)
    ext[:, 1::2] = padded
    skip = np.zeros((N, L), dtype=bool)
    if L > 2:
        skip[:, 2:] = (ext[:, 2:] != blank) & (ext[:, 2:] != ext[:, :-2])
    skip &= np.arange(L)[None, :] < (2 * tl + 1)[:, None]
    info = CtcTargets()
    info.ext, info.skip, info.S, info.T = ext, skip, tl, il
    info.blank, info.zero_infinity = blank, bool(zero_infinity)
    return info


def _lse3(a, b, c):
    m = np.maximum(np.maximum(a, b), c)
    ms = np.where(np.isneginf(m), 0.0, m)
    return ms + np.log(np.exp(a - ms) + np.exp(b - ms) + np.exp(c - ms))


def _ctc_alpha(E, info: CtcTargets):
    """Log forward variables (T, N, L) and the log-likelihood (N,) of each sequence."""
    T, N, L = E.shape
    ninf = -np.inf
    tl, il = info.T, info.S
    alpha = np.full((T, N, L), ninf)
    a = np.full((N, L), ninf)
    if T:
        a[:, 0] = E[0, :, 0]
        if L > 1:
            a[:, 1] = E[0, :, 1]
        alpha[0] = a
    pad1 = np.full((N, 1), ninf)
    pad2 = np.full((N, 2), ninf)
    for t in range(1, T):
        s1 = np.concatenate([pad1, a[:, :-1]], axis=1)
        s2 = np.where(info.skip, np.concatenate([pad2, a[:, :-2]], axis=1)[:, :L], ninf)
        new = _lse3(a, s1, s2) + E[t]
        a = np.where((t < tl)[:, None], new, a)
        alpha[t] = a
    rows = np.arange(N)
    last = alpha[np.maximum(tl - 1, 0), rows]
    end1 = last[rows, 2 * il]
    end2 = np.where(il > 0, last[rows, np.maximum(2 * il - 1, 0)], ninf)
    ll = np.logaddexp(end1, end2)
    ll = np.where(tl == 0, np.where(il == 0, 0.0, ninf), ll)
    return alpha, ll


def _ctc_beta(E, info: CtcTargets):
    T, N, L = E.shape
    ninf = -np.inf
    tl, il = info.T, info.S
    rows = np.arange(N)
    beta = np.full((T, N, L), ninf)
    start = np.full((N, L), ninf)
    start[rows, 2 * il] = 0.0
    start[rows, np.maximum(2 * il - 1, 0)] = np.where(il > 0, 0.0, start[rows, 2 * il])
    skip_next = np.zeros((N, L), dtype=bool)
    if L > 2:
        skip_next[:, :-2] = info.skip[:, 2:]
    pad1 = np.full((N, 1), ninf)
    pad2 = np.full((N, 2), ninf)
    b = np.full((N, L), ninf)
    for t in range(T - 1, -1, -1):
        n1 = np.concatenate([b[:, 1:], pad1], axis=1)
        n2 = np.where(skip_next, np.concatenate([b[:, 2:], pad2], axis=1)[:, -L:], ninf)
        rec = _lse3(b, n1, n2) + E[t]
        b = np.where((t == tl - 1)[:, None], start + E[t],
                     np.where((t < tl - 1)[:, None], rec, ninf))
        beta[t] = b
    return beta


class CtcLoss(Primitive):
    """Per-sequence CTC negative log-likelihood (N,) of log_probs (T, N, C)."""

    @staticmethod
    def forward(ctx, lp, info):
        T, N, C = lp.shape
        lp64 = lp.astype(np.float64, copy=False)
        with np.errstate(**_QUIET):
            E = lp64[:, np.arange(N)[:, None], info.ext]  # (T, N, L) emissions
            alpha, ll = _ctc_alpha(E, info)
            nll = -ll
            out = np.where(np.isposinf(nll), 0.0, nll) if info.zero_infinity else nll
        if ctx is not NULL_CTX:
            ctx.save_for_backward(lp)
            ctx.info, ctx.alpha, ctx.E, ctx.nll = info, alpha, E, nll
        return out.astype(lp.dtype)

    @staticmethod
    def backward(ctx, g):
        (lp,) = ctx.saved
        return call(CtcGrad, g, lp, info=ctx.info, alpha=ctx.alpha, E=ctx.E, nll=ctx.nll)


class CtcGrad(Primitive):
    """PyTorch's CTC gradient: (exp(lp) - exp(log(sum alpha beta) + nll - lp)) * g per sequence."""

    @staticmethod
    def forward(ctx, g, lp, info, alpha, E, nll):
        T, N, C = lp.shape
        lp64 = lp.astype(np.float64, copy=False)
        with np.errstate(**_QUIET):
            beta = _ctc_beta(E, info)
            ab = alpha + beta
            m = ab.max(axis=2, keepdims=True)
            m = np.where(np.isneginf(m), 0.0, m)
            w = np.exp(ab - m)
            flat = ((np.arange(T)[:, None, None] * N + np.arange(N)[None, :, None]) * C
                    + info.ext[None])
            sums = np.bincount(flat.ravel(), weights=w.ravel(), minlength=T * N * C)
            lcab = np.log(sums.reshape(T, N, C)) + m
            grad = np.exp(lp64) - np.exp(lcab + nll[None, :, None] - lp64)
            grad *= np.asarray(g, dtype=np.float64).reshape(1, -1, 1) if np.ndim(g) else g
            active = np.arange(T)[:, None] < info.T[None, :]
            if info.zero_infinity:
                active = active & ~np.isposinf(nll)[None, :]
            grad = np.where(active[:, :, None], grad, 0.0)
        return grad.astype(lp.dtype)

    @staticmethod
    def backward(ctx, gg):
        raise RuntimeError("ctc_loss: double backward (the derivative of the CTC gradient) is "
                           "not implemented, as in PyTorch")


def ctc_nll(log_probs, info: CtcTargets):
    """Per-sequence CTC negative log-likelihood (N,) of ``log_probs`` (T, N, C)."""
    d = dtype_of(log_probs)
    if d is None or d.kind != "f":
        raise TypeError(f"ctc_loss: expected floating-point log_probs, got "
                        f"{d if d is not None else type(log_probs).__name__}")
    return call(CtcLoss, log_probs, info=info)


# ops used in backward formulas (imported last: these modules import each other)
from .activation import softmax  # noqa: E402
from .binary import clamp, mul  # noqa: E402
from .indexing import gather  # noqa: E402
from .movement import squeeze, unsqueeze  # noqa: E402
from .reduce import sum as sum_  # noqa: E402
