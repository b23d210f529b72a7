"""Layer attributions: Grad-CAM and Grad-CAM++ on a convolution layer, and attributions to a
layer's activations (integrated gradients, gradient x activation) for inputs that cannot be
differentiated, such as token ids going into an embedding.

Matches: ``captum.attr.LayerGradCam``, ``LayerAttribution.interpolate``,
``LayerIntegratedGradients`` and ``LayerGradientXActivation``.
"""

from __future__ import annotations

from ..autograd import Tensor, enable_grad, grad, no_grad
from ..nn import functional as F
from ._common import (
    CONV_KINDS,
    LayerCapture,
    as_args,
    baseline_like,
    check_inputs,
    forward,
    layer_paths,
    model_state,
    resolve_layer,
    resolve_target,
    select,
)
from .gradients import completeness_delta, path_gradients

__all__ = ["grad_cam", "grad_cam_plus_plus", "interpolate", "layer_integrated_gradients",
           "layer_gradient_x_activation", "conv_layer_paths"]


def conv_layer_paths(model) -> list:
    """The dotted paths of the model's Conv1d/Conv2d/Conv3d layers, in module order (the
    last is Grad-CAM's usual layer).

    Example:
        >>> from ember import nn
        >>> from ember.explain import conv_layer_paths
        >>> conv_layer_paths(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3)))
        ['0', '2']
    """
    return layer_paths(model, CONV_KINDS)


def _activation_and_gradient(where, model, inputs, layer, target, args, to_input,
                             kinds=CONV_KINDS, what="conv layers"):
    """The layer's activation (output, or first input) and d(target scores)/d(activation)."""
    x = check_inputs(where, inputs, floating=False).detach()
    module = resolve_layer(where, model, layer, kinds, what)
    t = resolve_target(where, model, x, target, args)
    with LayerCapture(where, module, to_input=to_input) as cap, enable_grad():
        score = select(forward(model, x, args), t).sum()
        act = cap.single()
        if not act.requires_grad:
            raise TypeError(f"{where}: the activation of layer {module.path!r} is "
                            f"{act.dtype}; gradients need a floating-point activation")
        g = grad(score, act, allow_unused=True, materialize_grads=True)[0]
    return act.detach(), g


def interpolate(layer_attribution: Tensor, interpolate_dims, interpolate_mode: str = "nearest"):
    """Resize a layer attribution (N, C, *S) to the spatial size ``interpolate_dims`` (the
    input's, to overlay a Grad-CAM map on it).

    Args:
        layer_attribution: (N, C, *S), e.g. a Grad-CAM map (N, 1, H', W').
        interpolate_dims: the target size: an int or a tuple with one size per spatial dim.
        interpolate_mode: as ``nn.functional.interpolate`` ('nearest', 'linear' for 1-D,
            'bilinear' for 2-D, 'area' ...).

    Shape:
        (N, C, *S) -> (N, C, *interpolate_dims).

    Returns:
        The resized attribution.

    Matches ``captum.attr.LayerAttribution.interpolate``.

    Example:
        >>> import ember
        >>> from ember.explain import interpolate
        >>> interpolate(ember.tensor([[[1.0, 2.0]]]), (4,))
        tensor([[[1., 1., 2., 2.]]])
    """
    if not isinstance(layer_attribution, Tensor) or layer_attribution.dim() < 3:
        shape = getattr(layer_attribution, "shape", None)
        raise ValueError(f"interpolate: expected a layer attribution (N, C, *spatial) with at "
                         f"least one spatial dim, got shape {shape}")
    return F.interpolate(layer_attribution, interpolate_dims, mode=interpolate_mode)


