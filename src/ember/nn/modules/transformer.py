"""The Transformer: encoder/decoder layers and stacks, the full model, positional encoding.

Matches: ``torch.nn.TransformerEncoderLayer``, ``TransformerEncoder``,
``TransformerDecoderLayer``, ``TransformerDecoder`` and ``Transformer`` (submodule and parameter
names, so PyTorch state dicts load as they are; default arguments and init; forward signatures
and mask conventions). ``PositionalEncoding`` is ember's own (sinusoidal, "Attention Is All You
Need").

PyTorch's evaluation "fast path" (nested tensors, fused kernels) is not reproduced: ember always
runs the reference math, which gives the same numbers except where PyTorch's fast path writes
zeros at padded positions (with ``src_key_padding_mask``); ember computes those positions.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict

from ... import ops
from ...autograd import creation
from ...ops import dtypes as _dt
from .. import init
from ..module import _RESERVED, Module, _Members
from ..parameter import Parameter
from .attention import MultiheadAttention
from .container import ModuleList
from .dropout import Dropout
from .linear import Linear
from .normalization import LayerNorm

__all__ = ["TransformerEncoderLayer", "TransformerEncoder", "TransformerDecoderLayer",
           "TransformerDecoder", "Transformer", "PositionalEncoding",
           "generate_square_subsequent_mask"]


# ---------------------------------------------------------------------------- helpers
def generate_square_subsequent_mask(sz: int, device=None, dtype=None):
    """The causal mask for a sequence of length ``sz``: a float (sz, sz) tensor with -inf above
    the diagonal (future positions) and 0 on and below it. Matches
    ``torch.nn.Transformer.generate_square_subsequent_mask``."""
    if sz < 0:
        raise ValueError(f"generate_square_subsequent_mask: sz must be >= 0, got {sz}")
    full = creation.full((sz, sz), float("-inf"), dtype=dtype or _dt.float32, device=device)
    return ops.triu(full, 1)


def _activation(activation, where: str):
    if isinstance(activation, str):
        if activation == "relu":
            return ops.relu
        if activation == "gelu":
            return ops.gelu
        raise RuntimeError(f"{where}: activation should be relu/gelu, not {activation}")
    if not callable(activation):
        raise TypeError(f"{where}: activation must be 'relu', 'gelu' or a callable, got "
                        f"{type(activation).__name__}")
    return activation


def _clone_module(module: Module) -> Module:
    """An independent copy of ``module`` (same class, settings and weights; fresh tensors).

    ember modules refuse pickling, so ``copy.deepcopy`` cannot be used: this walks the module
    tree instead, cloning parameters and buffers and deep-copying plain settings.
    """
    cls = type(module)
    new = cls.__new__(cls)
    d = new.__dict__
    src = module.__dict__
    members = set(src["_parameters"]) | set(src["_buffers"]) | set(src["_modules"])
    for key, val in src.items():
        if key in ("_parameters", "_buffers", "_modules") or (
                key in members and key not in _RESERVED):
            continue  # the registries are filled below (they put their members in __dict__)
        if key in ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks"):
            d[key] = OrderedDict(val)
        elif key == "_non_persistent":
            d[key] = set(val)
        else:
            try:
                d[key] = copy.deepcopy(val)
            except TypeError:  # not copyable (e.g. a tensor kept as a plain attribute): share
                d[key] = val
    for key in ("_parameters", "_buffers", "_modules"):
        d[key] = _Members(new)
    for n, p in src["_parameters"].items():
        d["_parameters"][n] = None if p is None else Parameter(p.detach().clone(),
                                                               requires_grad=p.requires_grad)
    for n, b in src["_buffers"].items():
        d["_buffers"][n] = None if b is None else b.detach().clone()
    for n, m in src["_modules"].items():
        d["_modules"][n] = None if m is None else _clone_module(m)
    return new


def _get_clones(module: Module, n: int) -> ModuleList:
    return ModuleList([_clone_module(module) for _ in range(n)])


def _check_input(mod: Module, x, name: str, d_model: int, batch_first: bool) -> None:
    shape = tuple(x.shape)
    if len(shape) not in (2, 3) or shape[-1] != d_model:
        layout = "(N, L, E)" if batch_first else "(L, N, E)"
        raise mod._error(f"expected {name} of shape {layout.replace('E', str(d_model))} or "
                         f"unbatched (L, {d_model}), got {shape}")


# ---------------------------------------------------------------------------- encoder
class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward network, each in a residual block with LayerNorm.

    Args:
        d_model: model dimension E.
        nhead: attention heads.
        dim_feedforward: hidden size of the feed-forward network (default 2048).
        dropout: dropout probability (attention weights, feed-forward, residual branches;
            default 0.1).
        activation: ``"relu"`` (default), ``"gelu"`` or a callable.
        layer_norm_eps: LayerNorm epsilon (1e-5).
        batch_first: (N, L, E) inputs instead of (L, N, E).
        norm_first: pre-norm ``x + sa(norm1(x))`` instead of post-norm ``norm1(x + sa(x))``.
        bias: biases in the linear layers and LayerNorms.

    Submodules: ``self_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``,
    ``dropout1``, ``dropout2`` (PyTorch's names).

    Shape: src (L, N, E), (N, L, E) with ``batch_first``, or unbatched (L, E); src_mask (L, S)
    or (N * nhead, L, S); src_key_padding_mask (N, S). Output like src.

    Matches: ``torch.nn.TransformerEncoderLayer``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.d_model, self.batch_first = d_model, batch_first
        self.activation = _activation(activation, "TransformerEncoderLayer")

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        """Encode ``src`` (see the class docstring for shapes)."""
        _check_input(self, src, "src", self.d_model, self.batch_first)
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=bool(is_causal))[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout2(x)


class TransformerEncoder(Module):
    """A stack of ``num_layers`` copies of ``encoder_layer`` (then ``norm``, if given).

    The copies start with the same weights as ``encoder_layer`` (as PyTorch's deep copies);
    they are independent afterwards. ``enable_nested_tensor`` and ``mask_check`` are accepted
    for compatibility (they only steer PyTorch's evaluation fast path).

    Shape: as :class:`TransformerEncoderLayer`.

    Matches: ``torch.nn.TransformerEncoder``.
    """

    def __init__(self, encoder_layer: Module, num_layers: int, norm=None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module, got "
                            f"{type(encoder_layer).__name__}")
        self.layers = _get_clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        """Run ``src`` through every layer with the same masks (then the final norm)."""
        out = src
        for mod in self.layers:
            out = mod(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                      is_causal=bool(is_causal))
        if self.norm is not None:
            out = self.norm(out)
        return out


# ---------------------------------------------------------------------------- decoder
class TransformerDecoderLayer(Module):
    """Self-attention, cross-attention to the encoder's memory, and a feed-forward network,
    each in a residual block with LayerNorm.

    Args: as :class:`TransformerEncoderLayer`.

    Submodules: ``self_attn``, ``multihead_attn``, ``linear1``, ``dropout``, ``linear2``,
    ``norm1``, ``norm2``, ``norm3``, ``dropout1``, ``dropout2``, ``dropout3``.

    Shape: tgt (T, N, E) (or (N, T, E) with ``batch_first``, or unbatched (T, E)), memory
    (S, N, E); tgt_mask (T, T); memory_mask (T, S); tgt_key_padding_mask (N, T);
    memory_key_padding_mask (N, S). Output like tgt.

    Matches: ``torch.nn.TransformerDecoderLayer``.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.d_model, self.batch_first = d_model, batch_first
        self.activation = _activation(activation, "TransformerDecoderLayer")

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False):
        """Decode ``tgt`` attending to ``memory`` (see the class docstring for shapes)."""
        _check_input(self, tgt, "tgt", self.d_model, self.batch_first)
        _check_input(self, memory, "memory", self.d_model, self.batch_first)
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask,
                                   tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask,
                                    memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask,
                                              tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask,
                                               memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           need_weights=False, is_causal=bool(is_causal))[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, need_weights=False,
                                is_causal=bool(is_causal))[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self.dropout3(x)


class TransformerDecoder(Module):
    """A stack of ``num_layers`` copies of ``decoder_layer`` (then ``norm``, if given).

    Matches: ``torch.nn.TransformerDecoder``.
    """

    def __init__(self, decoder_layer: Module, num_layers: int, norm=None):
        super().__init__()
        if not isinstance(decoder_layer, Module):
            raise TypeError(f"TransformerDecoder: decoder_layer must be a Module, got "
                            f"{type(decoder_layer).__name__}")
        self.layers = _get_clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None,
                memory_is_causal: bool = False):
        """Run ``tgt`` through every layer, each attending to ``memory`` (then the norm)."""
        out = tgt
        for mod in self.layers:
            out = mod(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask,
                      memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=bool(tgt_is_causal), memory_is_causal=memory_is_causal)
        if self.norm is not None:
            out = self.norm(out)
        return out


