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

Two primitives share the kernel: :class:`ScaledDotProductAttention` takes q, k, v (..., len, E)
and :class:`PackedSelfAttention` takes the packed output of a self-attention's input
projection, ``qkv`` (N, L, 3E) or (L, N, 3E), and returns the heads already merged back into
(N, L, E) / (L, N, E). The packed form reads q, k and v as strided views of ``qkv`` (no head
split copies, no per-part graph nodes) and its backward writes dq, dk, dv straight into one
(N, L, 3E) gradient (no padding and summing of three slices).

The backward is written with ops functions: on arrays it runs a NumPy fast path that reuses the
probabilities saved by forward and works in place on its own temporaries; on Tensors
(``create_graph=True``) it recomputes the probabilities from the saved inputs with ops, so
that second derivatives are exact.

Row sums over the key axis (the softmax normalizer, ``sum(dP * P, -1)``) are taken as a
matrix-vector product with a vector of ones (one BLAS call): NumPy's reduction over a short
contiguous last axis is several times slower.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from . import native
from .activation import softmax
from .arrays import BLAS_FLOATS
from .arrays import ones_vector as _ones
from .base import NULL_CTX, Primitive, TensorBase, call, dtype_of, shape_of
from .binary import where
from .linalg import matmul, mT
from .movement import permute, reshape, stack, unbind
from .reduce import sum as sum_
from .reduce import sum_to

__all__ = ["fused_attention", "packed_attention", "causal_block", "causal_additive"]

_QUIET = {"divide": "ignore", "invalid": "ignore", "over": "ignore", "under": "ignore"}


@lru_cache(maxsize=64)
def _causal_block(L: int, S: int) -> np.ndarray:
    """True above the diagonal of an (L, S) grid: the positions a causal mask hides."""
    b = np.triu(np.ones((L, S), dtype=bool), 1)
    b.flags.writeable = False
    return b


@lru_cache(maxsize=64)
def _causal_additive(L: int, S: int, dtype: np.dtype) -> np.ndarray:
    """-inf above the diagonal of an (L, S) grid, 0 elsewhere (read-only, cached)."""
    a = np.zeros((L, S), dtype)
    a[_causal_block(L, S)] = -np.inf
    a.flags.writeable = False
    return a


def causal_block(L: int, S: int) -> np.ndarray:
    """(L, S) bool array, True above the diagonal (the keys a causal mask hides); read-only."""
    return _causal_block(int(L), int(S))


def causal_additive(L: int, S: int, dtype) -> np.ndarray:
    """(L, S) array of ``dtype``, -inf above the diagonal and 0 elsewhere; read-only."""
    return _causal_additive(int(L), int(S), np.dtype(dtype))


def _rowsum(x: np.ndarray) -> np.ndarray:
    """``x.sum(-1, keepdims=True)``, as one BLAS matrix-vector product when possible."""
    n = x.shape[-1]
    if x.dtype in BLAS_FLOATS and x.flags.c_contiguous and x.size and n > 1:
        return np.matmul(x.reshape(-1, n), _ones(n, x.dtype)).reshape(x.shape[:-1] + (1,))
    return x.sum(axis=-1, keepdims=True)


def _needs(ctx, i: int) -> bool:
    need = getattr(ctx, "needs_input_grad", None)
    return True if need is None or i >= len(need) else bool(need[i])


# ---------------------------------------------------------------------------- NumPy kernels
def _attend(q, k, v, mask, scale, causal, dropout_p, nan_rows, out=None):
    """Forward on arrays: ``(out, p, pd, keep, hidden)`` (see the module docstring); the
    output is written into ``out`` when given (an array or view of the output's shape)."""
    s = np.matmul(q, np.swapaxes(k, -1, -2))
    fused = _fused_softmax(s, mask, scale, causal)
    if fused:
        p, hidden = s, None
    else:
        if fused is not None:  # the kernel met a fully masked row: redo it all in NumPy
            s = np.matmul(q, np.swapaxes(k, -1, -2))
        p, hidden = _masked_softmax_np(s, mask, scale, causal, nan_rows)
    return _attend_tail(p, v, hidden, dropout_p, out)


