"""What every attribution method shares: checking inputs, choosing targets, running the model
in evaluation mode with its flags restored, layer lookup and layer hooks.

Conventions (Captum's): ``inputs`` has the examples along dim 0; ``target`` picks one output
per example from a ``(N, C)`` output (an int for all examples, or one per example); extra
arguments the model needs after the input (lengths, masks) come in ``additional_forward_args``
and receive no attribution. ember addition: ``target=None`` on a multi-class output means the
predicted class of each example (Captum would need an explicit target there).
"""

from __future__ import annotations

import contextlib

from ..autograd import Tensor, creation, no_grad
from ..nn import Module

__all__ = ["check_inputs", "as_args", "baseline_like", "forward", "resolve_target", "select",
           "expand_args", "expand_target", "model_state", "resolve_layer", "layer_paths",
           "LayerCapture"]

CONV_KINDS = ("Conv1d", "Conv2d", "Conv3d")


def check_inputs(where: str, inputs, floating: bool = True) -> Tensor:
    """``inputs`` as a batched Tensor (floating point unless ``floating=False``)."""
    if not isinstance(inputs, Tensor):
        raise TypeError(f"{where}: inputs must be an ember Tensor with the examples along "
                        f"dim 0, got {type(inputs).__name__}")
    if inputs.dim() < 1 or inputs.shape[0] == 0:
        raise ValueError(f"{where}: inputs must have a batch dim with at least one example, "
                         f"got shape {tuple(inputs.shape)}")
    if floating and not inputs.is_floating_point():
        raise TypeError(f"{where}: inputs must be floating point to take gradients, got "
                        f"{inputs.dtype}; for token ids attribute to the embedding layer "
                        f"(layer_integrated_gradients, layer_gradient_x_activation)")
    return inputs


def as_args(additional_forward_args) -> tuple:
    """``additional_forward_args`` as a tuple (None -> (), a single value -> (value,))."""
    if additional_forward_args is None:
        return ()
    if isinstance(additional_forward_args, tuple):
        return additional_forward_args
    return (additional_forward_args,)


def forward(model, inputs, args: tuple):
    out = model(inputs, *args)
    if not isinstance(out, Tensor):
        raise TypeError(f"the model returned {type(out).__name__}; attribution needs a Tensor "
                        f"of shape (N,) or (N, C) (wrap the model in a function that returns "
                        f"the scores)")
    return out


def _check_output(where: str, out: Tensor, n: int) -> None:
    shape = tuple(out.shape)
    if len(shape) not in (1, 2) or shape[0] != n:
        raise ValueError(f"{where}: expected the model to return scores of shape ({n},) or "
                         f"({n}, C) for {n} examples, got {shape}; wrap it in a function that "
                         f"returns one row of class scores per example")


def baseline_like(where: str, inputs: Tensor, baselines) -> Tensor:
    """``baselines`` (None = zeros, a number, or a Tensor broadcastable to ``inputs``) as a
    Tensor of the inputs' shape and dtype (float or integer: token ids)."""
    if baselines is None:
        return creation.zeros_like(inputs)
    if isinstance(baselines, (int, float)) and not isinstance(baselines, bool):
        return creation.full_like(inputs, baselines)
    if not isinstance(baselines, Tensor):
        raise TypeError(f"{where}: baselines must be None, a number or a Tensor, got "
                        f"{type(baselines).__name__}")
    shape, bshape = tuple(inputs.shape), tuple(baselines.shape)
    ok = len(bshape) <= len(shape) and all(
        b in (1, s) for b, s in zip(bshape[::-1], shape[::-1]))
    if not ok:
        raise ValueError(f"{where}: baselines of shape {bshape} do not broadcast to the inputs' "
                         f"shape {shape}; give one baseline per example {shape}, one for all "
                         f"{(1,) + shape[1:]}, or a number")
    return (creation.zeros_like(inputs) + baselines.detach().to(inputs.dtype)).detach()


def resolve_target(where: str, model, inputs: Tensor, target, args: tuple = ()):
    """The per-example target class indices as an int64 Tensor (N,), or None when the model
    returns one score per example. ``target=None`` picks each example's predicted class."""
    n = inputs.shape[0]
    with no_grad():
        out = forward(model, inputs, args)
    _check_output(where, out, n)
    classes = 1 if out.dim() == 1 else out.shape[1]
    if target is None:
        if out.dim() == 1 or classes == 1:
            return None
        return out.argmax(1)
    if isinstance(target, Tensor):
        target = target.tolist()
    if isinstance(target, bool) or not isinstance(target, (int, list, tuple)):
        raise TypeError(f"{where}: target must be a class index (int), a list of one index "
                        f"per example, or None (the predicted class), got "
                        f"{type(target).__name__}")
    values = [target] * n if isinstance(target, int) else list(target)
    if len(values) != n:
        raise ValueError(f"{where}: got {len(values)} targets for {n} examples; give one "
                         f"class index, or one per example")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"{where}: target indices must be ints, got {v!r}")
        if not -classes <= v < classes:
            raise ValueError(f"{where}: target {v} is out of range for a model with {classes} "
                             f"classes (valid: 0..{classes - 1})")
    if out.dim() == 1:
        return None
    return creation.tensor([v % classes for v in values])


