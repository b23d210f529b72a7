"""Attention maps: the per-head attention weights of every ``nn.MultiheadAttention`` in a
model during one forward pass, and attention rollout across layers.

Transformer layers call their attention with ``need_weights=False`` (the fast path returns no
weights), and a forward hook sees neither the keyword arguments (masks) nor can change them.
So :func:`capture_attention` wraps each attention module's ``forward`` for the duration of a
``with`` block: the call the model makes runs unchanged (its output is exactly what it would
be), then the same call is repeated under ``no_grad`` with ``need_weights=True,
average_attn_weights=False`` to record the weights. The wrappers are removed on exit.
"""

from __future__ import annotations

import contextlib
import inspect
from collections import OrderedDict

from ..autograd import Tensor, creation, no_grad
from ..nn import Module, MultiheadAttention
from ._common import layer_paths, model_state

__all__ = ["capture_attention", "attention_maps", "attention_rollout", "AttentionRecorder",
           "attention_layer_paths"]


class AttentionRecorder:
    """What :func:`capture_attention` records.

    Attributes:
        maps: path -> attention weights (N, H, L, S) of the layer's last call (unbatched
            calls get N = 1), in the order the layers first ran.
        calls: every call in order, as ``(path, weights)`` (a layer run several times, as in
            step-by-step decoding, appears several times).
    """

    def __init__(self):
        self.maps: OrderedDict = OrderedDict()
        self.calls: list = []

    def record(self, path: str, weights: Tensor) -> None:
        if weights.dim() == 3:
            weights = weights.unsqueeze(0)
        self.maps[path] = weights
        self.calls.append((path, weights))


def _recording_hook(path: str, recorder: AttentionRecorder):
    """A forward hook (``with_kwargs=True``) that records the layer's per-head weights: those it
    returned when the call asked for them, else those of a second, gradient-free call."""

    def hook(module, args, kwargs, out):
        bound = inspect.signature(type(module).forward).bind(module, *args, **kwargs)
        bound.apply_defaults()
        params = dict(bound.arguments)
        params.pop("self")
        if params["need_weights"] and not params["average_attn_weights"]:
            weights = out[1].detach()
        else:
            with no_grad():
                weights = module.forward(**{**params, "need_weights": True,
                                            "average_attn_weights": False})[1]
        recorder.record(path, weights)

    return hook


def _attention_layers(where: str, model, layers) -> list:
    """(path, module) of the attention layers to record (all of them by default)."""
    if not isinstance(model, Module):
        raise TypeError(f"{where}: needs an ember.nn.Module, got {type(model).__name__}")
    found = [(p, m) for p, m in model.named_modules() if isinstance(m, MultiheadAttention)]
    if isinstance(model, MultiheadAttention):
        found = [("", model)] + [f for f in found if f[0]]
    if not found:
        raise ValueError(f"{where}: {type(model).__name__} has no nn.MultiheadAttention layer; "
                         f"attention maps need a Transformer or attention model")
    if layers is None:
        return found
    by_path = dict(found)
    wanted = [layers] if isinstance(layers, str) else list(layers)
    for p in wanted:
        if p not in by_path:
            raise ValueError(f"{where}: no MultiheadAttention layer {p!r} in "
                             f"{type(model).__name__}; attention layers: "
                             f"{', '.join(repr(q) for q in by_path)}")
    return [(p, by_path[p]) for p in wanted]


@contextlib.contextmanager
def capture_attention(model, layers=None):
    """Record the per-head attention weights of ``model``'s MultiheadAttention layers while
    the ``with`` block runs the model (in whatever mode the model is in).

    Args:
        model: a Module containing ``nn.MultiheadAttention`` layers.
        layers: a path or a list of paths of the layers to record (default: all).

    Shape:
        each recorded map (N, H, L, S), as in :func:`attention_maps`.

    Returns:
        A context manager giving an :class:`AttentionRecorder`.

    Matches: PyTorch's per-head weights (``need_weights=True, average_attn_weights=False``)
    of every layer, without changing what the model computes.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> from ember.explain import capture_attention
        >>> enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, 0.0,
        ...                                                        batch_first=True), 2)
        >>> with capture_attention(enc) as rec:
        ...     _ = enc(ember.randn(3, 5, 8))
        >>> {k: v.shape for k, v in rec.maps.items()}
        {'layers.0.self_attn': (3, 2, 5, 5), 'layers.1.self_attn': (3, 2, 5, 5)}
    """
    chosen = _attention_layers("capture_attention", model, layers)
    recorder = AttentionRecorder()
    handles = []
    try:
        for path, module in chosen:
            handles.append(module.register_forward_hook(_recording_hook(path, recorder),
                                                        with_kwargs=True))
        yield recorder
    finally:
        for handle in handles:
            handle.remove()


