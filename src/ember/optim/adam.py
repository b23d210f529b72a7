"""The Adam family: Adam, AdamW, Adamax, NAdam, RAdam.

Matches: ``torch.optim.Adam``, ``AdamW``, ``Adamax``, ``NAdam``, ``RAdam`` (defaults, argument
names, state layout: ``step`` as a float32 scalar tensor, ``exp_avg``, ``exp_avg_sq``,
``max_exp_avg_sq``, ``exp_inf``, ``mu_product``).

References:
- Adam, Adamax: Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015);
- AMSGrad: Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond" (ICLR 2018);
- AdamW: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019);
- NAdam: Dozat, "Incorporating Nesterov Momentum into Adam" (ICLR 2016 workshop);
- RAdam: Liu et al., "On the Variance of the Adaptive Learning Rate and Beyond" (ICLR 2020).
"""

from __future__ import annotations

from ..ops import optim_kernels as K
from .optimizer import Optimizer, check_betas, check_common, check_nonneg


class Adam(Optimizer):
    """Adam: adaptive moment estimation.

    Args:
        params: tensors to optimize, or dicts defining parameter groups.
        lr: learning rate (default 1e-3).
        betas: decay rates of the first and second moment averages (default (0.9, 0.999)).
        eps: added to the denominator for stability (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0), or, with
            ``decoupled_weight_decay=True``, AdamW's decoupled decay.
        amsgrad: use the AMSGrad variant (the running maximum of the second moment).
        maximize: maximize the objective instead of minimizing it.
        decoupled_weight_decay: decay the weights directly (AdamW).
        foreach, capturable, differentiable, fused: accepted for PyTorch compatibility.

    Example:
        >>> import ember
        >>> w = ember.nn.Parameter(ember.ones(2))
        >>> opt = ember.optim.Adam([w], lr=0.1)
        >>> (w * w).sum().backward(); opt.step()
        >>> w
        Parameter containing:
        tensor([0.9000, 0.9000], requires_grad=True)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _validate(self, group):
        check_common(self._name(), group)
        check_betas(self._name(), group["betas"])

    def _update_group(self, group):
        lr = float(group["lr"])
        beta1, beta2 = group["betas"]
        amsgrad = group["amsgrad"]
        items = []  # updated together: one compiled call for the whole group when possible
        for p, pa, ga in self._with_grads(group):
            state = self.state[p]
            if not state:
                state["step"] = self._step_tensor()
                state["exp_avg"] = self._zeros(p)
                state["exp_avg_sq"] = self._zeros(p)
                if amsgrad:
                    state["max_exp_avg_sq"] = self._zeros(p)
            items.append((pa, ga, state["exp_avg"]._data, state["exp_avg_sq"]._data,
                          state["max_exp_avg_sq"]._data if amsgrad else None,
                          self._tick(state)))
            self._bump(p)
        K.adam_many(items, lr=lr, beta1=float(beta1), beta2=float(beta2),
                    eps=float(group["eps"]), weight_decay=float(group["weight_decay"]),
                    decoupled=bool(group["decoupled_weight_decay"]),
                    maximize=bool(group["maximize"]), amsgrad=bool(amsgrad), ws=self._workspace)


class AdamW(Adam):
    """AdamW: Adam with decoupled weight decay (``p -= lr * weight_decay * p`` each step).

    Args: as :class:`Adam`, with ``weight_decay`` defaulting to 1e-2. Matches
    ``torch.optim.AdamW``.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm of past gradients as the denominator.

    Args:
        params: tensors to optimize, or dicts defining parameter groups.
        lr: learning rate (default 2e-3).
        betas: decay rates of the first moment and of the infinity norm (default
            (0.9, 0.999)).
        eps: added for stability (default 1e-8).
        weight_decay: L2 penalty (default 0).
        foreach, maximize, differentiable, capturable: as in PyTorch.
    """

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 foreach=None, *, maximize=False, differentiable=False, capturable=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, capturable=capturable)
        super().__init__(params, defaults)

    def _validate(self, group):
        check_common("Adamax", group)
        check_betas("Adamax", group["betas"])

    def _update_group(self, group):
        lr = float(group["lr"])
        beta1, beta2 = group["betas"]
        for p, pa, ga in self._with_grads(group):
            state = self.state[p]
            if not state:
                state["step"] = self._step_tensor()
                state["exp_avg"] = self._zeros(p)
                state["exp_inf"] = self._zeros(p)
            step = self._tick(state)
            K.adamax_step(pa, ga, state["exp_avg"]._data, state["exp_inf"]._data, step=step,
                          lr=lr, beta1=float(beta1), beta2=float(beta2), eps=group["eps"],
                          weight_decay=group["weight_decay"], maximize=group["maximize"],
                          ws=self._workspace)
            self._bump(p)


class NAdam(Optimizer):
    """NAdam: Adam with Nesterov momentum (and a momentum warm-up schedule).

    Args:
        params: tensors to optimize, or dicts defining parameter groups.
        lr: learning rate (default 2e-3).
        betas: moment decay rates (default (0.9, 0.999)).
        eps: added to the denominator for stability (default 1e-8).
        weight_decay: weight decay (default 0).
        momentum_decay: the momentum schedule's decay psi (default 4e-3).
        decoupled_weight_decay: apply AdamW-style decoupled decay (NAdamW).
        foreach, maximize, capturable, differentiable: as in PyTorch.
    """

    _scalar_state = ("step", "mu_product")

    def __init__(self, params, lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 momentum_decay=4e-3, decoupled_weight_decay=False, *, foreach=None,
                 maximize=False, capturable=False, differentiable=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        momentum_decay=momentum_decay,
                        decoupled_weight_decay=decoupled_weight_decay, maximize=maximize,
                        foreach=foreach, capturable=capturable, differentiable=differentiable)
        super().__init__(params, defaults)

    def _validate(self, group):
        check_common("NAdam", group)
        check_betas("NAdam", group["betas"])
        check_nonneg("NAdam", group["momentum_decay"], "momentum_decay value",
                     "momentum_decay")

    def _update_group(self, group):
        lr = float(group["lr"])
        beta1, beta2 = group["betas"]
        for p, pa, ga in self._with_grads(group):
            state = self.state[p]
            if not state:
                state["step"] = self._step_tensor()
                mu = state["mu_product"] = self._step_tensor()
                mu.fill_(1.0)
                state["exp_avg"] = self._zeros(p)
                state["exp_avg_sq"] = self._zeros(p)
            step = self._tick(state)
            K.nadam_step(pa, ga, state["exp_avg"]._data, state["exp_avg_sq"]._data,
                         state["mu_product"]._data, step=step, lr=lr, beta1=float(beta1),
                         beta2=float(beta2), eps=group["eps"],
                         weight_decay=group["weight_decay"],
                         momentum_decay=group["momentum_decay"],
                         decoupled=group["decoupled_weight_decay"],
                         maximize=group["maximize"], ws=self._workspace)
            self._bump(p)


class RAdam(Optimizer):
    """RAdam: Adam whose adaptive learning rate is rectified while its variance is large.

    Args:
        params: tensors to optimize, or dicts defining parameter groups.
        lr: learning rate (default 1e-3).
        betas: moment decay rates (default (0.9, 0.999)).
        eps: added to the denominator for stability (default 1e-8).
        weight_decay: weight decay (default 0).
        decoupled_weight_decay: apply AdamW-style decoupled decay.
        foreach, maximize, capturable, differentiable: as in PyTorch.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 decoupled_weight_decay=False, *, foreach=None, maximize=False,
                 capturable=False, differentiable=False):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        maximize=maximize, foreach=foreach, capturable=capturable,
                        decoupled_weight_decay=decoupled_weight_decay,
                        differentiable=differentiable)
        super().__init__(params, defaults)

    def _validate(self, group):
        check_common("RAdam", group)
        check_betas("RAdam", group["betas"])

    def _update_group(self, group):
        lr = float(group["lr"])
        beta1, beta2 = group["betas"]
        for p, pa, ga in self._with_grads(group):
            state = self.state[p]
            if not state:
                state["step"] = self._step_tensor()
                state["exp_avg"] = self._zeros(p)
                state["exp_avg_sq"] = self._zeros(p)
            step = self._tick(state)
            K.radam_step(pa, ga, state["exp_avg"]._data, state["exp_avg_sq"]._data, step=step,
                         lr=lr, beta1=float(beta1), beta2=float(beta2), eps=group["eps"],
                         weight_decay=group["weight_decay"],
                         decoupled=group["decoupled_weight_decay"],
                         maximize=group["maximize"], ws=self._workspace)
            self._bump(p)
