"""RMSprop: divide the gradient by a running root mean square of recent gradients.

Matches: ``torch.optim.RMSprop`` (defaults, arguments, state ``step``, ``square_avg``,
``momentum_buffer``, ``grad_avg``).

Reference: Hinton, "Neural Networks for Machine Learning", lecture 6e (2012); the centered
variant from Graves, "Generating Sequences With Recurrent Neural Networks" (2013).
"""

from __future__ import annotations

from ..ops import optim_kernels as K
from .optimizer import Optimizer, check_common, check_nonneg


class RMSprop(Optimizer):
    """RMSprop.

    Args:
        params: tensors to optimize, or dicts defining parameter groups.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant of the squared-gradient average (default 0.99).
        eps: added to the denominator for stability (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by an estimate of the gradient's variance instead of its second
            moment.
        maximize: maximize the objective instead of minimizing it.
        capturable, foreach, differentiable: accepted for PyTorch compatibility.
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults)

    def _validate(self, group):
        check_common("RMSprop", group)
        check_nonneg("RMSprop", group["momentum"], "momentum value", "momentum")
        check_nonneg("RMSprop", group["alpha"], "alpha value", "alpha")

    def _update_group(self, group):
        lr = float(group["lr"])
        for p, pa, ga in self._with_grads(group):
            state = self.state[p]
            if not state:
                state["step"] = self._step_tensor()
                state["square_avg"] = self._zeros(p)
                if group["momentum"] > 0:
                    state["momentum_buffer"] = self._zeros(p)
                if group["centered"]:
                    state["grad_avg"] = self._zeros(p)
            self._tick(state)
            grad_avg = state["grad_avg"]._data if group["centered"] else None
            buf = state["momentum_buffer"]._data if group["momentum"] > 0 else None
            K.rmsprop_step(pa, ga, state["square_avg"]._data, grad_avg, buf, lr=lr,
                           alpha=group["alpha"], eps=group["eps"],
                           weight_decay=group["weight_decay"], momentum=group["momentum"],
                           maximize=group["maximize"], ws=self._workspace)
            self._bump(p)
