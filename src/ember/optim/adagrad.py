"""Adagrad: per-coordinate learning rates scaled by the accumulated squared gradients.

Matches: ``torch.optim.Adagrad`` (defaults, arguments, state ``step`` and ``sum`` created when
the optimizer is built).

Reference: Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
Stochastic Optimization" (JMLR 2011).
"""

from __future__ import annotations

from ..autograd import creation
from ..ops import optim_kernels as K
from .optimizer import Optimizer, check_common, check_nonneg


class Adagrad(Optimizer):
    """Adagrad.

    Args:
        params: tensors to optimize, or dicts defining parameter groups.
        lr: learning rate (default 1e-2).
        lr_decay: learning-rate decay, ``lr / (1 + (step - 1) * lr_decay)`` (default 0).
        weight_decay: L2 penalty (default 0).
        initial_accumulator_value: starting value of the squared-gradient sums (default 0).
        eps: added to the denominator for stability (default 1e-10).
        foreach, maximize, differentiable, fused: as in PyTorch (``maximize`` maximizes the
            objective; the others are accepted for compatibility).
    """

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0,
                 initial_accumulator_value=0, eps=1e-10, foreach=None, *, maximize=False,
                 differentiable=False, fused=None):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults)

    def _validate(self, group):
        check_common("Adagrad", group)
        check_nonneg("Adagrad", group["lr_decay"], "lr_decay value", "lr_decay")
        check_nonneg("Adagrad", group["initial_accumulator_value"],
                     "initial_accumulator_value", "initial_accumulator_value")

    def add_param_group(self, param_group):
        """Add a group; like PyTorch, Adagrad creates its state (``step``, ``sum``) at once."""
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            state = self.state[p]
            if not state:
                state["step"] = self._step_tensor()
                state["sum"] = creation.full_like(p, group["initial_accumulator_value"])

    def _update_group(self, group):
        lr = float(group["lr"])
        for p, pa, ga in self._with_grads(group):
            state = self.state[p]
            step = self._tick(state)
            K.adagrad_step(pa, ga, state["sum"]._data, step=step, lr=lr,
                           lr_decay=group["lr_decay"], eps=group["eps"],
                           weight_decay=group["weight_decay"], maximize=group["maximize"],
                           ws=self._workspace)
            self._bump(p)
