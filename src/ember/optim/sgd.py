"""Stochastic gradient descent, with optional (Nesterov) momentum.

Matches: ``torch.optim.SGD`` (defaults, arguments, ``state['momentum_buffer']``).

References: Robbins & Monro, "A Stochastic Approximation Method" (1951); momentum as in
Sutskever et al., "On the importance of initialization and momentum in deep learning" (ICML 2013),
in PyTorch's formulation (``v = mu * v + (1 - dampening) * g; p -= lr * v``).
"""

from __future__ import annotations

from ..ops import optim_kernels as K
from .optimizer import Optimizer, check_common, check_nonneg


class SGD(Optimizer):
    """Stochastic gradient descent (optionally with momentum).

    Args:
        params: tensors to optimize, or dicts defining parameter groups.
        lr: learning rate (default 1e-3).
        momentum: momentum factor (default 0).
        dampening: dampening for momentum (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: use Nesterov momentum (needs momentum > 0 and dampening 0).
        maximize: maximize the objective instead of minimizing it.
        foreach, differentiable, fused: accepted for PyTorch compatibility (ember always runs
            its fused NumPy kernels; differentiable=True is not supported).

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.ones(2))
        >>> opt = ember.optim.SGD([w], lr=0.1, momentum=0.9)
        >>> (w * w).sum().backward(); opt.step()
        >>> w
        Parameter containing:
        tensor([0.8000, 0.8000], requires_grad=True)
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _validate(self, group):
        check_common("SGD", group)
        check_nonneg("SGD", group["momentum"], "momentum value", "momentum")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum > 0 and zero "
                             f"dampening (got momentum={group['momentum']}, "
                             f"dampening={group['dampening']})")

    def _update_group(self, group):
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        items = []  # updated together: one compiled call for the whole group when possible
        for p, pa, ga in self._with_grads(group):
            buf, first = None, False
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = self._zeros(p)
                    first = True
                buf = buf._data
            items.append((pa, ga, buf, first))
            self._bump(p)
        K.sgd_many(items, lr=lr, momentum=momentum, dampening=float(group["dampening"]),
                   weight_decay=float(group["weight_decay"]), nesterov=bool(group["nesterov"]),
                   maximize=bool(group["maximize"]), ws=self._workspace)
