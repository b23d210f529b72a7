"""Perturbation attributions, which need no gradient: occlusion (slide a patch of a baseline
value over the input) and permutation importance (shuffle one feature across the examples).

Matches: ``captum.attr.Occlusion`` and ``sklearn.inspection.permutation_importance``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from ..autograd import Tensor, creation, no_grad
from ..nn import functional as F
from ..train import metrics as M
from ._common import (
    as_args,
    baseline_like,
    check_inputs,
    expand_args,
    forward,
    model_state,
    resolve_target,
)

__all__ = ["occlusion", "permutation_importance", "PermutationImportance"]


def _per_dim(where: str, name: str, value, nd: int, shape: tuple) -> tuple:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * nd
    if not isinstance(value, (tuple, list)) or len(value) != nd or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value):
        raise ValueError(f"{where}: {name} must be a positive int or a tuple of {nd} positive "
                         f"ints (one per non-batch dim of inputs {shape}), got {value!r}")
    return tuple(value)


def _windows(where: str, dims: tuple, shapes, strides) -> list:
    """The start index of every window along each dim (Captum's shift counts:
    ``ceil((D - w) / s) + 1`` positions, the last one cropped at the border)."""
    nd = len(dims)
    shapes = _per_dim(where, "sliding_window_shapes", shapes, nd, dims)
    strides = _per_dim(where, "strides", strides, nd, dims)
    for d, w, s in zip(dims, shapes, strides):
        if w > d:
            raise ValueError(f"{where}: sliding window {shapes} exceeds the input's "
                             f"non-batch shape {dims}")
        if s > w and d > w:
            raise ValueError(f"{where}: stride {strides} is larger than the sliding window "
                             f"{shapes} along a dim it does not cover")
    starts = [[k * s for k in range(math.ceil((d - w) / s) + 1)]
              for d, w, s in zip(dims, shapes, strides)]
    return [tuple(zip(st, shapes)) for st in itertools.product(*starts)]


def _window_masks(windows: list, dims: tuple, dtype) -> Tensor:
    """(W, *dims) with 1 inside each window: the product of one 0/1 vector per dim."""
    mask = None
    nd = len(dims)
    for d, size in enumerate(dims):
        rows = [[1 if lo <= i < lo + w else 0 for i in range(size)]
                for (lo, w) in (win[d] for win in windows)]
        shape = [len(windows)] + [size if j == d else 1 for j in range(nd)]
        ind = creation.tensor(rows, dtype=dtype).reshape(*shape)
        mask = ind if mask is None else mask * ind
    return mask


def occlusion(model, inputs: Tensor, sliding_window_shapes, strides=1, baselines=None,
              target=None, additional_forward_args=None, perturbations_per_eval=None):
    """Occlusion (Zeiler & Fergus, 2014): slide a window over the input, replace what it
    covers by the baseline, and credit each element with the mean drop of the target score
    over the windows that covered it.

    Args:
        model: a Module (or callable) mapping ``inputs`` to scores (N, C) or (N,).
        inputs: a batch (N, *D) (any dtype: occluding token ids with an unknown-word id works).
        sliding_window_shapes: the window size per non-batch dim (an int for all), e.g.
            ``(1, 3, 3)`` for images (N, 1, H, W).
        strides: the step per dim (an int for all); at most the window where the window does
            not span the dim.
        baselines: what replaces the covered elements: None (0), a number, or a Tensor
            broadcastable to ``inputs``.
        target: class index (int), one per example (list), or None (the predicted class).
        additional_forward_args: extra arguments passed to the model after ``inputs``.
        perturbations_per_eval: windows evaluated per forward pass (default: as many as give
            about 512 rows).

    Shape:
        inputs (N, *D); returns (N, *D) in the model output's floating dtype.

    Returns:
        The attributions.

    Matches ``captum.attr.Occlusion(model).attribute(inputs, sliding_window_shapes, strides,
    baselines, target, additional_forward_args, perturbations_per_eval)``.

    Example:
        >>> import ember
        >>> from ember.explain import occlusion
        >>> model = ember.nn.Linear(4, 1)
        >>> with ember.no_grad():
        ...     _ = model.weight.copy_(ember.tensor([[1.0, 2.0, 3.0, 4.0]]))
        ...     _ = model.bias.zero_()
        >>> occlusion(model, ember.ones(1, 4), (2,), strides=2, target=0)
        tensor([[3., 3., 7., 7.]])
    """
    where = "occlusion"
    x = check_inputs(where, inputs, floating=False).detach()
    n, dims = x.shape[0], tuple(x.shape[1:])
    windows = _windows(where, dims, sliding_window_shapes, strides)
    base = baseline_like(where, x, baselines)
    args = as_args(additional_forward_args)
    per = perturbations_per_eval or max(1, 512 // n)
    if not isinstance(per, int) or per < 1:
        raise ValueError(f"{where}: perturbations_per_eval must be a positive int, got {per!r}")
    with model_state(model), no_grad():
        t = resolve_target(where, model, x, target, args)
        f0 = _scores(model, x, t, args)
        total = None
        coverage = None
        for lo in range(0, len(windows), per):
            chunk = windows[lo:lo + per]
            k = len(chunk)
            m = _window_masks(chunk, dims, x.dtype).unsqueeze(1)  # (k, 1, *D)
            occluded = (x.unsqueeze(0) * (1 - m) + base.unsqueeze(0) * m).reshape(k * n, *dims)
            f = _scores(model, occluded, None if t is None else t.repeat(k),
                        expand_args(args, k, n)).reshape(k, n)
            mf = m.to(f0.dtype)
            diff = (f0.unsqueeze(0) - f).reshape(k, n, *([1] * len(dims)))
            part = (diff * mf).sum(0)
            cover = mf.sum(0)
            total = part if total is None else total + part
            coverage = cover if coverage is None else coverage + cover
    return total / coverage


def _scores(model, x, t, args):
    out = forward(model, x, args)
    if t is None:
        return out.reshape(out.shape[0])
    return out.gather(1, t.reshape(-1, 1)).reshape(out.shape[0])


# ---------------------------------------------------------------------- permutation importance


@dataclass
class PermutationImportance:
    """The result of :func:`permutation_importance` (scikit-learn's Bunch fields).

    Attributes:
        importances_mean: mean score drop per feature, shaped like one example.
        importances_std: its standard deviation over the repeats (population, ddof=0).
        importances: every drop, (n_repeats, *feature_shape).
        baseline_score: the metric on the unshuffled inputs.
    """

    importances_mean: Tensor
    importances_std: Tensor
    importances: Tensor
    baseline_score: float


def _neg_cross_entropy(output, target) -> float:
    return -float(F.cross_entropy(output, target).item())


def _neg_mse(output, target) -> float:
    return -float(F.mse_loss(output.reshape(target.shape), target.to(output.dtype)).item())


_METRICS = {"accuracy": lambda output, target: float(M.accuracy(output, target)),
            "neg_cross_entropy": _neg_cross_entropy, "neg_mean_squared_error": _neg_mse}


def permutation_importance(model, inputs: Tensor, target: Tensor, metric="accuracy",
                           n_repeats: int = 5, generator=None,
                           additional_forward_args=None) -> PermutationImportance:
    """Permutation feature importance (Breiman, 2001): how much the metric drops when one
    feature's values are shuffled across the examples, breaking its link to the target.

    Args:
        model: a Module (or callable) mapping ``inputs`` to outputs.
        inputs: a batch (N, *F); every element of an example is one feature.
        target: the true labels (class indices, or values for regression), (N,).
        metric: higher is better: ``"accuracy"``, ``"neg_cross_entropy"``,
            ``"neg_mean_squared_error"``, or a function ``metric(output, target) -> float``.
        n_repeats: shuffles per feature.
        generator: an ``ember.Generator`` for the shuffles (default: ember's global one).
        additional_forward_args: extra arguments passed to the model after ``inputs``.

    Shape:
        inputs (N, *F); importances_mean and importances_std (*F), importances
        (n_repeats, *F).

    Returns:
        A :class:`PermutationImportance`.

    Matches ``sklearn.inspection.permutation_importance(model, X, y, scoring, n_repeats,
    random_state)`` (the result fields; a generator instead of ``random_state``). Captum's
    ``FeaturePermutation`` is the per-example variant.

    Example:
        >>> import ember
        >>> from ember.explain import permutation_importance
        >>> model = ember.nn.Linear(3, 2)
        >>> with ember.no_grad():
        ...     _ = model.weight.copy_(ember.tensor([[0.0, 5.0, 0.0], [0.0, -5.0, 0.0]]))
        ...     _ = model.bias.zero_()
        >>> x = ember.randn(200, 3)
        >>> y = (x[:, 1] < 0).long()
        >>> result = permutation_importance(model, x, y, n_repeats=3,
        ...                                 generator=ember.Generator().manual_seed(0))
        >>> [round(v, 1) for v in result.importances_mean.tolist()]
        [0.0, 0.5, 0.0]
    """
    where = "permutation_importance"
    x = check_inputs(where, inputs, floating=False).detach()
    score = _metric_fn(where, metric)
    if not isinstance(n_repeats, int) or isinstance(n_repeats, bool) or n_repeats < 1:
        raise ValueError(f"{where}: n_repeats must be a positive int, got {n_repeats!r}")
    if not isinstance(target, Tensor) or target.dim() < 1 or target.shape[0] != x.shape[0]:
        raise ValueError(f"{where}: target must be a Tensor with one label per example "
                         f"({x.shape[0]}), got {getattr(target, 'shape', type(target).__name__)}")
    n, features = x.shape[0], tuple(x.shape[1:])
    flat = x.reshape(n, -1)
    n_features = flat.shape[1]
    args = as_args(additional_forward_args)
    with model_state(model), no_grad():
        base = score(forward(model, x, args), target)
        drops = []
        for j in range(n_features):
            one = creation.zeros(n_features, dtype=x.dtype)
            one[j] = 1
            row = []
            for _ in range(n_repeats):
                perm = creation.randperm(n, generator=generator)
                shuffled = flat[:, j].index_select(0, perm).reshape(n, 1)
                xp = (flat * (1 - one) + shuffled * one).reshape(n, *features)
                row.append(base - score(forward(model, xp, args), target))
            drops.append(row)
    importances = creation.tensor(drops, dtype="float64").t().reshape(n_repeats, *features)
    mean = importances.mean(0)
    std = ((importances - mean) ** 2).mean(0).sqrt()
    return PermutationImportance(mean, std, importances, float(base))


def _metric_fn(where: str, metric):
    if callable(metric):
        return lambda output, target: float(metric(output, target))
    if metric not in _METRICS:
        raise ValueError(f"{where}: unknown metric {metric!r}; valid: "
                         f"{', '.join(_METRICS)}, or a function (output, target) -> float "
                         f"(higher is better)")
    return _METRICS[metric]
