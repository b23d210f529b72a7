"""Attention layers: ``MultiheadAttention``.

Matches: ``torch.nn.MultiheadAttention`` (parameter names, shapes, default init, forward
signature, mask conventions and return values).
"""

from __future__ import annotations

import math

import numpy as np

from ... import ops
from ...autograd import Tensor, creation
from .. import init
from ..module import Module
from ..parameter import Parameter
from .linear import Linear

__all__ = ["MultiheadAttention"]

_NEG_INF = float("-inf")


def _shape(x) -> tuple:
    return tuple(x.shape)


def _as_additive(mask, dtype):
    """A float mask with -inf where the bool ``mask`` is True (PyTorch's "masked" convention)."""
    return creation.zeros(_shape(mask), dtype=dtype).masked_fill(mask, _NEG_INF)


def _is_causal_mask(mask, L: int, S: int) -> bool:
    """Whether an (L, S) attn_mask hides exactly the keys after each query: a float mask with
    -inf above the diagonal and 0 elsewhere, or a bool mask True (= not allowed) there."""
    if tuple(mask.shape) != (L, S):
        return False
    a = ops.as_array(mask)
    if a.dtype.kind == "b":
        return bool(np.array_equal(a, ops.causal_block(L, S)))
    if a.dtype.kind != "f":
        return False
    return bool(np.array_equal(a, ops.causal_additive(L, S, a.dtype)))


