"""Fused scaled dot-product attention: ``softmax(q k^T * scale + mask) @ v`` in one primitive.

Matches: the math of ``torch.nn.functional.scaled_dot_product_attention`` (and the attention
core of ``torch.nn.MultiheadAttention``).

One primitive instead of six (matmul, scale, mask, softmax, dropout, matmul) keeps the autograd
overhead of a Transformer layer low and lets the backward reuse the softmax probabilities:

    S = q k^T * scale (+ mask)        P = softmax(S)        Pd = P * keep        out = Pd v
    dv = Pd^T g     dPd = g v^T (+ g_weights)     dP = dPd * keep
    dS = P * (dP - sum(dP * P, -1))   dq = dS k * scale    dk = dS^T q * scale   dmask = dS

``keep`` is the (scaled) dropout mask, drawn from ember's seeded generator. Leading (batch)
dims of q, k, v and the mask broadcast; gradients are summed back to each input's shape.

Fully masked rows (every score -inf): with ``nan_rows=False`` (the default, like PyTorch 2.13's
scaled_dot_product_attention, whose math path uses a "safe softmax") the row of weights is all
zero, so the output row is 0 and no gradient flows through it; with ``nan_rows=True`` the row is
NaN, as the plain softmax that ``MultiheadAttention`` uses when it returns its weights.

The backward is written with ops functions: on arrays it reuses the probabilities saved by
forward; on Tensors (``create_graph=True``) it recomputes them from the saved inputs, so that
second derivatives are exact.
"""

from __future__ import annotations

import numpy as np

from .activation import softmax
from .base import Primitive, TensorBase, call, dtype_of, shape_of
from .binary import where
from .linalg import matmul, mT
from .reduce import sum as sum_
from .reduce import sum_to

__all__ = ["fused_attention"]

_QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore", "under": "ignore"}


def _causal_block(L: int, S: int) -> np.ndarray:
    """True above the diagonal of an (L, S) grid: the positions a causal mask hides."""
    return np.triu(np.ones((L, S), dtype=bool), 1)


def _needs(ctx, i: int) -> bool:
    need = getattr(ctx, "needs_input_grad", None)
    return True if need is None or i >= len(need) else bool(need[i])