def attention_maps(model, *inputs, layers=None, **kwargs) -> OrderedDict:
    """The per-head attention weights of every MultiheadAttention layer for one forward pass
    ``model(*inputs, **kwargs)`` in evaluation mode (the mode is restored afterwards).

    Args:
        model: a Module containing ``nn.MultiheadAttention`` layers.
        *inputs, **kwargs: what the model is called with.
        layers: a path or list of paths of the layers to record (default: all).

    Shape:
        each map (N, H, L, S): N examples, H heads, L queries, S keys; every row sums to 1
        (rows of queries whose keys are all masked are NaN, as in PyTorch).

    Returns:
        An ordered dict: layer path -> weights (of its last call when it ran several times).

    Matches: the weights ``torch.nn.MultiheadAttention`` returns with ``need_weights=True,
    average_attn_weights=False``, for every layer at once.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> from ember.explain import attention_maps
        >>> mha = nn.MultiheadAttention(8, 2, batch_first=True)
        >>> x = ember.randn(1, 4, 8)
        >>> maps = attention_maps(mha, x, x, x)
        >>> maps[""].shape, bool(((maps[""].sum(-1) - 1).abs() < 1e-5).all())
        ((1, 2, 4, 4), True)
    """
    with model_state(model), no_grad(), capture_attention(model, layers) as recorder:
        model(*inputs, **kwargs)
    return recorder.maps


def _fused(where: str, weights: Tensor, head_fusion: str) -> Tensor:
    if not isinstance(weights, Tensor) or weights.dim() not in (3, 4):
        raise ValueError(f"{where}: expected attention weights (N, H, L, L) or (N, L, L), got "
                         f"{getattr(weights, 'shape', type(weights).__name__)}")
    if weights.dim() == 3:
        return weights
    if head_fusion == "mean":
        return weights.mean(1)
    if head_fusion == "max":
        return weights.amax(1)
    if head_fusion == "min":
        return weights.amin(1)
    raise ValueError(f"{where}: head_fusion must be 'mean', 'max' or 'min', got {head_fusion!r}")


def attention_rollout(attentions, head_fusion: str = "mean", add_residual: bool = True):
    """Attention rollout (Abnar & Zuidema, 2020): how much each output position draws on each
    input position through a stack of self-attention layers, assuming attention mixes
    linearly and the residual connection carries half of each token through.

    Per layer the heads are fused, ``A~ = (A + I) / 2`` (with ``add_residual``) and its rows
    renormalized; the rollout is ``A~_L @ ... @ A~_1`` (the first layer rightmost).

    Args:
        attentions: the self-attention weights of consecutive layers, first layer first: a
            list of (N, H, L, L) or (N, L, L) tensors, or the dict :func:`attention_maps`
            returns (in its order).
        head_fusion: how to combine the heads: 'mean' (the paper), 'max' or 'min'.
        add_residual: add the identity for the residual connections.

    Shape:
        returns (N, L, L): row i holds output position i's attention to each input position.

    Returns:
        The rollout matrices (rows sum to 1).

    Matches the paper's definition (Captum has no rollout); ``head_fusion`` 'max' and 'min'
    as in the widely used ``vit-explain`` code.

    Example:
        >>> import ember
        >>> from ember.explain import attention_rollout
        >>> a = ember.tensor([[[0.5, 0.5], [0.0, 1.0]]])
        >>> attention_rollout([a, a])
        tensor([[[0.5625, 0.4375],
                 [0.0000, 1.0000]]])
    """
    where = "attention_rollout"
    layers = list(attentions.values()) if isinstance(attentions, dict) else list(attentions)
    if not layers:
        raise ValueError(f"{where}: no attention weights given")
    rollout = None
    for i, weights in enumerate(layers):
        a = _fused(where, weights, head_fusion)
        if a.shape[-1] != a.shape[-2]:
            raise ValueError(f"{where}: layer {i} attention has shape {tuple(a.shape)}; "
                             f"rollout needs self-attention (L, L) maps")
        if add_residual:
            a = (a + creation.eye(a.shape[-1], dtype=a.dtype)) / 2
        a = a / a.sum(-1, keepdim=True)
        if rollout is not None and tuple(rollout.shape) != tuple(a.shape):
            raise ValueError(f"{where}: layer {i} attention {tuple(a.shape)} does not match "
                             f"the previous layers' {tuple(rollout.shape)}")
        rollout = a if rollout is None else a.matmul(rollout)
    return rollout


def attention_layer_paths(model) -> list:
    """The paths of the model's MultiheadAttention layers (for error messages and CLIs)."""
    return layer_paths(model, ("MultiheadAttention",))
