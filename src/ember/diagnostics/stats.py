"""The numbers the training doctor records (:class:`RunStats`) and how one tensor is measured.

Everything recorded is a Python float, int or string: the measured tensors are reduced at once
(with ember ops on their arrays, so no graph is recorded) and dropped, so the doctor never keeps
a reference to a tensor beyond the step, and its record saves as plain JSON (``stats.json``).

Series are lists of ``[step, value]`` pairs: a layer that only runs on some steps, or a
quantity measured only on sampled steps, needs no padding.
"""

from __future__ import annotations

import json
import math

from .. import ops
from ..ops import dtypes as _dt
from .findings import decode, encode

__all__ = ["RunStats", "measure_activation", "measure_inputs", "dead_fraction",
           "saturated_fraction", "STATS_FORMAT"]

STATS_FORMAT = "ember-doctor-stats/1"

# A sigmoid output within 0.02 of 0 or 1 has a derivative s(1 - s) < 0.0196, under 8% of its
# maximum 0.25; a tanh output beyond 0.98 in magnitude has 1 - t^2 < 0.04 (4% of 1). Gradients
# crossing such a unit shrink by more than an order of magnitude.
SIGMOID_MARGIN = 0.02
TANH_LIMIT = 0.98
#: below this batch size a unit that is zero for every example is not evidence of a dead unit
MIN_DEAD_BATCH = 8


# The measurements below run ember.ops functions on the tensors' arrays (ops.as_array): called
# on arrays, ops run their NumPy forward directly, with no Tensor wrapping and no graph, 3-4x
# cheaper than the same reductions on Tensors. Nothing is written: the arrays are only read.


def _array(x):
    a = ops.as_array(x)
    if a.dtype.kind != "f":
        a = ops.cast(a, _dt.F32)
    return a


def _fraction(mask) -> float:
    return float(ops.mean(ops.cast(mask, _dt.F32))) if ops.numel_of_shape(mask.shape) else 0.0


def dead_fraction(x) -> float | None:
    """The fraction of units (every index but the batch one) that are <= 0 for every example
    of the batch; None when the batch is too small to tell."""
    a = _array(x)
    if a.ndim < 2 or a.shape[0] < MIN_DEAD_BATCH:
        return None
    return dead_fraction_from_alive(units_alive(a))


def units_alive(x):
    """For each unit, whether it is > 0 for at least one example of the batch (a bool array
    with one value per unit)."""
    return ops.any(ops.gt(_array(x), 0), 0)


def dead_fraction_from_alive(alive) -> float:
    return 1.0 - _fraction(alive)


def saturated_fraction(x, kind: str) -> float:
    """The fraction of outputs of a sigmoid (``kind="sigmoid"``) or tanh near their limits."""
    a = _array(x)
    if kind == "sigmoid":
        sat = ops.logical_or(ops.lt(a, SIGMOID_MARGIN), ops.gt(a, 1.0 - SIGMOID_MARGIN))
    else:
        sat = ops.gt(ops.abs(a), TANH_LIMIT)
    return _fraction(sat)


def mean_std(a, axis=None):
    """Mean and (unbiased) standard deviation, over all elements or along ``axis``: a sum and a
    dot product of the centred values (two passes, numerically sound, and half the cost of
    ``std``)."""
    if axis is None:
        n = ops.numel_of_shape(a.shape)
        mean = float(ops.sum(a)) / max(n, 1)
        c = ops.reshape(ops.sub(a, mean), (-1,))
        return mean, math.sqrt(max(float(ops.vdot(c, c)), 0.0) / max(n - 1, 1))
    n = a.shape[axis]
    mean = ops.mean(a, axis, keepdim=True)
    c = ops.sub(a, mean)
    var = ops.div(ops.sum(ops.mul(c, c), axis), max(n - 1, 1))
    return ops.reshape(mean, (-1,)), ops.reshape(ops.sqrt(var), (-1,))


def measure_activation(x, kind: str) -> dict:
    """Mean, standard deviation, finiteness and (by ``kind``) dead or saturated fraction."""
    a = _array(x)
    mean, std = mean_std(a)
    # any NaN or Inf element makes the sum, hence the mean or the std, non-finite
    finite = math.isfinite(mean) and math.isfinite(std)
    out = {"finite": 1.0 if finite else 0.0, "mean": mean, "std": std}
    if finite and kind == "relu":
        dead = dead_fraction(a)
        if dead is not None:
            out["dead_frac"] = dead
    elif finite and kind in ("sigmoid", "tanh"):
        out["sat_frac"] = saturated_fraction(a, kind)
    return out