class ScaledDotProductAttention(Primitive):
    """softmax(q k^T * scale + mask) @ v with optional dropout on the weights (see module doc).

    Inputs: q (..., L, E), k (..., S, E), v (..., S, Ev) and optionally a mask broadcastable to
    (..., L, S): bool (True = may attend) or float (added to the scores). Output (..., L, Ev),
    plus the (dropped-out) weights (..., L, S) when ``weights=True``.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask=None, *, scale, causal=False, dropout_p=0.0,
                weights=False, nan_rows=False):
        s = np.matmul(q, np.swapaxes(k, -1, -2))
        s *= s.dtype.type(scale)
        hidden = None  # rows that nothing may attend to (only possible with a mask)
        if mask is not None:
            if mask.dtype == np.bool_:
                full = np.broadcast_shapes(s.shape, mask.shape)
                if full != s.shape:
                    s = np.array(np.broadcast_to(s, full))
                np.copyto(s, -np.inf, where=np.logical_not(mask))
            else:
                if np.broadcast_shapes(s.shape, mask.shape) == s.shape:
                    s += mask
                else:
                    s = s + mask
        if causal:
            np.copyto(s, -np.inf, where=_causal_block(s.shape[-2], s.shape[-1]))
        with np.errstate(**_QUIET):
            m = s.max(axis=-1, keepdims=True)
            if mask is not None:
                hidden = np.isneginf(m)
                if hidden.any():
                    if not nan_rows:
                        m[hidden] = 0.0
                else:
                    hidden = None
            s -= m
            np.exp(s, out=s)
            total = s.sum(axis=-1, keepdims=True)
            if hidden is not None and not nan_rows:
                total[hidden] = 1.0  # the row is all zeros: 0 / 1 = 0
            s /= total
        p = s
        keep = None
        if dropout_p > 0.0:
            from .random import bernoulli

            if dropout_p >= 1.0:
                keep = np.zeros(p.shape, p.dtype)
            else:
                keep = bernoulli(p.shape, 1.0 - dropout_p, p.dtype)
                keep *= keep.dtype.type(1.0 / (1.0 - dropout_p))
            pd = p * keep
        else:
            pd = p
        out = np.matmul(pd, v)
        ctx.p, ctx.keep, ctx.hidden = p, keep, hidden
        ctx.scale, ctx.causal, ctx.nan_rows = scale, causal, nan_rows
        if mask is None:
            ctx.save_for_backward(q, k, v)
        else:
            ctx.save_for_backward(q, k, v, mask)
        if weights:
            return out, pd
        return out

    @staticmethod
    def backward(ctx, g, gw=None):
        saved = ctx.saved
        q, k, v = saved[:3]
        mask = saved[3] if len(saved) > 3 else None
        keep = ctx.keep
        if any(isinstance(x, TensorBase) for x in saved):
            p = _recompute_probs(ctx, q, k, mask)  # differentiable (create_graph=True)
        else:
            p = ctx.p
        pd = p if keep is None else p * keep
        sq, sk, sv = shape_of(q), shape_of(k), shape_of(v)
        gq = gk = gv = gm = None
        if _needs(ctx, 2):
            gv = sum_to(matmul(mT(pd), g), sv)
        need_s = _needs(ctx, 0) or _needs(ctx, 1) or (mask is not None and _needs(ctx, 3))
        if need_s:
            gp = matmul(g, mT(v))
            if gw is not None:
                gp = gp + gw
            if keep is not None:
                gp = gp * keep
            gs = p * (gp - sum_(gp * p, -1, keepdim=True))
            if mask is not None and _needs(ctx, 3) and dtype_of(mask) != np.bool_:
                gm = sum_to(gs, shape_of(mask))
            gs = gs * ctx.scale
            if _needs(ctx, 0):
                gq = sum_to(matmul(gs, k), sq)
            if _needs(ctx, 1):
                gk = sum_to(matmul(mT(gs), q), sk)
        if mask is None:
            return gq, gk, gv
        return gq, gk, gv, gm


def _recompute_probs(ctx, q, k, mask):
    """The attention probabilities rebuilt with ops from the saved inputs (for double backward)."""
    s = matmul(q, mT(k)) * ctx.scale
    if mask is not None:
        if dtype_of(mask) == np.bool_:
            s = where(mask, s, -np.inf)
        else:
            s = s + mask
    if ctx.causal:
        sh = shape_of(s)
        s = where(_causal_block(sh[-2], sh[-1]), -np.inf, s)
    if ctx.hidden is not None and not ctx.nan_rows:
        s = where(ctx.hidden, 0.0, s)  # finite scores, then zeroed below
        return where(ctx.hidden, 0.0, softmax(s, -1))
    return softmax(s, -1)


def fused_attention(query, key, value, mask=None, *, scale: float, causal: bool = False,
              dropout_p: float = 0.0, need_weights: bool = False, nan_rows: bool = False):
    """The fused attention primitive (shapes already validated by the caller).

    Args:
        query, key, value: (..., L, E), (..., S, E), (..., S, Ev), one dtype.
        mask: None, a bool mask (True = may attend) or a float mask of the query's dtype,
            broadcastable to (..., L, S).
        scale: factor applied to q k^T.
        causal: hide the keys after each query position (upper-left aligned).
        dropout_p: dropout probability on the attention weights.
        need_weights: also return the (dropped-out) weights (..., L, S).
        nan_rows: fully masked rows give NaN (plain softmax) instead of zeros.
    Returns:
        The output (..., L, Ev), or ``(output, weights)`` with ``need_weights``.
    """
    args = (query, key, value) if mask is None else (query, key, value, mask)
    return call(ScaledDotProductAttention, *args, scale=float(scale), causal=bool(causal),
                dropout_p=float(dropout_p), weights=bool(need_weights),
                nan_rows=bool(nan_rows))