def _fused_softmax(s, mask, scale, causal):
    """The compiled kernel's masked softmax of the scores ``s`` in place, when it applies (no
    mask, or one float (L, S) mask shared by the batch): True; False if it met a row with
    nothing finite to attend to (``s`` is then spoiled); None if it does not apply."""
    k = native.kernel("softmax_rows")
    if k is None or s.dtype not in BLAS_FLOATS or not s.flags.c_contiguous or s.ndim < 2:
        return None
    L, S = s.shape[-2:]
    if mask is not None and (mask.dtype != s.dtype or mask.size != L * S
                             or mask.shape[-2:] != (L, S) or not mask.flags.c_contiguous):
        return None
    if L == 0 or S == 0:
        return None
    return bool(k(s, s.size // S, S, scale, mask, L, causal))


def _masked_softmax_np(s, mask, scale, causal, nan_rows):
    """NumPy path of the attention weights from the scores ``s`` (overwritten): (p, the rows
    that nothing may attend to, or None)."""
    s *= s.dtype.type(scale)
    may_hide = mask is not None
    if mask is not None:
        if mask.dtype == np.bool_:
            full = np.broadcast_shapes(s.shape, mask.shape)
            if full != s.shape:
                s = np.array(np.broadcast_to(s, full))
            np.copyto(s, -np.inf, where=np.logical_not(mask))
        elif np.broadcast_shapes(s.shape, mask.shape) == s.shape:
            s += mask
        else:
            s = s + mask
    if causal:
        L, S = s.shape[-2:]
        s += _causal_additive(L, S, s.dtype)
    hidden = None  # rows that nothing may attend to (only possible with a mask)
    with np.errstate(**_QUIET):
        m = s.max(axis=-1, keepdims=True)
        if may_hide:
            hidden = np.isneginf(m)
            if hidden.any():
                if not nan_rows:
                    m[hidden] = 0.0
            else:
                hidden = None
        s -= m
        np.exp(s, out=s)
        total = _rowsum(s)
        if hidden is not None and not nan_rows:
            total[hidden] = 1.0  # the row is all zeros: 0 / 1 = 0
        np.reciprocal(total, out=total)
        s *= total
    return s, hidden


def _attend_tail(p, v, hidden, dropout_p, out):
    """Dropout on the weights ``p``, then ``p @ v``: ``(out, p, pd, keep, hidden)``."""
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
    if out is None:
        out = np.matmul(pd, v)
    else:
        np.matmul(pd, v, out=out)
    return out, p, pd, keep, hidden


def _grads_np(ctx, q, k, v, mask, g, gw, rowdot, need_q, need_k, need_v, need_m, dst=None):
    """Backward on arrays: (gq, gk, gv, gmask) with the full broadcast batch shape (gmask
    already summed to the mask's shape). ``rowdot()`` gives ``sum(g * out, -1, keepdims)``
    (``out`` the forward's output). With ``dst`` (three arrays or views of the batch shape),
    gq, gk and gv are written there. Never writes into ``g``, ``gw`` or the saved arrays."""
    p, keep = ctx.p, ctx.keep
    pd = p if keep is None else p * keep
    gq = gk = gv = gm = None
    if need_v:
        gv = _mm(np.swapaxes(pd, -1, -2), g, None if dst is None else dst[2])
    if need_q or need_k or need_m:
        gp = np.matmul(g, np.swapaxes(v, -1, -2))  # a fresh array: updated in place below
        with np.errstate(invalid="ignore"):
            if gw is None:
                # sum(dP * P, -1) = g . (Pd v) = g . out (row by row): half the work
                rs = rowdot()
            else:
                if gp.shape == np.broadcast_shapes(gp.shape, np.shape(gw)):
                    gp += gw
                else:
                    gp = gp + gw
                rs = None
            if keep is not None:
                gp *= keep
            if rs is None:
                rs = _rowsum(gp * p)
            fused = native.kernel("softmax_rows_bwd")
            if (fused is not None and gp.dtype in BLAS_FLOATS and p.dtype == gp.dtype
                    and rs.dtype == gp.dtype and gp.shape == p.shape
                    and rs.shape == gp.shape[:-1] + (1,) and gp.flags.c_contiguous
                    and p.flags.c_contiguous and rs.flags.c_contiguous):
                fused(gp, p, rs, rs.size, gp.shape[-1])  # gp <- (gp - rs) p in one pass
            else:
                gp -= rs
                gp *= p  # gp is now dS
        if need_m:
            gm = sum_to(gp, mask.shape)
        sc = gp.dtype.type(ctx.scale)
        if need_q:
            gq = _mm(gp, k, None if dst is None else dst[0])
            gq *= sc
        if need_k:
            gk = _mm(np.swapaxes(gp, -1, -2), q, None if dst is None else dst[1])
            gk *= sc
    return gq, gk, gv, gm


def _mm(a, b, out):
    if out is None:
        return np.matmul(a, b)
    np.matmul(a, b, out=out)
    return out


def _grads_ops(ctx, q, k, v, mask, g, gw, need_q, need_k, need_v, need_m):
    """Backward with ops functions (differentiable: used under ``create_graph=True``)."""
    keep = ctx.keep
    p = _recompute_probs(ctx, q, k, mask)
    pd = p if keep is None else p * keep
    gq = gk = gv = gm = None
    if need_v:
        gv = matmul(mT(pd), g)
    if need_q or need_k or need_m:
        gp = matmul(g, mT(v))
        if gw is not None:
            gp = gp + gw
        if keep is not None:
            gp = gp * keep
        gs = p * (gp - sum_(gp * p, -1, keepdim=True))
        if need_m:
            gm = sum_to(gs, shape_of(mask))
        gs = gs * ctx.scale
        if need_q:
            gq = matmul(gs, k)
        if need_k:
            gk = matmul(mT(gs), q)
    return gq, gk, gv, gm


def _save(ctx, p, keep, hidden, scale, causal, nan_rows) -> None:
    ctx.p, ctx.keep, ctx.hidden = p, keep, hidden
    ctx.scale, ctx.causal, ctx.nan_rows = scale, causal, nan_rows


def _float_mask(mask) -> bool:
    return mask is not None and dtype_of(mask) != np.bool_


class ScaledDotProductAttention(Primitive):
    """softmax(q k^T * scale + mask) @ v with optional dropout on the weights (see module doc).

    Inputs: q (..., L, E), k (..., S, E), v (..., S, Ev) and optionally a mask broadcastable to
    (..., L, S): bool (True = may attend) or float (added to the scores). Output (..., L, Ev),
    plus the (dropped-out) weights (..., L, S) when ``weights=True``.
    """

    @staticmethod
    def forward(ctx, q, k, v, mask=None, *, scale, causal=False, dropout_p=0.0,
                weights=False, nan_rows=False):
        out, p, pd, keep, hidden = _attend(q, k, v, mask, scale, causal, dropout_p, nan_rows)
        if ctx is not NULL_CTX:
            _save(ctx, p, keep, hidden, scale, causal, nan_rows)
            ctx.save_for_backward(q, k, v, mask, out)
        if weights:
            return out, pd
        return out

    @staticmethod
    def backward(ctx, g, gw=None):
        q, k, v, mask, out = ctx.saved
        need_m = _float_mask(mask) and _needs(ctx, 3)
        needs = (_needs(ctx, 0), _needs(ctx, 1), _needs(ctx, 2), need_m)
        if any(isinstance(x, TensorBase) for x in (g, gw, q, k, v, mask)):
            gq, gk, gv, gm = _grads_ops(ctx, q, k, v, mask, g, gw, *needs)
        else:
            gq, gk, gv, gm = _grads_np(ctx, q, k, v, mask, g, gw,
                                       lambda: _rowsum(g * out), *needs)
        gq = None if gq is None else sum_to(gq, shape_of(q))
        gk = None if gk is None else sum_to(gk, shape_of(k))
        gv = None if gv is None else sum_to(gv, shape_of(v))
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


# ---------------------------------------------------------------------------- packed qkv
def _split_perm(batch_first: bool) -> tuple:
    """Permutation of the (N, L, 3, H, D) / (L, N, 3, H, D) view to (3, N, H, L, D)."""
    return (2, 0, 3, 1, 4) if batch_first else (2, 1, 3, 0, 4)


def _heads_shape(x, heads: int, parts: int) -> tuple:
    shape = shape_of(x)
    return shape[:2] + (parts, heads, shape[2] // (parts * heads))


def _split_np(x, heads: int, parts: int, batch_first: bool):
    """Views (N, H, len, D) of the ``parts`` packed projections in ``x`` (no copies)."""
    return x.reshape(_heads_shape(x, heads, parts)).transpose(_split_perm(batch_first))


def _merge_perm(batch_first: bool) -> tuple:
    """Permutation of (N, H, L, D) to (N, L, H, D) / (L, N, H, D)."""
    return (0, 2, 1, 3) if batch_first else (2, 0, 1, 3)


class PackedSelfAttention(Primitive):
    """Multi-head attention on a packed projection ``qkv`` (N, L, 3E) (batch_first) or
    (L, N, 3E), whose last dim holds q, k and v, each ``heads`` heads of E / heads features.

    Optional mask broadcastable to (N, heads, L, L), as for :class:`ScaledDotProductAttention`.
    Output: the attention output with the heads merged, (N, L, E) or (L, N, E); plus the
    (dropped-out) weights (N, heads, L, L) when ``weights=True``.
    """

    @staticmethod
    def forward(ctx, qkv, mask=None, *, heads, scale, batch_first=True, causal=False,
                dropout_p=0.0, weights=False, nan_rows=False):
        q, k, v = _split_np(qkv, heads, 3, batch_first)
        sh = qkv.shape
        out = np.empty(sh[:2] + (sh[2] // 3,), qkv.dtype)
        # the kernel writes the (N, H, L, D) result straight into the merged layout
        out4 = _split_np(out, heads, 1, batch_first)[0]
        _, p, pd, keep, hidden = _attend(q, k, v, mask, scale, causal, dropout_p, nan_rows,
                                         out=out4)
        if ctx is not NULL_CTX:
            _save(ctx, p, keep, hidden, scale, causal, nan_rows)
            ctx.heads, ctx.batch_first = heads, batch_first
            ctx.save_for_backward(qkv, mask, out)
        if weights:
            return out, pd
        return out

    @staticmethod
    def backward(ctx, g, gw=None):
        qkv, mask, out = ctx.saved
        H, bf = ctx.heads, ctx.batch_first
        need_x = _needs(ctx, 0)
        need_m = _float_mask(mask) and _needs(ctx, 1)
        gx = None
        if not any(isinstance(x, TensorBase) for x in (g, gw, qkv, mask)):
            q, k, v = _split_np(qkv, H, 3, bf)
            g4 = _split_np(g, H, 1, bf)[0]
            dst = None
            if need_x:
                gx = np.empty(qkv.shape, qkv.dtype)
                dst = _split_np(gx, H, 3, bf)

            def rowdot():  # sum(g * out) over each head's features, as (N, H, L, 1)
                n = g.shape[:2] + (H,)
                t = _rowsum((g * out).reshape(n + (-1,))).reshape(n)
                return (t.transpose(0, 2, 1) if bf else t.transpose(1, 2, 0))[..., None]

            _, _, _, gm = _grads_np(ctx, q, k, v, mask, g4, gw, rowdot, need_x, need_x,
                                    need_x, need_m, dst)
        else:
            sh = shape_of(qkv)
            perm = _split_perm(bf)
            q, k, v = unbind(permute(reshape(qkv, _heads_shape(qkv, H, 3)), perm), 0)
            g4 = unbind(permute(reshape(g, _heads_shape(g, H, 1)), perm), 0)[0]
            gq, gk, gv, gm = _grads_ops(ctx, q, k, v, mask, g4, gw, need_x, need_x, need_x,
                                        need_m)
            if need_x:
                inv = tuple(int(i) for i in np.argsort(perm))
                gx = reshape(permute(stack([gq, gk, gv], 0), inv), sh)
        if mask is None:
            return gx
        return gx, gm


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


def packed_attention(qkv, mask=None, *, num_heads: int, scale: float, batch_first: bool = True,
                     causal: bool = False, dropout_p: float = 0.0, need_weights: bool = False,
                     nan_rows: bool = False):
    """Multi-head self-attention on a packed input projection (shapes validated by the caller).

    Args:
        qkv: (N, L, 3E) with ``batch_first``, else (L, N, 3E): q, k and v side by side in the
            last dim (the output of a ``Linear(E, 3E)``), each split into ``num_heads`` heads.
        mask: None, a bool mask (True = may attend) or a float mask of qkv's dtype,
            broadcastable to (N, num_heads, L, L).
        scale, causal, dropout_p, need_weights, nan_rows: as for :func:`fused_attention`.
    Returns:
        The output with the heads merged, (N, L, E) or (L, N, E); with ``need_weights`` also
        the weights (N, num_heads, L, L).
    """
    args = (qkv,) if mask is None else (qkv, mask)
    return call(PackedSelfAttention, *args, heads=int(num_heads), scale=float(scale),
                batch_first=bool(batch_first), causal=bool(causal),
                dropout_p=float(dropout_p), weights=bool(need_weights),
                nan_rows=bool(nan_rows))
