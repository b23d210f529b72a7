"""``Optimizer``: the base class of every optimizer (parameter groups, state, state dicts).

Matches: ``torch.optim.Optimizer`` (``param_groups``, ``defaults``, ``state``, ``zero_grad``,
``step(closure)``, ``add_param_group``, ``state_dict`` / ``load_state_dict`` in PyTorch's format,
``__repr__``).

Subclasses implement ``_validate(group)`` (hyperparameter checks, run for every group) and
``_update_group(group)`` (one step for the parameters of one group). Updates run under
``no_grad`` directly on the parameters' arrays through the fused kernels of
:mod:`ember.ops.optim_kernels`; optimizer state lives in ember tensors whose arrays those kernels
update in place.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from itertools import chain

from ..autograd import Tensor, creation
from ..autograd.grad_mode import enable_grad, no_grad
from ..ops import optim_kernels


class _RequiredParameter:
    """Marks a hyperparameter without a default (it must be given for every group)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class Optimizer:
    """Base class for optimizers.

    Args:
        params: an iterable of tensors to optimize, or of dicts defining parameter groups (each
            with a ``"params"`` entry and optional per-group hyperparameters).
        defaults: the hyperparameters used by groups that do not set them.
    """

    #: state entries that are scalars (not shaped like the parameter) in state dicts
    _scalar_state = ("step",)

    def __init__(self, params, defaults: dict):
        name = type(self).__name__
        self.defaults = defaults
        self.state = defaultdict(dict)
        self.param_groups = []
        self._workspace = optim_kernels.Workspace()
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params should be an iterable of tensors or of dicts, but "
                            f"got a single tensor; pass [tensor] or model.parameters()")
        if isinstance(params, dict):
            params = [params]
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be given in an ordered collection (a list "
                            f"or tuple), not a set: the order of a set changes between runs")
        try:
            params = list(params)
        except TypeError:
            raise TypeError(f"{name}: params should be an iterable of tensors or of dicts, got "
                            f"{type(params).__name__}") from None
        if not params:
            raise ValueError(f"{name}: got an empty parameter list (expected at least one "
                             f"tensor to optimize)")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    # ------------------------------------------------------------------ parameter groups
    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters, with its own hyperparameters, to optimize.

        Matches ``torch.optim.Optimizer.add_param_group``: missing options take the defaults; a
        parameter may belong to one group only.
        """
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict, got "
                            f"{type(param_group).__name__}")
        params = param_group.get("params")
        if params is None:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry")
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(f"{name}: parameters must be given in an ordered collection (a list "
                            f"or tuple), not a set: the order of a set changes between runs")
        else:
            params = list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize tensors, but parameter {i} of the "
                                f"group is a {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError(f"{name}: can't optimize a non-leaf tensor (parameter {i} of "
                                 f"the group, shape {tuple(p.shape)}); optimize the leaf it was "
                                 f"computed from, or detach() it")
            if not p.is_floating_point():
                raise TypeError(f"{name}: can only optimize floating-point tensors, parameter "
                                f"{i} has dtype {p.dtype}")
        group = dict(param_group)
        group["params"] = params
        for key, default in self.defaults.items():
            if default is required and key not in group:
                raise ValueError(f"{name}: parameter group didn't specify a value of required "
                                 f"optimization parameter {key}")
            group.setdefault(key, default)
        if len({id(p) for p in params}) != len(params):
            warnings.warn(f"{name}: a parameter group contains duplicate parameters; in future "
                          f"this will cause an error", UserWarning, stacklevel=3)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group: dict) -> None:
        """Check a group's hyperparameters (subclasses override)."""

    # ------------------------------------------------------------------ stepping
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors.

        Args:
            set_to_none: set ``.grad`` to None (the default, saves memory and lets the
                optimizer skip the parameter) instead of filling it with zeros.
        """
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if g.grad_fn is not None:
                        g.detach_()
                    else:
                        g.requires_grad_(False)
                    g.zero_()

    def step(self, closure=None):
        """Perform one optimization step.

        Args:
            closure: optional callable that re-evaluates the model and returns the loss (run
                with gradients enabled before the update).
        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                self._update_group(group)
        return loss

    def _update_group(self, group: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _with_grads(self, group: dict):
        """``(param, param array, grad array)`` for every parameter of ``group`` with a grad."""
        for p in group["params"]:
            g = p.grad
            if g is None:
                continue
            if g.shape != p.shape:
                raise RuntimeError(f"{type(self).__name__}: parameter of shape {tuple(p.shape)} "
                                   f"has a gradient of shape {tuple(g.shape)} (expected the "
                                   f"parameter's shape)")
            yield p, p._data, g._data

    @staticmethod
    def _bump(p: Tensor) -> None:
        """Record an in-place change of ``p`` (its version counter, as ``p.add_`` would)."""
        p._version[0] += 1

    @staticmethod
    def _zeros(p: Tensor) -> Tensor:
        return creation.zeros_like(p)

    @staticmethod
    def _step_tensor() -> Tensor:
        """A float32 scalar step counter (PyTorch keeps ``state['step']`` as such a tensor)."""
        return creation.tensor(0.0)

    @staticmethod
    def _tick(state: dict) -> float:
        """Increment ``state['step']`` and return the new value as a Python float."""
        step = state["step"]
        if isinstance(step, Tensor):
            step._version[0] += 1
            return optim_kernels.tick(step._data)
        state["step"] = step + 1
        return float(state["step"])

    def _name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------------ state dicts
    def state_dict(self) -> dict:
        """The optimizer's state in PyTorch's layout.

        Returns ``{'state': {index: {name: tensor or number}}, 'param_groups': [{option: value,
        'params': [indices]}]}``, parameters numbered in group order. The state tensors are the
        optimizer's own (not copies), as in PyTorch.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            ids = []
            for p in group["params"]:
                if id(p) not in index:
                    index[id(p)] = len(index)
                ids.append(index[id(p)])
            packed["params"] = ids
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load a state produced by :meth:`state_dict` (of an optimizer of the same structure).

        Validates the number of groups, group sizes and the shapes of per-parameter state;
        copies the state tensors (cast to their parameter's floating dtype, except scalars such
        as ``step``).
        """
        name = self._name()
        if not isinstance(state_dict, dict) or "state" not in state_dict or \
                "param_groups" not in state_dict:
            got = sorted(state_dict) if isinstance(state_dict, dict) else \
                type(state_dict).__name__
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'state' and "
                             f"'param_groups', got {got}")
        saved_groups = state_dict["param_groups"]
        saved_state = state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not isinstance(saved_state, dict):
            raise ValueError(f"{name}.load_state_dict: 'param_groups' must be a list and "
                             f"'state' a dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: loaded state dict has a different number "
                             f"of parameter groups ({len(saved_groups)}) than the optimizer "
                             f"({len(self.param_groups)})")
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if not isinstance(s, dict) or not isinstance(s.get("params"), (list, tuple)):
                raise ValueError(f"{name}.load_state_dict: saved parameter group {i} must be a "
                                 f"dict with a 'params' list of indices")
            if len(s["params"]) != len(g["params"]):
                raise ValueError(f"{name}.load_state_dict: loaded parameter group {i} has "
                                 f"{len(s['params'])} parameters but the optimizer's group has "
                                 f"{len(g['params'])}")
        id_map = dict(zip(chain.from_iterable(s["params"] for s in saved_groups),
                          chain.from_iterable(g["params"] for g in self.param_groups)))
        new_state = defaultdict(dict)
        for key, values in saved_state.items():
            if key not in id_map:
                raise ValueError(f"{name}.load_state_dict: state for parameter index {key!r}, "
                                 f"which is not in any saved parameter group "
                                 f"(known indices: {sorted(id_map)})")
            if not isinstance(values, dict):
                raise ValueError(f"{name}.load_state_dict: state of parameter {key!r} must be a "
                                 f"dict, got {type(values).__name__}")
            p = id_map[key]
            new_state[p] = {k: self._load_value(p, key, k, v) for k, v in values.items()}
        groups = []
        for g, s in zip(self.param_groups, saved_groups):
            ng = {k: v for k, v in s.items() if k != "params"}
            ng["params"] = g["params"]
            groups.append(ng)
        self.state = new_state
        self.param_groups = groups

    def _load_value(self, p: Tensor, index, key: str, value):
        if not isinstance(value, Tensor):
            return value
        if key in self._scalar_state:
            return creation.tensor(value)
        if tuple(value.shape) != tuple(p.shape):
            raise ValueError(f"{self._name()}.load_state_dict: state {key!r} of parameter "
                             f"{index} has shape {tuple(value.shape)}, but the parameter has "
                             f"shape {tuple(p.shape)}")
        if value.is_floating_point():
            return creation.tensor(value, dtype=p.dtype)
        return creation.tensor(value)

    # ------------------------------------------------------------------ display
    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {group[k]}" for k in sorted(group) if k != "params")
        return "\n".join(lines) + "\n)"