class MultiheadAttention(Module):
    """Multi-head attention: project query/key/value, attend in ``num_heads`` heads of size
    ``embed_dim // num_heads`` in parallel, concatenate the heads and project the result.

    Args:
        embed_dim: model dimension E (of the query and of the output).
        num_heads: number of heads H (E must be divisible by H).
        dropout: dropout probability on the attention weights (training only).
        bias: learn biases for the input and output projections.
        add_bias_kv: learn a bias appended to the key and value sequences (``bias_k``,
            ``bias_v``, shape (1, 1, E)).
        add_zero_attn: append a zero key and value to the sequences (after the bias_kv).
        kdim, vdim: feature sizes of key and value (default E). When they differ from E the
            projections are separate parameters ``q_proj_weight`` (E, E), ``k_proj_weight``
            (E, kdim), ``v_proj_weight`` (E, vdim); else one ``in_proj_weight`` (3E, E).
        batch_first: inputs and outputs are (N, L, E) instead of (L, N, E).

    Parameters: ``in_proj_weight`` (or the three ``*_proj_weight``), ``in_proj_bias`` (3E),
    ``out_proj`` (a Linear(E, E)), optional ``bias_k``/``bias_v``. Initialized like PyTorch:
    xavier_uniform_ for the input projections, zeros for ``in_proj_bias`` and
    ``out_proj.bias``, xavier_normal_ for ``bias_k``/``bias_v``, Linear's default for
    ``out_proj.weight``.

    Shape (forward):
        query (L, N, E) or (N, L, E) with ``batch_first``, or unbatched (L, E);
        key (S, N, kdim), value (S, N, vdim) (same layout);
        key_padding_mask (N, S) or (S,): bool (True = ignore that key) or float (added);
        attn_mask (L, S) or (N * num_heads, L, S): bool (True = not allowed) or float (added).
        Output: attn_output like the query; attn_weights (N, L, S) averaged over heads, or
        (N, num_heads, L, S) with ``average_attn_weights=False`` (no N when unbatched), or
        None when ``need_weights=False``.

    Query rows that every key is masked from: NaN when ``need_weights=True`` (plain
    softmax), zeros when ``need_weights=False`` (safe softmax) -- both as in PyTorch 2.13.
    ``is_causal`` is a hint that ``attn_mask`` is causal; ``attn_mask`` is what is applied,
    and ``is_causal=True`` without an ``attn_mask`` is an error, as in PyTorch.

    Matches: ``torch.nn.MultiheadAttention``.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise self._error(f"embed_dim and num_heads must be greater than 0, got "
                              f"embed_dim={embed_dim} and num_heads={num_heads}")
        if embed_dim % num_heads:
            raise self._error(f"embed_dim ({embed_dim}) must be divisible by num_heads "
                              f"({num_heads})")
        if not 0.0 <= dropout <= 1.0:
            raise self._error(f"dropout must be between 0 and 1, got {dropout}")
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        self.add_zero_attn = add_zero_attn
        E = embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(creation.empty(3 * E, E, dtype=dtype))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = Parameter(creation.empty(E, E, dtype=dtype))
            self.k_proj_weight = Parameter(creation.empty(E, self.kdim, dtype=dtype))
            self.v_proj_weight = Parameter(creation.empty(E, self.vdim, dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(creation.empty(3 * E, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(creation.empty(1, 1, E, dtype=dtype))
            self.bias_v = Parameter(creation.empty(1, 1, E, dtype=dtype))
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    reset_parameters = _reset_parameters

    # ------------------------------------------------------------------ forward
    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        """Attend from ``query`` to ``key``/``value``; returns ``(attn_output, attn_weights)``
        (see the class docstring for shapes and mask conventions)."""
        E, H = self.embed_dim, self.num_heads
        sq, sk, sv = _shape(query), _shape(key), _shape(value)
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        if len(sq) not in (2, 3) or sq[-1] != E:
            raise self._error(f"expected query of shape {layout.replace('E', str(E))} or "
                              f"unbatched (L, {E}), got {sq}")
        batched = len(sq) == 3
        if len(sk) != len(sq) or len(sv) != len(sq):
            raise self._error(f"key and value must have as many dims as the query ({len(sq)}, "
                              f"{'batched' if batched else 'unbatched'}), got key {sk} and "
                              f"value {sv}")
        if sk[-1] != self.kdim or sv[-1] != self.vdim:
            raise self._error(f"expected key with {self.kdim} and value with {self.vdim} "
                              f"features in the last dim, got key {sk} and value {sv}")
        if sk[:-1] != sv[:-1]:
            raise self._error(f"key and value must have the same sequence length and batch "
                              f"size, got key {sk} and value {sv}")
        bf = self.batch_first or not batched
        same = query is key and key is value
        if not batched:  # work on a batch of one, in the batch-first layout
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
            sq, sk = (1,) + sq, (1,) + sk
        if bf:
            N, L, S = sq[0], sq[1], sk[1]
            if sk[0] != N:
                raise self._error(f"query and key must have the same batch size, got query "
                                  f"{sq} and key {sk} (batch_first=True)")
        else:
            L, N, S = sq[0], sq[1], sk[0]
            if sk[1] != N:
                raise self._error(f"query and key must have the same batch size, got query "
                                  f"{sq} and key {sk} (batch_first=False)")
        if is_causal and attn_mask is None:
            raise self._error("is_causal=True is only a hint that attn_mask is causal: pass "
                              "the attn_mask too (e.g. "
                              "Transformer.generate_square_subsequent_mask(L))", RuntimeError)
        dtype = query.dtype
        mask, causal = self._mask_for(attn_mask, key_padding_mask, batched, N, L, S, dtype)
        dropout_p = self.dropout if self.training else 0.0
        scale = 1.0 / math.sqrt(self.head_dim)
        if (same and self.in_proj_weight is not None and self.bias_k is None
                and not self.add_zero_attn):
            # self-attention: one projection, attention on the packed result (heads are
            # strided views of it), heads merged by the kernel
            qkv = ops.linear(query, self.in_proj_weight, self.in_proj_bias)
            res = ops.packed_attention(qkv, mask, num_heads=H, scale=scale, batch_first=bf,
                                       causal=causal, dropout_p=dropout_p,
                                       need_weights=need_weights, nan_rows=need_weights)
            attn, weights = res if need_weights else (res, None)
        else:
            attn, weights = self._attend_general(query, key, value, mask, causal, bf, N, L, S,
                                                 dtype, dropout_p, scale, need_weights)
        out = ops.linear(attn, self.out_proj.weight, self.out_proj.bias)
        if weights is not None and average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            out = out.squeeze(0)
            if weights is not None:
                weights = weights.squeeze(0)
        return out, weights

    def _attend_general(self, query, key, value, mask, causal, bf, N, L, S, dtype, dropout_p,
                        scale, need_weights):
        """Separate projections, head split, attention, head merge (any kdim/vdim, bias_kv,
        zero_attn, cross-attention)."""
        E, H = self.embed_dim, self.num_heads
        q, k, v = self._project(query, key, value, bf, N, L, S)  # each (N, H, len, D)
        extra = 0
        if self.bias_k is not None:
            D = self.head_dim
            bk = self.bias_k.reshape(1, H, 1, D).expand(N, H, 1, D)
            bv = self.bias_v.reshape(1, H, 1, D).expand(N, H, 1, D)
            k = ops.cat([k, bk], 2)
            v = ops.cat([v, bv], 2)
            extra += 1
        if self.add_zero_attn:
            z = creation.zeros(N, H, 1, self.head_dim, dtype=dtype)
            k = ops.cat([k, z], 2)
            v = ops.cat([v, z], 2)
            extra += 1
        if mask is not None and extra:
            pad_value = True if mask.dtype.np.kind == "b" else 0.0
            mask = ops.pad(mask, (0, extra), value=pad_value)
        res = ops.fused_attention(q, k, v, mask, scale=scale, causal=causal,
                                  dropout_p=dropout_p, need_weights=need_weights,
                                  nan_rows=need_weights)
        attn, weights = res if need_weights else (res, None)
        # merge the heads: (N, H, L, D) -> (N, L, E) or (L, N, E)
        if bf:
            attn = attn.permute(0, 2, 1, 3).reshape(N, L, E)
        else:
            attn = attn.permute(2, 0, 1, 3).reshape(L, N, E)
        return attn, weights

    def _project(self, query, key, value, bf: bool, N: int, L: int, S: int):
        """The input projections, split into heads: q (N, H, L, D), k and v (N, H, S, D)."""
        E, H, D = self.embed_dim, self.num_heads, self.head_dim
        w, b = self.in_proj_weight, self.in_proj_bias
        if w is not None and query is key and key is value:  # self-attention: one product
            qkv = ops.linear(query, w, b)
            if bf:
                qkv = qkv.reshape(N, L, 3, H, D).permute(2, 0, 3, 1, 4)
            else:
                qkv = qkv.reshape(L, N, 3, H, D).permute(2, 1, 3, 0, 4)
            return ops.unbind(qkv, 0)
        if w is not None:
            wq, wk, wv = w[:E], w[E:2 * E], w[2 * E:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        bq = bk = bv = None
        if b is not None:
            bq, bk, bv = b[:E], b[E:2 * E], b[2 * E:]
        q = self._heads(ops.linear(query, wq, bq), bf, N, L)
        k = self._heads(ops.linear(key, wk, bk), bf, N, S)
        v = self._heads(ops.linear(value, wv, bv), bf, N, S)
        return q, k, v

    def _heads(self, x, bf: bool, N: int, n: int):
        H, D = self.num_heads, self.head_dim
        if bf:
            return x.reshape(N, n, H, D).permute(0, 2, 1, 3)
        return x.reshape(n, N, H, D).permute(1, 2, 0, 3)

    def _mask_for(self, attn_mask, key_padding_mask, batched, N, L, S, dtype):
        """``(mask, causal)`` for the kernel: the merged mask (see :meth:`_merge_masks`), or
        ``(None, True)`` when it is exactly the causal mask (-inf / True above the diagonal),
        which the kernel applies from a cached block.

        Masks that need no gradient are analysed once: the result is kept while the same mask
        tensors (same objects and arrays, unchanged version counters) come back with the same
        shapes and dtype.
        """
        if attn_mask is None and key_padding_mask is None:
            return None, False
        cacheable = all(m is None or (isinstance(m, Tensor) and not m.requires_grad)
                        for m in (attn_mask, key_padding_mask))
        if cacheable:
            key = (batched, N, L, S, dtype, self.num_heads, self.bias_k is None,
                   self.add_zero_attn,
                   None if attn_mask is None else attn_mask._version[0],
                   None if key_padding_mask is None else key_padding_mask._version[0])
            arrays = tuple(None if m is None else m._data for m in (attn_mask, key_padding_mask))
            c = self.__dict__.get("_mask_cache")
            if (c is not None and c[0] is attn_mask and c[1] is key_padding_mask
                    and c[2][0] is arrays[0] and c[2][1] is arrays[1] and c[3] == key):
                return c[4]
        mask = self._merge_masks(attn_mask, key_padding_mask, batched, N, L, S, dtype)
        causal = False
        if (cacheable and key_padding_mask is None and self.bias_k is None
                and not self.add_zero_attn and _is_causal_mask(attn_mask, L, S)):
            mask, causal = None, True
        if cacheable:
            self.__dict__["_mask_cache"] = (attn_mask, key_padding_mask, arrays, key,
                                            (mask, causal))
        return mask, causal

    def _merge_masks(self, attn_mask, key_padding_mask, batched, N, L, S, dtype):
        """One mask for the fused kernel, broadcastable to (N, H, L, S): bool (True = may
        attend) when both masks are bool, else additive float."""
        H = self.num_heads
        am = kpm = None
        if attn_mask is not None:
            sm = _shape(attn_mask)
            if len(sm) == 2:
                if sm != (L, S):
                    raise self._error(f"the shape of the 2-D attn_mask is {sm}, but should be "
                                      f"{(L, S)} (L, S)", RuntimeError)
                am = attn_mask
            elif len(sm) == 3:
                want = (N * H, L, S) if batched else (H, L, S)
                if sm != want:
                    raise self._error(f"the shape of the 3-D attn_mask is {sm}, but should be "
                                      f"{want} ({'N * num_heads' if batched else 'num_heads'}"
                                      f", L, S)", RuntimeError)
                am = attn_mask.reshape(N, H, L, S)
            else:
                raise self._error(f"attn_mask must be 2-D (L, S) or 3-D (N * num_heads, L, S), "
                                  f"got shape {sm}", RuntimeError)
            am = self._check_mask_dtype(am, "attn_mask", dtype)
        if key_padding_mask is not None:
            sm = _shape(key_padding_mask)
            want = (N, S) if batched else (S,)
            if sm != want:
                raise self._error(f"expected key_padding_mask of shape {want}, got {sm}")
            kpm = self._check_mask_dtype(key_padding_mask.reshape(N, 1, 1, S),
                                         "key_padding_mask", dtype)
        if am is None and kpm is None:
            return None
        masks = [m for m in (am, kpm) if m is not None]
        if all(m.dtype.np.kind == "b" for m in masks):
            allowed = [ops.logical_not(m) for m in masks]
            return allowed[0] if len(allowed) == 1 else ops.logical_and(*allowed)
        add = [_as_additive(m, dtype) if m.dtype.np.kind == "b" else m for m in masks]
        return add[0] if len(add) == 1 else add[0] + add[1]

    def _check_mask_dtype(self, mask, name: str, dtype):
        if not isinstance(mask, Tensor):
            raise self._error(f"{name} must be a Tensor, got {type(mask).__name__}", TypeError)
        kind = mask.dtype.np.kind
        if kind == "f":
            return mask if mask.dtype == dtype else mask.to(dtype)
        if kind != "b":
            raise self._error(f"only bool and floating-point {name} are supported, got "
                              f"{mask.dtype}", TypeError)
        return mask

    def extra_repr(self) -> str:
        s = f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if not self._qkv_same_embed_dim:
            s += f", kdim={self.kdim}, vdim={self.vdim}"
        if self.batch_first:
            s += ", batch_first=True"
        return s
