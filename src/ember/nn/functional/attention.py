"""Attention in ``ember.nn.functional``: ``scaled_dot_product_attention``.

Matches: ``torch.nn.functional.scaled_dot_product_attention`` (its math; the fused kernel is
:func:`ember.ops.fused_attention`).
"""

from __future__ import annotations

import math

from ... import ops

__all__ = ["scaled_dot_product_attention"]


def _shape(x) -> tuple:
    return tuple(ops.shape_of(x))


def check_attn_mask(op: str, mask, query, L: int, S: int, batch: tuple):
    """Validate an attention mask and return it as a bool or query-dtype float mask."""
    dt = ops.dtype_of(mask)
    qdt = ops.dtype_of(query)
    if dt is None:
        raise TypeError(f"{op}: attn_mask must be a tensor, got {type(mask).__name__}")
    if dt.kind == "f":
        mask = ops.cast(mask, qdt)
    elif dt.kind != "b":
        raise RuntimeError(f"{op}: expected attn_mask of dtype bool or float (matching the "
                           f"query's {qdt}), got {dt}")
    sm = _shape(mask)
    try:
        full = ops.broadcast_shapes(sm, batch + (L, S))
    except (ValueError, RuntimeError):
        full = None
    if full != batch + (L, S):
        raise RuntimeError(f"{op}: attn_mask of shape {sm} cannot be broadcast to the "
                           f"attention scores' shape {batch + (L, S)}")
    return mask


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale=None, enable_gqa: bool = False):
    """``softmax(query key^T * scale + mask) @ value``, with dropout on the attention weights.

    Args:
        query: (..., L, E). key: (..., S, E). value: (..., S, Ev). Leading dims broadcast.
        attn_mask: bool (True = the position takes part) or float (added to the scores),
            broadcastable to (..., L, S).
        dropout_p: dropout probability applied to the weights (whenever > 0, as in PyTorch:
            pass 0.0 in evaluation).
        is_causal: hide key j from query i when j > i (upper-left aligned, tril of an (L, S)
            grid of ones). Cannot be combined with ``attn_mask`` (a RuntimeError, as in
            PyTorch's math path).
        scale: factor on the scores; default ``1 / sqrt(E)``.
        enable_gqa: grouped-query attention: key/value may have fewer heads (dim -3) than the
            query, a divisor of them; each key/value head serves consecutive query heads.

    Shape: output (..., L, Ev).

    Query rows that every key is masked from give zeros (and no gradient), like PyTorch 2.13's
    math path (its "safe softmax"); note that MultiheadAttention with ``need_weights=True``
    gives NaN there instead, as PyTorch's does.

    Matches: ``torch.nn.functional.scaled_dot_product_attention``.
    """
    op = "scaled_dot_product_attention"
    sq, sk, sv = _shape(query), _shape(key), _shape(value)
    if len(sq) < 2 or len(sk) < 2 or len(sv) < 2:
        raise RuntimeError(f"{op}: query, key and value need at least 2 dims (..., L, E), got "
                           f"shapes {sq}, {sk} and {sv}")
    dq = ops.dtype_of(query)
    if dq is None or dq.kind != "f":
        raise TypeError(f"{op}: expected floating-point tensors, got query of dtype {dq}")
    if ops.dtype_of(key) != dq or ops.dtype_of(value) != dq:
        raise RuntimeError(f"{op}: expected query, key and value to have the same dtype, got "
                           f"{dq}, {ops.dtype_of(key)} and {ops.dtype_of(value)}")
    if sq[-1] != sk[-1]:
        raise RuntimeError(f"{op}: query and key must have the same embedding size, got "
                           f"shapes {sq} (E={sq[-1]}) and {sk} (E={sk[-1]})")
    if sk[-2] != sv[-2]:
        raise RuntimeError(f"{op}: key and value must have the same sequence length, got "
                           f"shapes {sk} (S={sk[-2]}) and {sv} (S={sv[-2]})")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be between 0 and 1, got {dropout_p}")
    if enable_gqa and len(sq) >= 3 and len(sk) >= 3 and sq[-3] != sk[-3]:
        hq, hk = sq[-3], sk[-3]
        if hk == 0 or hq % hk or sv[-3] != hk:
            raise RuntimeError(f"{op}: with enable_gqa the query heads ({hq}) must be a "
                               f"multiple of the key/value heads ({hk} and {sv[-3]})")
        key = ops.repeat_interleave(key, hq // hk, dim=-3)
        value = ops.repeat_interleave(value, hq // hk, dim=-3)
        sk, sv = _shape(key), _shape(value)
    try:
        batch = tuple(ops.broadcast_shapes(sq[:-2], sk[:-2], sv[:-2]))
    except (ValueError, RuntimeError):
        raise RuntimeError(f"{op}: the batch dims of query {sq}, key {sk} and value {sv} "
                           f"cannot be broadcast together") from None
    L, S = sq[-2], sk[-2]
    if is_causal and attn_mask is not None:
        raise RuntimeError(f"{op}: explicit attn_mask should not be set when is_causal=True "
                           f"(fold the causal mask into attn_mask instead)")
    if attn_mask is not None:
        attn_mask = check_attn_mask(op, attn_mask, query, L, S, batch)
    if scale is None:
        scale = 1.0 / math.sqrt(sq[-1]) if sq[-1] > 0 else 1.0
    return ops.fused_attention(query, key, value, attn_mask, scale=scale, causal=is_causal,
                               dropout_p=dropout_p)