# ---------------------------------------------------------------------------- validation helpers
def check_nonneg(opt: str, value, what: str, key: str) -> None:
    """Raise ``ValueError`` unless ``value >= 0``."""
    if not value >= 0:
        raise ValueError(f"{opt}: invalid {what} {value} (expected {key} >= 0)")


def check_unit(opt: str, value, what: str, key: str, closed: bool = False) -> None:
    """Raise ``ValueError`` unless ``0 <= value < 1`` (``<= 1`` when ``closed``)."""
    ok = 0.0 <= value <= 1.0 if closed else 0.0 <= value < 1.0
    if not ok:
        bound = "<=" if closed else "<"
        raise ValueError(f"{opt}: invalid {what} {value} (expected 0 <= {key} {bound} 1)")


def check_betas(opt: str, betas) -> None:
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise ValueError(f"{opt}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    check_unit(opt, b1, "beta parameter at index 0", "betas[0]")
    check_unit(opt, b2, "beta parameter at index 1", "betas[1]")


def check_common(opt: str, group: dict) -> None:
    """Checks shared by all optimizers: lr, eps, weight_decay, differentiable."""
    check_nonneg(opt, group["lr"], "learning rate", "lr")
    if "eps" in group:
        check_nonneg(opt, group["eps"], "epsilon value", "eps")
    if "weight_decay" in group:
        check_nonneg(opt, group["weight_decay"], "weight_decay value", "weight_decay")
    if group.get("differentiable"):
        raise ValueError(f"{opt}: differentiable=True is not supported (ember optimizers update "
                         f"the raw arrays outside autograd)")
