"""The training doctor: :class:`Doctor` watches a model through module hooks.

Standalone, around any training loop::

    with ember.diagnostics.watch(model, every=10) as doctor:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            doctor.step(loss)          # after optimizer.step()
    print(doctor.summary())
    doctor.write_report("doctor/")

or as a Trainer callback (:class:`~ember.diagnostics.DoctorCallback`).

How it measures. On a *sampled* step (every ``every`` steps, and the first), the doctor
attaches a forward pre-hook to the model (input scale) and a forward hook to every layer with
parameters and every activation module; each forward hook reduces the layer's output to a few
numbers (mean, standard deviation, dead or saturated fraction) and registers a gradient hook
on that output (norm of the gradient of the loss with respect to it). After backward it reads
each parameter's gradient norm, and after the optimizer step the update-to-weight ratio
``||W_after - W_before|| / ||W_before||`` (from a copy of the weights taken when the step
began) and the weight norm. Then every hook is removed. On the other steps nothing is
attached: the cost is one callback call and one float (the loss).

Activations applied functionally (``F.relu(self.fc1(x))`` in a ``forward``) are found from
the graph: when a layer's input was produced by ``relu``, ``sigmoid`` or ``tanh`` (possibly
through reshapes), that input is measured and credited to the layer that produced the
activation's input (``fc1``).

Cost (``benchmarks/doctor_bench.py``): on a sampled step, roughly the price of a few extra
elementwise ops per layer output plus a copy of the weights; amortized over ``every=10``,
a few percent of a training step.

The doctor never records a graph (it reduces the tensors' arrays with ember.ops), never draws
random numbers and never changes a tensor, so training with it gives the same weights, bit for
bit, as training without it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings

from .. import ops
from ..autograd import Node, Tensor, is_grad_enabled
from ..nn import Module
from ..nn.modules import activation as _act
from ..nn.modules import sparse as _sparse
from . import rules
from .findings import DoctorWarning, Finding
from .stats import (
    MIN_DEAD_BATCH,
    RunStats,
    dead_fraction_from_alive,
    distance,
    measure_activation,
    measure_inputs,
    norm,
    saturated_fraction,
    sum_of_squares,
    units_alive,
)

__all__ = ["Doctor", "watch"]

_Embeddings = (_sparse.Embedding,)
_ACTIVATION_KIND = {_act.ReLU: "relu", _act.ReLU6: "relu", _act.Sigmoid: "sigmoid",
                    _act.Tanh: "tanh"}
_FUNCTIONAL_KIND = {"relu": "relu", "sigmoid": "sigmoid", "tanh": "tanh"}
# ops whose operands are followed back when looking for the activations feeding a layer: a
# residual sum ``h + relu(fc(h))``
_PASS_THROUGH = ("add", "sub")


def _layer_kind(module: Module):
    """``param`` for a layer with its own parameters (``embedding`` for embeddings, whose
    gradient is sparse), an activation kind for activation modules, None for containers and
    other parameter-free modules (not watched)."""
    if any(p is not None for p in module._parameters.values()):
        return "embedding" if isinstance(module, _Embeddings) else "param"
    kind = _ACTIVATION_KIND.get(type(module))
    if kind is not None:
        return kind
    if isinstance(module, (_act._Activation, _act.PReLU)):
        return "activation"
    return None


def _first_tensor(out):
    if isinstance(out, Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, Tensor):
                return o
    return None


def _skip_views(node):
    """Walk back from ``node`` through view ops (reshape, flatten ...) and identity functions
    (backward-hook wrappers) to the op that computed the values."""
    while node is not None and (node.prim.view or node.prim.op_name() == "_Identity"):
        edge = node.edges[0] if node.edges else None
        node = edge[0] if edge is not None and isinstance(edge[0], Node) else None
    return node


def _input_node(node):
    """The (view-skipped) node that computed ``node``'s first input, or None for a leaf."""
    edge = node.edges[0] if node.edges else None
    return _skip_views(edge[0]) if edge is not None and isinstance(edge[0], Node) else None


def _activation_nodes(node, limit: int = 8) -> list:
    """``(node, in_sum)`` for the relu/sigmoid/tanh nodes whose output reaches ``node``'s value
    directly or through views and sums (``in_sum``: through a sum, i.e. a residual branch);
    at most ``limit`` nodes visited."""
    found, stack, seen = [], [(node, False)], set()
    while stack and len(seen) < limit:
        n, in_sum = stack.pop()
        n = _skip_views(n)
        if n is None or id(n) in seen:
            continue
        seen.add(id(n))
        op = n.prim.op_name()
        if op in _FUNCTIONAL_KIND:
            found.append((n, in_sum))
        elif op in _PASS_THROUGH:
            stack.extend((e[0], True) for e in n.edges
                         if e is not None and isinstance(e[0], Node))
    return found