def grad_cam(model, inputs: Tensor, layer, target=None, additional_forward_args=None,
             attribute_to_layer_input: bool = False, relu_attributions: bool = False,
             attr_dim_summation: bool = True, interpolate_dims=None,
             interpolate_mode: str = "nearest") -> Tensor:
    """Grad-CAM (Selvaraju et al., 2017): a layer's channels weighted by the spatial mean of
    the target score's gradient, summed over channels.

    Args:
        model: a Module mapping ``inputs`` to scores (N, C) or (N,).
        inputs: a batch (N, ...); it needs no gradient (ids are fine).
        layer: a convolution layer of ``model``, the module or its path (``"features.3"``).
        target: class index (int), one per example (list), or None (the predicted class).
        additional_forward_args: extra arguments passed to the model after ``inputs``.
        attribute_to_layer_input: use the layer's input instead of its output.
        relu_attributions: keep only the positive evidence (the paper's final ReLU).
        attr_dim_summation: sum over the channels (False: keep the weighted channels).
        interpolate_dims: resize the map to this spatial size (e.g. the input's ``(8, 8)``)
            with :func:`interpolate`; None keeps the layer's resolution.
        interpolate_mode: the resizing mode ('nearest' like Captum, 'bilinear', 'linear').

    Shape:
        the layer's activation (N, K, *S) gives (N, 1, *S) (or (N, K, *S) without
        summation), or (N, 1, *interpolate_dims).

    Returns:
        The Grad-CAM map.

    Matches ``captum.attr.LayerGradCam(model, layer).attribute(inputs, target,
    additional_forward_args, attribute_to_layer_input, relu_attributions,
    attr_dim_summation)`` (then ``LayerAttribution.interpolate``).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> from ember.explain import grad_cam
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
        ...                       nn.Linear(4 * 8 * 8, 10))
        >>> cam = grad_cam(model, ember.randn(2, 1, 8, 8), "0", target=3)
        >>> cam.shape
        (2, 1, 8, 8)
    """
    args = as_args(additional_forward_args)
    with model_state(model):
        act, g = _activation_and_gradient("grad_cam", model, inputs, layer, target, args,
                                          attribute_to_layer_input)
    weights = g.mean(tuple(range(2, g.dim())), keepdim=True) if g.dim() > 2 else g
    cam = weights * act
    if attr_dim_summation:
        cam = cam.sum(1, keepdim=True)
    if relu_attributions:
        cam = cam.relu()
    return cam if interpolate_dims is None else interpolate(cam, interpolate_dims,
                                                            interpolate_mode)


def grad_cam_plus_plus(model, inputs: Tensor, layer, target=None, additional_forward_args=None,
                       attribute_to_layer_input: bool = False, relu_attributions: bool = True,
                       interpolate_dims=None, interpolate_mode: str = "nearest") -> Tensor:
    """Grad-CAM++ (Chattopadhay et al., 2018): Grad-CAM whose channel weights sum the positive
    gradients weighted per position by the closed-form coefficients

        alpha = g^2 / (2 g^2 + sum_ab(A_ab) g^3)     (0 where the denominator is 0),

    with ``g`` the gradient of the target score with respect to the activation ``A`` (the
    paper's formula for an exponential of the score, as its reference code uses it).

    Args:
        model, inputs, layer, target, additional_forward_args, attribute_to_layer_input,
        interpolate_dims, interpolate_mode: as in :func:`grad_cam`.
        relu_attributions: the final ReLU of the paper (on by default here).

    Shape:
        the layer's activation (N, K, *S) gives (N, 1, *S), or (N, 1, *interpolate_dims).

    Returns:
        The Grad-CAM++ map.

    Captum has no Grad-CAM++; the formula is the paper's equation 19 with weights of eq. 9
    (the same as the ``pytorch-grad-cam`` package's ``GradCAMPlusPlus``).

    Example:
        >>> import ember
        >>> from ember import nn
        >>> from ember.explain import grad_cam_plus_plus
        >>> model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.ReLU(), nn.Flatten(),
        ...                       nn.Linear(4 * 38, 5))
        >>> grad_cam_plus_plus(model, ember.randn(3, 1, 40), model[0],
        ...                    interpolate_dims=(40,), interpolate_mode="linear").shape
        (3, 1, 40)
    """
    args = as_args(additional_forward_args)
    with model_state(model):
        act, g = _activation_and_gradient("grad_cam_plus_plus", model, inputs, layer, target,
                                          args, attribute_to_layer_input)
    if g.dim() < 3:
        raise ValueError(f"grad_cam_plus_plus: the layer activation has shape "
                         f"{tuple(act.shape)}; expected (N, channels, *spatial), a conv layer")
    spatial = tuple(range(2, g.dim()))
    g2 = g * g
    denom = 2 * g2 + act.sum(spatial, keepdim=True) * g2 * g
    denom = denom + (denom == 0).to(denom.dtype)  # 0/0 -> 0: g2 is 0 there too, mostly
    alpha = g2 / denom
    weights = (alpha * g.relu()).sum(spatial, keepdim=True)
    cam = (weights * act).sum(1, keepdim=True)
    if relu_attributions:
        cam = cam.relu()
    return cam if interpolate_dims is None else interpolate(cam, interpolate_dims,
                                                            interpolate_mode)


