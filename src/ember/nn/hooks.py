"""Module backward hooks: ``hook(module, grad_input, grad_output)``.

Matches: ``torch.nn.Module.register_full_backward_hook``. The module's tensor inputs and outputs
are passed through identity functions so that the gradients flowing through them can be seen:
the outputs' gradients (``grad_output``) arrive first; when the gradients with respect to the
inputs (``grad_input``) have all arrived, the hooks run and may replace ``grad_input``.
"""

from __future__ import annotations

from ..autograd import Function, Tensor


class _Identity(Function):
    @staticmethod
    def forward(ctx, *xs):
        return tuple(x.detach() for x in xs) if len(xs) > 1 else xs[0].detach()

    @staticmethod
    def backward(ctx, *grads):
        return grads if len(grads) > 1 else grads[0]


class BackwardHookState:
    """Collects one forward call's grad_output and grad_input, then calls the hooks."""

    def __init__(self, module):
        self.module = module
        self.grad_output = None
        self.n_inputs = 0
        self.input_positions = []

    def wrap_inputs(self, args: tuple) -> tuple:
        idx = [i for i, a in enumerate(args) if isinstance(a, Tensor) and a.requires_grad]
        self.n_inputs = len(args)
        self.input_positions = idx
        if not idx:
            return args
        wrapped = _Identity.apply(*[args[i] for i in idx])
        wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
        self.grad_input = [None] * len(args)
        self.pending = len(idx)
        args = list(args)
        for i, w in zip(idx, wrapped):
            args[i] = w
            w.register_hook(self._input_hook(i))
        return tuple(args)

    def _input_hook(self, i: int):
        def hook(grad):
            self.grad_input[i] = grad
            self.pending -= 1
            if self.pending == 0:
                new = self._call_hooks(tuple(self.grad_input))
                if new is not None:
                    return new[i]
            return None

        return hook

    def wrap_outputs(self, out):
        outs = out if isinstance(out, tuple) else (out,)
        pos = [k for k, o in enumerate(outs) if isinstance(o, Tensor) and o.requires_grad]
        if not pos:
            return out
        wrapped = _Identity.apply(*[outs[k] for k in pos])
        wrapped = wrapped if isinstance(wrapped, tuple) else (wrapped,)
        self.grad_output = [None] * len(outs)
        new = list(outs)
        for k, w in zip(pos, wrapped):
            new[k] = w
            w.register_hook(self._output_hook(k))
        return tuple(new) if isinstance(out, tuple) else new[0]

    def _output_hook(self, k: int):
        def hook(grad):
            self.grad_output[k] = grad
            if not self.input_positions:  # nothing upstream requires grad: call now
                self._call_hooks((None,) * max(self.n_inputs, 1))
            return None

        return hook

    def _call_hooks(self, grad_input: tuple):
        grad_output = tuple(self.grad_output or ())
        replaced = None
        for hook in list(self.module._backward_hooks.values()):
            result = hook(self.module, replaced or grad_input, grad_output)
            if result is not None:
                replaced = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        return replaced