_EMBER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _user_stacklevel() -> int:
    """The ``stacklevel`` that makes a warning issued by the caller point at the first frame
    outside ember (the user's training loop or ``trainer.fit`` call)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(_EMBER_DIR):
        frame, level = frame.f_back, level + 1
    return level


class Doctor:
    """Watches ``model`` while it trains and diagnoses what goes wrong.

    Args:
        model: the ``ember.nn.Module`` to watch.
        every: measure layers and parameters every ``every`` steps (and on the first step);
            the loss is recorded every step.
        warn: issue a :class:`DoctorWarning` as soon as an acute problem shows (NaN or Inf,
            exploding gradients, a diverging loss); the full diagnosis comes from
            :meth:`diagnose` / :meth:`summary`.
    """

    def __init__(self, model: Module, every: int = 10, warn: bool = True):
        if not isinstance(model, Module):
            raise TypeError(f"Doctor: expected an ember.nn.Module, got {type(model).__name__}")
        if int(every) < 1:
            raise ValueError(f"Doctor: every must be >= 1, got {every}")
        self.model, self.every, self.warn = model, int(every), warn
        self.stats = RunStats(self.every, type(model).__name__)
        self._watched = [(path, m, kind) for path, m in model.named_modules()
                         if (kind := _layer_kind(m)) is not None]
        self._params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self._param_layer = {name: name.rpartition(".")[0] for name, _ in self._params}
        self._handles: list = []
        self._step = 0
        self._sampling = False
        self._grads_read = False
        self._snapshot = None
        self._warned: set = set()
        self._early_losses: list = []
        self._early_grad_norms: list = []
        self._reset_step_state()

    def _reset_step_state(self) -> None:
        self._calls: dict = {}
        self._producers: dict = {}  # id(graph node) -> layer key that produced it
        self._measured_acts: set = set()
        self._units_alive: dict = {}  # layer key -> whether each output unit is ever > 0

    # ------------------------------------------------------------------ step protocol
    @property
    def step_count(self) -> int:
        """The number of steps completed."""
        return self._step

    def is_sampled(self, step: int) -> bool:
        return step % self.every == 0

    def begin_step(self, step: int | None = None) -> None:
        """Start step ``step`` (default: the next one); attach the hooks if it is sampled."""
        if step is not None:
            self._step = int(step)
        self._detach()
        if not self.is_sampled(self._step):
            return
        self._sampling, self._grads_read = True, False
        self._reset_step_state()
        # the weights before the step, for the update ratio (dropped when the step ends)
        self._snapshot = {name: ops.owned_copy(ops.as_array(p)) for name, p in self._params}
        self._handles.append(self.model.register_forward_pre_hook(self._on_model_input))
        for path, module, kind in self._watched:
            self._handles.append(module.register_forward_hook(self._forward_hook(path, kind)))

    def record_gradients(self) -> None:
        """Read the parameters' gradients (after backward, before the optimizer step; called
        by :meth:`end_step` if it was not called before)."""
        if not self._sampling or self._grads_read:
            return
        self._grads_read = True
        step, total, per_layer = self._step, 0.0, {}
        for name, p in self._params:
            if p.grad is None:
                continue
            ss = sum_of_squares(p.grad)
            total += ss
            self.stats.param_value(name, "grad_norm", step, math.sqrt(ss))
            if p.dim() >= 2:  # weights (not biases or norm scales) make the depth profile
                acc = per_layer.setdefault(self._param_layer[name], [0.0, 0])
                acc[0] += ss
                acc[1] += p.numel()
        for layer, (ss, n) in per_layer.items():
            self.stats.layer_value(layer, "grad_rms", step, math.sqrt(ss / max(n, 1)))
        if per_layer or total:
            grad_norm = math.sqrt(total)
            self.stats.global_value("grad_norm", step, grad_norm)
            self._check_acute(rules.acute_grad_norm, grad_norm, self._early_grad_norms)

    def end_step(self, loss=None) -> None:
        """Finish the current step: record ``loss`` (a number or a scalar Tensor), and on a
        sampled step the gradients, update ratios and weight norms; remove the hooks."""
        step = self._step
        if loss is not None:
            value = float(loss.item() if isinstance(loss, Tensor) else loss)
            self.stats.loss.append([step, value])
            self._check_acute(rules.acute_loss, value, self._early_losses)
        if self._sampling:
            self.record_gradients()
            self._record_updates()
            self.stats.sampled.append(step)
            self._check_nonfinite_layers()
        self._detach()
        self._step = step + 1
        self.stats.steps = self._step

    def step(self, loss=None) -> None:
        """Standalone use: call once per training step, after ``optimizer.step()``."""
        self.end_step(loss)
        self.begin_step()

    def record_epoch(self, epoch: int, logs: dict) -> None:
        """Record one epoch's logs (``loss``, ``val_loss``, ``accuracy`` ...): the validation
        curves used to diagnose over- and underfitting."""
        entry = {"epoch": int(epoch), "step": self._step}
        for k, v in (logs or {}).items():
            if isinstance(v, (int, float)) or (isinstance(v, Tensor) and v.numel() == 1):
                entry[k] = float(v.item() if isinstance(v, Tensor) else v)
        self.stats.epochs.append(entry)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        """The record so far, for a checkpoint (``ember.save``-able): the statistics as one
        JSON string, the problems already warned about and the early values the acute rules
        compare against. A run resumed from it is diagnosed as one run."""
        return {"stats": json.dumps(self.stats.to_dict(), allow_nan=False,
                                    separators=(",", ":")),
                "warned": [list(key) for key in self._warned],
                "early_losses": list(self._early_losses),
                "early_grad_norms": list(self._early_grad_norms), "step": self._step}

    def load_state_dict(self, state: dict) -> None:
        """Continue the record of :meth:`state_dict` (same sampling period)."""
        stats = RunStats.from_dict(json.loads(state["stats"]))
        if stats.every != self.every:
            raise ValueError(f"Doctor: the saved record samples every {stats.every} steps, "
                             f"this doctor every {self.every}; resume with the same `every`")
        self.stats = stats
        self._warned = {tuple(key) for key in state["warned"]}
        self._early_losses = [float(v) for v in state["early_losses"]]
        self._early_grad_norms = [float(v) for v in state["early_grad_norms"]]
        self._step = int(state["step"])

    def close(self) -> None:
        """Remove every hook (a step left unfinished is discarded)."""
        self._detach()

    def __enter__(self) -> Doctor:
        self.begin_step()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ results
    def diagnose(self) -> list[Finding]:
        """The findings so far, most severe first (see :mod:`ember.diagnostics.rules`)."""
        return rules.diagnose(self.stats)

    def summary(self, findings=None) -> str:
        """The text report: findings with evidence and remedies, then per-layer numbers."""
        from .report import format_report

        return format_report(self.stats, self.diagnose() if findings is None else findings)

    def write_report(self, folder, plots: bool = True) -> str:
        """Write ``findings.json``, ``stats.json``, ``report.txt`` and (with ``plots``) the
        PNG plots into ``folder``; returns the folder."""
        from .report import write_report

        return write_report(folder, self.stats, self.diagnose(), plots=plots)

    # ------------------------------------------------------------------ hooks
    def _detach(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        self._sampling = False
        self._snapshot = None
        self._reset_step_state()

    def _on_model_input(self, module, args):
        x = args[0] if args else None
        if isinstance(x, Tensor) and x.is_floating_point() and is_grad_enabled() and \
                "inputs" not in self._calls:
            self._calls["inputs"] = 1
            # the features' relative scales do not change: measured on the first samples only
            per_feature = len(self.stats.inputs.get("mean", ())) < 5
            for q, v in measure_inputs(x, per_feature).items():
                self.stats.input_value(q, self._step, v)

    def _forward_hook(self, path: str, kind: str):
        def hook(module, args, out):
            if is_grad_enabled():  # a validation pass inside the step is not training
                self._on_forward(path, kind, module, args, out)

        return hook

    def _on_forward(self, path: str, kind: str, module, args, out) -> None:
        n = self._calls.get(path, 0) + 1
        self._calls[path] = n
        key = path if n == 1 else f"{path}#{n}"
        t = _first_tensor(out)
        if t is None or not t.is_floating_point():
            return
        info = {"path": path or "(root)", "type": type(module).__name__, "kind": kind}
        x = args[0] if args and isinstance(args[0], Tensor) else None
        if kind not in ("param", "embedding") and x is not None:
            src = _skip_views(x.grad_fn)
            if src is not None and id(src) in self._producers:
                info["input_from"] = self._producers[id(src)]
        self.stats.add_layer(key, info)
        step = self._step
        for q, v in measure_activation(t, kind).items():
            self.stats.layer_value(key, q, step, v)
        if t.grad_fn is not None:  # (a hook on a leaf would outlive the step)
            t.register_hook(self._grad_hook(key))
        if t.grad_fn is not None:
            self._producers[id(t.grad_fn)] = key
            if kind not in ("param", "embedding"):
                self._measured_acts.add(id(t.grad_fn))
            elif t.dim() >= 2 and t.shape[0] >= MIN_DEAD_BATCH:
                # small (one bool per unit), dropped at the end of the step
                self._units_alive[key] = units_alive(t)
        if x is not None and x.grad_fn is not None:
            self._functional_activations(x)

    def _grad_hook(self, key: str):
        step = self._step

        def hook(grad):
            n = norm(grad)
            self.stats.layer_value(key, "out_grad_norm", step, n)
            self.stats.layer_value(key, "out_grad_rms", step, n / math.sqrt(max(grad.numel(),
                                                                                1)))
            return None

        return hook

    def _functional_activations(self, x: Tensor) -> None:
        """Measure the functional relu/sigmoid/tanh feeding a layer's input ``x``, crediting
        each to the layer that produced the activation's input (``fc1`` for
        ``relu(fc1(h))``). A ReLU's dead units come from that layer's per-unit "ever > 0" (so
        a ReLU inside a residual sum is found too); a sigmoid's or tanh's saturation is
        measured on ``x`` when ``x`` is its output."""
        direct = _skip_views(x.grad_fn)
        for node, in_sum in _activation_nodes(x.grad_fn):
            if id(node) in self._measured_acts:
                continue
            self._measured_acts.add(id(node))
            owner = self._producers.get(id(_input_node(node)))
            if owner is None:
                continue  # the activation of something no watched layer made
            kind = _FUNCTIONAL_KIND[node.prim.op_name()]
            if kind == "relu" and owner in self._units_alive:
                dead = dead_fraction_from_alive(self._units_alive[owner])
            elif kind != "relu" and node is direct and node.out_meta[0][0] == tuple(x.shape):
                dead = None
                self.stats.layer_value(owner, "sat_frac", self._step,
                                       saturated_fraction(x, kind))
            else:
                continue
            self.stats.layers[owner]["activation"] = f"{kind} (functional)"
            if in_sum:
                self.stats.layers[owner]["residual_branch"] = True
            if dead is not None:
                self.stats.layer_value(owner, "dead_frac", self._step, dead)

    def _record_updates(self) -> None:
        if self._snapshot is None:
            return
        step = self._step
        for name, p in self._params:
            before = self._snapshot.get(name)
            if before is None:
                continue
            w = norm(before)  # the weight norm (before this step's update: one norm less)
            self.stats.param_value(name, "weight_norm", step, w)
            if w > 0:
                self.stats.param_value(name, "update_ratio", step, distance(p, before) / w)
        for name, p in self._params:
            if name not in self.stats.params:
                self.stats.params[name] = {"path": self._param_layer[name],
                                           "shape": list(p.shape)}
        self._snapshot = None

    # ------------------------------------------------------------------ acute problems
    def _emit(self, finding: Finding) -> None:
        key = (finding.kind, finding.path)
        if not self.warn or key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(f"ember doctor, step {self._step}: {finding}", DoctorWarning,
                      stacklevel=_user_stacklevel())

    def _check_acute(self, rule, value: float, early: list) -> None:
        """Run an acute ``rule`` on this step's ``value`` against the first finite values seen
        (``early``, which grows up to ``rules.EARLY_WINDOW`` of them)."""
        finding = rule(value, early, self._step)
        if finding is not None:
            self._emit(finding)
        if len(early) < rules.EARLY_WINDOW and math.isfinite(value):
            early.append(value)

    def _check_nonfinite_layers(self) -> None:
        finding = rules.acute_nonfinite(self.stats, self._step)
        if finding is not None:
            self._emit(finding)


def watch(model: Module, every: int = 10, warn: bool = True) -> Doctor:
    """A :class:`Doctor` watching ``model``; use it as a context manager and call
    ``doctor.step(loss)`` after each optimizer step.

    Example:
        >>> import ember
        >>> model = ember.nn.Sequential(ember.nn.Linear(4, 8), ember.nn.ReLU(),
        ...                             ember.nn.Linear(8, 2))
        >>> opt = ember.optim.SGD(model.parameters(), lr=0.1)
        >>> x, y = ember.randn(16, 4), ember.randint(0, 2, (16,))
        >>> with ember.diagnostics.watch(model, every=2) as doctor:
        ...     for _ in range(4):
        ...         loss = ember.nn.functional.cross_entropy(model(x), y)
        ...         opt.zero_grad(); loss.backward(); opt.step()
        ...         doctor.step(loss)
        >>> doctor.stats.sampled
        [0, 2]
    """
    return Doctor(model, every=every, warn=warn)