def select(out: Tensor, target) -> Tensor:
    """The target score of each example: (N,)."""
    if target is None:
        return out.reshape(out.shape[0])
    return out.gather(1, target.reshape(-1, 1)).reshape(out.shape[0])


def expand_args(args: tuple, times: int, n: int) -> tuple:
    """Repeat every Tensor argument with ``n`` rows ``times`` times along dim 0 (step-major,
    matching inputs built as ``times`` blocks of the ``n`` examples)."""
    return tuple(a.repeat(times, *([1] * (a.dim() - 1)))
                 if isinstance(a, Tensor) and a.dim() >= 1 and a.shape[0] == n else a
                 for a in args)


def expand_target(target, times: int):
    return None if target is None else target.repeat(times)


@contextlib.contextmanager
def model_state(model):
    """Run ``model`` in evaluation mode with its parameters' ``requires_grad`` off (only input
    or activation gradients are taken), restoring both (per module / parameter) afterwards."""
    if not isinstance(model, Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for m, mode in modes:
            m.__dict__["training"] = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def layer_paths(model, kinds=None) -> list:
    """Dotted paths of the model's submodules (of the given class names, when ``kinds``)."""
    if not isinstance(model, Module):
        return []
    return [name for name, m in model.named_modules()
            if name and (kinds is None or type(m).__name__ in kinds)]


def resolve_layer(where: str, model, layer, kinds=CONV_KINDS, what: str = "conv layers"):
    """The submodule ``layer`` (a Module of the model, or its dotted path like "features.3").
    Errors list the valid paths of ``kinds``."""
    if not isinstance(model, Module):
        raise TypeError(f"{where}: needs an ember.nn.Module to find layer {layer!r} in, got "
                        f"{type(model).__name__}")
    valid = layer_paths(model, kinds)
    listing = ", ".join(repr(v) for v in valid) if valid else "none"
    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if layer not in modules or not layer:
            raise ValueError(f"{where}: {type(model).__name__} has no layer {layer!r}; "
                             f"{what}: {listing}")
        return modules[layer]
    if isinstance(layer, Module):
        if not any(m is layer for m in model.modules()):
            raise ValueError(f"{where}: the given {type(layer).__name__} is not a submodule of "
                             f"{type(model).__name__}; {what}: {listing}")
        return layer
    raise TypeError(f"{where}: layer must be a Module or a dotted path string, got "
                    f"{type(layer).__name__}; {what}: {listing}")


class LayerCapture:
    """A forward hook on ``layer`` that replaces its output (or first input) by a leaf that
    requires grad, so the gradient with respect to that activation can be taken; ``replace``
    (a function of the activation) substitutes another tensor instead (interpolated
    activations for layer integrated gradients).

    Use as a context manager: the hook is removed on exit, whatever happens.
    """

    def __init__(self, where: str, layer: Module, to_input: bool = False, replace=None,
                 grad: bool = True):
        self.where, self.layer, self.to_input = where, layer, to_input
        self.replace, self.grad = replace, grad
        self.activations: list = []
        self._handle = None

    def _leaf(self, act):
        if not isinstance(act, Tensor):
            raise TypeError(f"{self.where}: layer {self.layer.path or type(self.layer).__name__!r} "
                            f"returned {type(act).__name__}; expected a Tensor")
        new = act.detach() if self.replace is None else self.replace(act.detach())
        if self.grad and new.is_floating_point():
            new = new.detach().requires_grad_(True)
        self.activations.append(new)
        return new

    def __enter__(self) -> LayerCapture:
        if self.to_input:
            def pre_hook(module, args):
                return (self._leaf(args[0]),) + tuple(args[1:])
            self._handle = self.layer.register_forward_pre_hook(pre_hook)
        else:
            def hook(module, args, out):
                return self._leaf(out)
            self._handle = self.layer.register_forward_hook(hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def single(self) -> Tensor:
        """The one activation recorded (an error when the layer ran never or several times)."""
        if len(self.activations) != 1:
            name = self.layer.path or type(self.layer).__name__
            raise ValueError(f"{self.where}: layer {name!r} ran {len(self.activations)} times "
                             f"in one forward pass; choose a layer that runs exactly once")
        return self.activations[0]
