"""Adadelta: an adaptive learning-rate method using running averages of squared updates.

Matches: ``torch.optim.Adadelta`` (defaults, arguments, state ``step``, ``square_avg``,
``acc_delta``).

Reference: Zeiler, "ADADELTA: An Adaptive Learning Rate Method" (arXiv:1212.5701, 2012).
"""

from __future__ import annotations

from ..ops import optim_kernels as K
from .optimizer import Optimizer, check_common, check_unit


class Adadelta(Optimizer):
    """Adadelta.

    Args:
        params: tensors to optimize, or dicts defining parameter groups.
        lr: coefficient that scales the delta before it is applied (default 1.0).
        rho: decay of the running averages (default 0.9).
        eps: added inside the square roots for stability (default 1e-6).
        weight_decay: L2 penalty (default 0).
        foreach, capturable, maximize, differentiable: as in PyTorch (``maximize`` maximizes
            the objective; the others are accepted for compatibility).
    """

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, foreach=None, *,
                 capturable=False, maximize=False, differentiable=False):
        defaults = dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, maximize=maximize,
                        capturable=capturable, foreach=foreach, differentiable=differentiable)
        super().__init__(params, defaults)

    def _validate(self, group):
        check_common("Adadelta", group)
        check_unit("Adadelta", group["rho"], "rho value", "rho", closed=True)

    def _update_group(self, group):
        lr = float(group["lr"])
        for p, pa, ga in self._with_grads(group):
            state = self.state[p]
            if not state:
                state["step"] = self._step_tensor()
                state["square_avg"] = self._zeros(p)
                state["acc_delta"] = self._zeros(p)
            self._tick(state)
            K.adadelta_step(pa, ga, state["square_avg"]._data, state["acc_delta"]._data, lr=lr,
                            rho=group["rho"], eps=group["eps"],
                            weight_decay=group["weight_decay"], maximize=group["maximize"],
                            ws=self._workspace)
            self._bump(p)