def _layer_activation(where, model, module, inputs, args, to_input):
    with LayerCapture(where, module, to_input=to_input, grad=False) as cap, no_grad():
        out = forward(model, inputs, args)
    return cap.single(), out


def layer_integrated_gradients(model, inputs: Tensor, layer, target=None, baselines=None,
                               additional_forward_args=None, n_steps: int = 50,
                               method: str = "gausslegendre", internal_batch_size=None,
                               return_convergence_delta: bool = False,
                               attribute_to_layer_input: bool = False):
    """Integrated gradients with respect to a layer's activation: the activation moves on a
    straight line from its value for ``baselines`` to its value for ``inputs`` (the layer's
    output is replaced by each point of the path), the rest of the model unchanged.

    For text: ``layer`` is the embedding, ``inputs`` token ids and ``baselines`` the same
    shape filled with the padding id; sum the result over the embedding dim for one score per
    token.

    Args:
        model: a Module mapping ``inputs`` to scores (N, C) or (N,).
        inputs: a batch (N, ...) of any dtype.
        layer: a submodule of ``model`` or its dotted path (any kind of layer).
        target: class index (int), one per example (list), or None (the predicted class).
        baselines: the reference inputs: None (zeros), a number or a Tensor (like
            ``inputs``); the layer's activation for them starts the path.
        additional_forward_args, n_steps, method, internal_batch_size: as in
            :func:`~ember.explain.integrated_gradients`.
        return_convergence_delta: also return ``sum(attributions) - (F(a) - F(a'))`` per
            example, F being the model with the layer's activation set to a (ember takes both
            ends on the path itself; Captum evaluates the model on ``baselines``, which
            differs when the inputs also reach the model by another way, e.g. as a mask).
        attribute_to_layer_input: use the layer's input instead of its output.

    Shape:
        the layer's activation (N, *A); returns (N, *A) (and deltas (N,)).

    Returns:
        The attributions to the activation, or ``(attributions, delta)``.

    Matches ``captum.attr.LayerIntegratedGradients(model, layer).attribute(inputs,
    baselines, target, additional_forward_args, n_steps, method, internal_batch_size,
    return_convergence_delta, attribute_to_layer_input)``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> from ember.explain import layer_integrated_gradients
        >>> class Bag(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embedding = nn.Embedding(10, 4, padding_idx=0)
        ...         self.out = nn.Linear(4, 2)
        ...     def forward(self, ids):
        ...         return self.out(self.embedding(ids).tanh().mean(1))
        >>> ids = ember.tensor([[3, 5, 7]])
        >>> attr = layer_integrated_gradients(Bag(), ids, "embedding", target=1,
        ...                                   baselines=ember.zeros_like(ids))
        >>> attr.shape, attr.sum(-1).shape
        ((1, 3, 4), (1, 3))
    """
    where = "layer_integrated_gradients"
    x = check_inputs(where, inputs, floating=False).detach()
    args = as_args(additional_forward_args)
    with model_state(model):
        module = resolve_layer(where, model, layer, kinds=None, what="layers")
        t = resolve_target(where, model, x, target, args)
        base_in = baseline_like(where, x, baselines)
        act_x, _ = _layer_activation(where, model, module, x, args, attribute_to_layer_input)
        act_b, _ = _layer_activation(where, model, module, base_in, args,
                                     attribute_to_layer_input)
        if tuple(act_x.shape) != tuple(act_b.shape):
            raise ValueError(f"{where}: the layer's activation has shape {tuple(act_x.shape)} "
                             f"for the inputs but {tuple(act_b.shape)} for the baselines")
        if not act_x.is_floating_point():
            raise TypeError(f"{where}: the activation of layer {module.path!r} is "
                            f"{act_x.dtype}; integrate over a floating-point activation")
        grad_at = _gradients_at_layer_points(where, model, module, x, attribute_to_layer_input)
        total = path_gradients(model, act_b, act_x, t, args, n_steps, method,
                               internal_batch_size, grad_fn=grad_at)
        attr = total * (act_x - act_b)
        if not return_convergence_delta:
            return attr
        ends = []
        for point in (act_x, act_b):
            with LayerCapture(where, module, attribute_to_layer_input,
                              replace=lambda _, p=point: p, grad=False), no_grad():
                ends.append(select(forward(model, x, args), t))
    return attr, completeness_delta(attr, ends[0] - ends[1])