# ---------------------------------------------------------------------------- full model
class Transformer(Module):
    """The encoder-decoder Transformer of "Attention Is All You Need".

    Args:
        d_model (512), nhead (8), num_encoder_layers (6), num_decoder_layers (6),
        dim_feedforward (2048), dropout (0.1), activation ("relu"), layer_norm_eps (1e-5),
        batch_first (False), norm_first (False), bias (True): as in the layers.
        custom_encoder / custom_decoder: modules to use instead of the default stacks.

    Submodules: ``encoder`` (a TransformerEncoder with a final ``norm``) and ``decoder``
    (a TransformerDecoder with a final ``norm``). Every parameter with more than one dim is
    re-initialized with xavier_uniform_ (PyTorch's ``_reset_parameters``).

    Shape: src (S, N, E), tgt (T, N, E) ((N, S, E), (N, T, E) with ``batch_first``; or
    unbatched); src_mask (S, S); tgt_mask (T, T); memory_mask (T, S); key padding masks
    (N, S), (N, T), (N, S). Output (T, N, E).

    Matches: ``torch.nn.Transformer``.
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", custom_encoder=None,
                 custom_decoder=None, layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
                                            activation, layer_norm_eps, batch_first,
                                            norm_first, bias, dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout,
                                            activation, layer_norm_eps, batch_first,
                                            norm_first, bias, dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, norm)
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal: bool = False):
        """Encode ``src``, then decode ``tgt`` against the encoding (shapes: class doc)."""
        ss, st = tuple(src.shape), tuple(tgt.shape)
        if len(ss) == 3:
            b = 0 if self.batch_first else 1
            if len(st) != 3 or ss[b] != st[b]:
                raise self._error(f"the batch number of src and tgt must be equal, got src "
                                  f"{ss} and tgt {st} (batch_first={self.batch_first})",
                                  RuntimeError)
        if ss[-1] != self.d_model or st[-1] != self.d_model:
            raise self._error(f"the feature number of src and tgt must be equal to d_model "
                              f"({self.d_model}), got src {ss} and tgt {st}", RuntimeError)
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)


# ---------------------------------------------------------------------------- positions
class PositionalEncoding(Module):
    """Add the sinusoidal position encoding of "Attention Is All You Need", then dropout.

    ``PE[pos, 2i] = sin(pos / 10000^(2i / d_model))`` and
    ``PE[pos, 2i+1] = cos(pos / 10000^(2i / d_model))`` for ``pos < max_len`` (an odd
    ``d_model`` keeps the sine of its last, unpaired column).

    Args:
        d_model: feature size E.
        max_len: longest supported sequence (default 5000).
        dropout: dropout probability applied after the addition (default 0.1).
        batch_first: inputs are (N, L, E) instead of (L, N, E).

    Buffer: ``pe`` (max_len, d_model), computed in float64 and stored as float32 (converted
    by ``.to()``/``.double()`` like any buffer). It is *non-persistent*: it is not in the state
    dict, since it is a fixed function of (max_len, d_model) -- checkpoints stay small, and a
    model can be loaded with another ``max_len``.

    Shape: input (L, N, E), (N, L, E) with ``batch_first``, or unbatched (L, E); output the
    same.

    Matches: no PyTorch class (the encoding of PyTorch's word-language-model tutorial).
    """

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.1,
                 batch_first: bool = False):
        super().__init__()
        if d_model <= 0 or max_len <= 0:
            raise self._error(f"d_model and max_len must be positive, got d_model={d_model} "
                              f"and max_len={max_len}")
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.dropout = Dropout(dropout)
        half = (d_model + 1) // 2
        pos = creation.arange(max_len, dtype=_dt.float64).unsqueeze(1)              # (max_len, 1)
        two_i = creation.arange(0, 2 * half, 2, dtype=_dt.float64)                  # (half,)
        angle = pos * ops.exp(two_i * (-math.log(10000.0) / d_model))             # pos / 10^4^.
        pe = ops.stack([ops.sin(angle), ops.cos(angle)], -1).reshape(max_len, 2 * half)
        self.register_buffer("pe", pe[:, :d_model].contiguous().to(_dt.float32),
                             persistent=False)

    def forward(self, input):
        shape = tuple(input.shape)
        if len(shape) not in (2, 3) or shape[-1] != self.d_model:
            layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
            raise self._error(f"expected input of shape {layout.replace('E', str(self.d_model))}"
                              f" or unbatched (L, {self.d_model}), got {shape}")
        L = shape[1] if (len(shape) == 3 and self.batch_first) else shape[0]
        if L > self.max_len:
            raise self._error(f"sequence length {L} exceeds max_len={self.max_len}")
        pe = self.pe[:L]
        if pe.dtype != input.dtype:
            pe = pe.to(input.dtype)
        if len(shape) == 3 and not self.batch_first:
            pe = pe.unsqueeze(1)
        return self.dropout(input + pe)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}, batch_first={self.batch_first}"