def measure_inputs(x, per_feature: bool = True) -> dict:
    """Scale of a batch of model inputs: mean, std, and (with ``per_feature``) the spread of
    per-feature stds (largest over median, ignoring constant features)."""
    a = _array(x)
    mean, std = mean_std(a)
    out = {"mean": mean, "std": std}
    if per_feature and a.ndim >= 2 and a.shape[0] >= 2:
        _, stds = mean_std(a, 0)
        stds = sorted(s for s in stds.tolist() if s > 0 and math.isfinite(s))
        if stds:
            out["feature_std_ratio"] = stds[-1] / stds[len(stds) // 2]
    return out


def sum_of_squares(x) -> float:
    a = ops.reshape(_array(x), (-1,))
    return float(ops.vdot(a, a))


def norm(x) -> float:
    return math.sqrt(sum_of_squares(x))


def distance(x, y) -> float:
    """``||x - y||``."""
    return norm(ops.sub(_array(x), _array(y)))


class RunStats:
    """What the doctor recorded during one training run.

    Attributes:
        every: the sampling period (steps).
        steps: the number of optimizer steps seen.
        sampled: the steps on which layers and parameters were measured.
        layers: ``{key: info}`` in order of first execution (depth order); ``key`` is the
            module's path, with ``#2``, ``#3`` ... for further calls of the same module in a
            step; ``info`` has ``path``, ``type``, ``kind`` (``param``, ``relu``, ``sigmoid``,
            ``tanh`` or ``activation``), ``order`` and, for activations, ``input_from``.
        params: ``{name: info}`` with the owning layer's ``path`` and the ``shape``.
        layer_series / param_series: ``{key: {quantity: [[step, value], ...]}}``.
        loss: ``[[step, value], ...]`` for every step.
        epochs: one dict of logs per epoch (``epoch``, ``step``, ``loss``, ``val_loss`` ...).
        inputs: ``{quantity: [[step, value], ...]}`` measured on the model's inputs.
        global_series: ``{quantity: [[step, value], ...]}`` (``grad_norm``: all parameters).
    """

    def __init__(self, every: int = 10, model: str = ""):
        self.every, self.model = int(every), model
        self.steps = 0
        self.sampled: list = []
        self.layers: dict = {}
        self.params: dict = {}
        self.layer_series: dict = {}
        self.param_series: dict = {}
        self.loss: list = []
        self.epochs: list = []
        self.inputs: dict = {}
        self.global_series: dict = {}

    # ------------------------------------------------------------------ recording
    def add_layer(self, key: str, info: dict) -> None:
        if key not in self.layers:
            self.layers[key] = {**info, "order": len(self.layers)}

    @staticmethod
    def _add(store: dict, key: str, quantity: str, step: int, value) -> None:
        store.setdefault(key, {}).setdefault(quantity, []).append([step, value])

    def layer_value(self, key: str, quantity: str, step: int, value) -> None:
        self._add(self.layer_series, key, quantity, step, value)

    def param_value(self, name: str, quantity: str, step: int, value) -> None:
        self._add(self.param_series, name, quantity, step, value)

    def input_value(self, quantity: str, step: int, value) -> None:
        self.inputs.setdefault(quantity, []).append([step, value])

    def global_value(self, quantity: str, step: int, value) -> None:
        self.global_series.setdefault(quantity, []).append([step, value])

    # ------------------------------------------------------------------ reading
    def layer_series_of(self, key: str, quantity: str) -> list:
        return self.layer_series.get(key, {}).get(quantity, [])

    def param_series_of(self, name: str, quantity: str) -> list:
        return self.param_series.get(name, {}).get(quantity, [])

    def ordered_layers(self) -> list:
        """``(key, info)`` in depth (first-execution) order."""
        return sorted(self.layers.items(), key=lambda kv: kv[1]["order"])

    def loss_values(self) -> list:
        return [v for _, v in self.loss]

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict:
        return encode({"format": STATS_FORMAT, "every": self.every, "model": self.model,
                       "steps": self.steps, "sampled": self.sampled, "layers": self.layers,
                       "params": self.params, "layer_series": self.layer_series,
                       "param_series": self.param_series, "loss": self.loss,
                       "epochs": self.epochs, "inputs": self.inputs,
                       "global_series": self.global_series})

    @classmethod
    def from_dict(cls, data: dict) -> RunStats:
        if data.get("format") != STATS_FORMAT:
            raise ValueError(f"RunStats: unknown stats format {data.get('format')!r} "
                             f"(expected {STATS_FORMAT!r})")
        data = decode(data)
        s = cls(data["every"], data.get("model", ""))
        for key in ("steps", "sampled", "layers", "params", "layer_series", "param_series",
                    "loss", "epochs", "inputs", "global_series"):
            setattr(s, key, data[key])
        return s

    def save(self, path) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, allow_nan=False, separators=(",", ":"))

    @classmethod
    def load(cls, path) -> RunStats:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))