def _gradients_at_layer_points(where, model, module, x, to_input):
    """``grad_fn(points, target, args)`` for :func:`path_gradients`: run the model on the
    inputs repeated once per block of points, with the layer's activation replaced by the
    points, and return d(target scores)/d(points)."""
    n = x.shape[0]

    def grad_at(points, t_rep, a_rep):
        steps = points.shape[0] // n
        with LayerCapture(where, module, to_input, replace=lambda _: points) as cap, \
                enable_grad():
            repeated = x.repeat(steps, *([1] * (x.dim() - 1)))
            score = select(forward(model, repeated, a_rep), t_rep).sum()
            act = cap.single()
            if not score.requires_grad:
                return act.detach() * 0
            return grad(score, act, allow_unused=True, materialize_grads=True)[0]

    return grad_at


def layer_gradient_x_activation(model, inputs: Tensor, layer, target=None,
                                additional_forward_args=None,
                                attribute_to_layer_input: bool = False,
                                multiply_by_inputs: bool = True) -> Tensor:
    """A layer's activation times the gradient of the target score with respect to it (or
    the gradient alone with ``multiply_by_inputs=False``: the layer's saliency).

    Args:
        model: a Module mapping ``inputs`` to scores (N, C) or (N,).
        inputs: a batch (N, ...) of any dtype (token ids are fine).
        layer: a submodule of ``model`` or its dotted path.
        target: class index (int), one per example (list), or None (the predicted class).
        additional_forward_args: extra arguments passed to the model after ``inputs``.
        attribute_to_layer_input: use the layer's input instead of its output.
        multiply_by_inputs: multiply the gradient by the activation.

    Shape:
        the layer's activation (N, *A); returns (N, *A).

    Returns:
        ``activation * gradient`` (or the gradient).

    Matches ``captum.attr.LayerGradientXActivation(model, layer,
    multiply_by_inputs).attribute(inputs, target, additional_forward_args,
    attribute_to_layer_input)``.

    Example:
        >>> import ember
        >>> from ember import nn
        >>> from ember.explain import layer_gradient_x_activation
        >>> model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2))
        >>> layer_gradient_x_activation(model, ember.tensor([[1, 2, 3]]), "0").shape
        (1, 3, 4)
    """
    args = as_args(additional_forward_args)
    with model_state(model):
        act, g = _activation_and_gradient("layer_gradient_x_activation", model, inputs, layer,
                                          target, args, attribute_to_layer_input, kinds=None,
                                          what="layers")
    return act * g if multiply_by_inputs else g

