"""Gradient attributions to the input: saliency, input x gradient, SmoothGrad and integrated
gradients (with Captum's quadrature rules and the completeness check).

Matches: ``captum.attr.Saliency``, ``InputXGradient``, ``NoiseTunnel`` and
``IntegratedGradients`` (their ``attribute`` arguments, defaults and results).
"""

from __future__ import annotations

import math

from ..autograd import Tensor, creation, enable_grad, grad, no_grad
from ._common import (
    as_args,
    baseline_like,
    check_inputs,
    expand_args,
    expand_target,
    forward,
    model_state,
    resolve_target,
    select,
)

__all__ = ["saliency", "input_x_gradient", "smoothgrad", "integrated_gradients",
           "approximation_parameters"]

INTEGRATION_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
                       "riemann_trapezoid")


def input_gradients(model, inputs: Tensor, target, args: tuple = ()) -> Tensor:
    """d(sum of the target scores)/d(inputs): each example's gradient (examples are
    independent in evaluation mode). ``target`` is already resolved (see resolve_target)."""
    x = inputs.detach().requires_grad_(True)
    with enable_grad():
        score = select(forward(model, x, args), target).sum()
        if not score.requires_grad:  # the output does not depend on the input
            return creation.zeros_like(x)
        return grad(score, x, allow_unused=True, materialize_grads=True)[0]


def saliency(model, inputs: Tensor, target=None, abs: bool = True,  # noqa: A002 - Captum's name
             additional_forward_args=None) -> Tensor:
    """The gradient of the target score with respect to the input (Simonyan et al., 2014).

    Args:
        model: a Module (or any callable) mapping ``inputs`` to scores (N, C) or (N,).
        inputs: a floating-point batch (N, ...).
        target: class index for every example, a list of one index per example, or None
            (each example's predicted class).
        abs: return the absolute value of the gradient (Captum's default).
        additional_forward_args: extra arguments passed to the model after ``inputs``.

    Shape:
        inputs (N, *); returns (N, *).

    Returns:
        The attributions, a Tensor shaped like ``inputs``.

    The model runs in evaluation mode; its mode and its parameters' ``requires_grad`` are
    restored afterwards. Matches ``captum.attr.Saliency(model).attribute(inputs, target,
    abs)``.

    Example:
        >>> import ember
        >>> from ember.explain import saliency
        >>> model = ember.nn.Linear(3, 2)
        >>> with ember.no_grad():
        ...     _ = model.weight.copy_(ember.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 0.0]]))
        >>> saliency(model, ember.ones(1, 3), target=0)
        tensor([[1.0000, 2.0000, 0.5000]])
    """
    x = check_inputs("saliency", inputs)
    args = as_args(additional_forward_args)
    with model_state(model):
        t = resolve_target("saliency", model, x, target, args)
        g = input_gradients(model, x, t, args)
    return g.abs() if abs else g


def input_x_gradient(model, inputs: Tensor, target=None,
                     additional_forward_args=None) -> Tensor:
    """The input times the gradient of the target score with respect to it.

    Args:
        model: a Module (or callable) mapping ``inputs`` to scores (N, C) or (N,).
        inputs: a floating-point batch (N, ...).
        target: class index (int), one per example (list), or None (the predicted class).
        additional_forward_args: extra arguments passed to the model after ``inputs``.

    Shape:
        inputs (N, *); returns (N, *).

    Returns:
        ``inputs * gradient``.

    Matches ``captum.attr.InputXGradient(model).attribute(inputs, target)``.

    Example:
        >>> import ember
        >>> from ember.explain import input_x_gradient
        >>> model = ember.nn.Linear(2, 1)
        >>> with ember.no_grad():
        ...     _ = model.weight.copy_(ember.tensor([[3.0, -1.0]]))
        >>> input_x_gradient(model, ember.tensor([[2.0, 5.0]]), target=0)
        tensor([[6., -5.]])
    """
    x = check_inputs("input_x_gradient", inputs)
    args = as_args(additional_forward_args)
    with model_state(model):
        t = resolve_target("input_x_gradient", model, x, target, args)
        return x.detach() * input_gradients(model, x, t, args)


def smoothgrad(model, inputs: Tensor, target=None, nt_samples: int = 5, stdevs: float = 1.0,
               noise_level: float | None = None, nt_type: str = "smoothgrad",
               abs: bool = True, multiply_by_inputs: bool = False,  # noqa: A002
               generator=None, additional_forward_args=None) -> Tensor:
    """SmoothGrad (Smilkov et al., 2017): saliency averaged over noisy copies of the input.

    Args:
        model: a Module (or callable) mapping ``inputs`` to scores (N, C) or (N,).
        inputs: a floating-point batch (N, ...).
        target: class index (int), one per example (list), or None (the predicted class).
        nt_samples: the number of noisy samples per example.
        stdevs: the standard deviation of the Gaussian noise (in input units).
        noise_level: instead of ``stdevs``, the noise as a fraction of each example's value
            range ``max - min`` (the paper's "noise level", e.g. 0.15).
        nt_type: ``"smoothgrad"`` (mean), ``"smoothgrad_sq"`` (mean of squares) or
            ``"vargrad"`` (variance) of the per-sample attributions.
        abs: take the absolute gradient of each sample (as ``Saliency`` does).
        multiply_by_inputs: attribute ``noisy input * gradient`` (``InputXGradient``)
            instead of the gradient.
        generator: an ``ember.Generator`` for the noise (default: ember's global one).
        additional_forward_args: extra arguments passed to the model after ``inputs``.

    Shape:
        inputs (N, *); returns (N, *).

    Returns:
        The smoothed attributions. With ``stdevs=0`` they equal :func:`saliency`.

    The noise of sample ``s`` for example ``n`` is element ``[s, n]`` of one
    ``ember.randn(nt_samples, *inputs.shape, generator=generator)`` draw (times the std).
    Matches ``captum.attr.NoiseTunnel(Saliency(model)).attribute(inputs, nt_type,
    nt_samples, stdevs, target=target)`` (Captum draws its noise differently).

    Example:
        >>> import ember
        >>> from ember.explain import smoothgrad
        >>> model = ember.nn.Sequential(ember.nn.Linear(4, 8), ember.nn.Tanh(),
        ...                             ember.nn.Linear(8, 3))
        >>> x = ember.randn(2, 4)
        >>> g = ember.Generator().manual_seed(0)
        >>> smoothgrad(model, x, target=1, nt_samples=8, stdevs=0.1, generator=g).shape
        (2, 4)
    """
    x = check_inputs("smoothgrad", inputs).detach()
    if nt_type not in ("smoothgrad", "smoothgrad_sq", "vargrad"):
        raise ValueError(f"smoothgrad: nt_type must be 'smoothgrad', 'smoothgrad_sq' or "
                         f"'vargrad', got {nt_type!r}")
    if not isinstance(nt_samples, int) or nt_samples < 1:
        raise ValueError(f"smoothgrad: nt_samples must be a positive int, got {nt_samples!r}")
    n = x.shape[0]
    std = _noise_std(x, stdevs, noise_level)
    noise = creation.randn(nt_samples, *x.shape, generator=generator, dtype=x.dtype) * std
    noisy = (x.unsqueeze(0) + noise).reshape(nt_samples * n, *x.shape[1:])
    args = as_args(additional_forward_args)
    with model_state(model):
        t = resolve_target("smoothgrad", model, x, target, args)
        g = input_gradients(model, noisy, expand_target(t, nt_samples),
                            expand_args(args, nt_samples, n))
    attr = noisy * g if multiply_by_inputs else g
    attr = (attr.abs() if abs else attr).reshape(nt_samples, *x.shape)
    if nt_type == "smoothgrad":
        return attr.mean(0)
    if nt_type == "smoothgrad_sq":
        return (attr * attr).mean(0)
    mean = attr.mean(0)
    return (attr * attr).mean(0) - mean * mean


def _noise_std(x: Tensor, stdevs: float, noise_level):
    """The noise standard deviation: a number, or (N, 1, ...) per example from its range."""
    if noise_level is None:
        if not float(stdevs) >= 0:
            raise ValueError(f"smoothgrad: stdevs must be >= 0, got {stdevs}")
        return float(stdevs)
    if not float(noise_level) >= 0:
        raise ValueError(f"smoothgrad: noise_level must be >= 0, got {noise_level}")
    flat = x.reshape(x.shape[0], -1)
    span = flat.amax(1) - flat.amin(1)
    return (span * float(noise_level)).reshape(1, x.shape[0], *([1] * (x.dim() - 1)))


# ---------------------------------------------------------------------- integrated gradients


def _legendre(n: int, x: float) -> tuple:
    """(P_n(x), P_n'(x)) by the three-term recurrence."""
    p_prev, p = 1.0, x
    for k in range(2, n + 1):
        p_prev, p = p, ((2 * k - 1) * x * p - (k - 1) * p_prev) / k
    return p, n * (x * p - p_prev) / (x * x - 1.0)


def _gauss_legendre(n: int) -> tuple:
    """Nodes and weights of the n-point Gauss-Legendre rule on [-1, 1], ascending (what
    ``numpy.polynomial.legendre.leggauss`` returns), by Newton's method on P_n."""
    nodes, weights = [], []
    for i in range(1, n + 1):
        x = math.cos(math.pi * (i - 0.25) / (n + 0.5))
        for _ in range(100):
            p, dp = _legendre(n, x)
            step = p / dp
            x -= step
            if abs(step) < 1e-16:
                break
        _, dp = _legendre(n, x)
        nodes.append(x)
        weights.append(2.0 / ((1.0 - x * x) * dp * dp))
    return nodes[::-1], weights[::-1]


def approximation_parameters(method: str, n_steps: int) -> tuple:
    """``(step_sizes, alphas)``: the quadrature weights and points on [0, 1] of Captum's
    integral approximation ``method`` (gausslegendre, riemann_left/right/middle/trapezoid).

    As in Captum, ``riemann_trapezoid`` puts ``n`` points on [0, 1] (spacing 1/(n-1)) but
    weights them 1/n (halved at the ends): the weights sum to (n-1)/n, so its completeness
    error is O(1/n). Gauss-Legendre is exact for polynomials of degree < 2n.

    Example:
        >>> from ember.explain import approximation_parameters
        >>> steps, alphas = approximation_parameters("riemann_trapezoid", 3)
        >>> steps, alphas
        ([0.16666666666666666, 0.3333333333333333, 0.16666666666666666], [0.0, 0.5, 1.0])
    """
    if method not in INTEGRATION_METHODS:
        raise ValueError(f"unknown integration method {method!r}; valid: "
                         f"{', '.join(INTEGRATION_METHODS)}")
    if not isinstance(n_steps, int) or isinstance(n_steps, bool) or n_steps < 1 or (
            method != "gausslegendre" and n_steps < 2):
        raise ValueError(f"n_steps must be an int >= {1 if method == 'gausslegendre' else 2} "
                         f"for {method}, got {n_steps!r}")
    n = n_steps
    if method == "gausslegendre":
        nodes, weights = _gauss_legendre(n)
        return [0.5 * w for w in weights], [0.5 * (1.0 + x) for x in nodes]
    steps = [1.0 / n] * n
    if method == "riemann_trapezoid":
        steps[0] = steps[-1] = 0.5 / n
        return steps, [i / (n - 1) for i in range(n)]
    offset = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return steps, [(i + offset) / n for i in range(n)]


def path_gradients(model, start: Tensor, end: Tensor, target, args: tuple, n_steps: int,
                   method: str, internal_batch_size, grad_fn=None) -> Tensor:
    """sum_i step_i * grad f(start + alpha_i (end - start)): the integral of the gradients
    along the straight path, the examples of every step in one batch (or in chunks of
    ``internal_batch_size`` rows). ``grad_fn(points, target, args)`` takes the gradients
    (default: with respect to the points as model inputs)."""
    steps, alphas = approximation_parameters(method, n_steps)
    grad_fn = grad_fn or (lambda pts, t, a: input_gradients(model, pts, t, a))
    n = start.shape[0]
    per_chunk = n_steps if internal_batch_size is None else max(1, int(internal_batch_size) // n)
    diff = (end - start).unsqueeze(0)
    ones = [1] * (start.dim())
    total = None
    for lo in range(0, n_steps, per_chunk):
        k = min(per_chunk, n_steps - lo)
        a = creation.tensor(alphas[lo:lo + k], dtype=start.dtype).reshape(k, *ones)
        w = creation.tensor(steps[lo:lo + k], dtype=start.dtype).reshape(k, *ones)
        points = (start.unsqueeze(0) + a * diff).reshape(k * n, *start.shape[1:])
        g = grad_fn(points, expand_target(target, k), expand_args(args, k, n))
        part = (g.reshape(k, *start.shape) * w).sum(0)
        total = part if total is None else total + part
    return total


def integrated_gradients(model, inputs: Tensor, target=None, baselines=None,
                         additional_forward_args=None, n_steps: int = 50,
                         method: str = "gausslegendre", internal_batch_size=None,
                         return_convergence_delta: bool = False):
    """Integrated gradients (Sundararajan et al., 2017): ``(x - x') * integral over a in
    [0, 1] of grad f(x' + a (x - x'))``, by quadrature.

    Args:
        model: a Module (or callable) mapping ``inputs`` to scores (N, C) or (N,).
        inputs: a floating-point batch (N, ...).
        target: class index (int), one per example (list), or None (the predicted class).
        baselines: the reference x': None (zeros), a number, or a Tensor broadcastable to
            ``inputs``.
        additional_forward_args: extra arguments passed to the model after ``inputs``.
        n_steps: the number of points on the path.
        method: ``"gausslegendre"`` (Captum's default) or ``"riemann_left"``,
            ``"riemann_right"``, ``"riemann_middle"``, ``"riemann_trapezoid"``.
        internal_batch_size: at most this many path points per forward pass (default: all
            ``n_steps * N`` at once).
        return_convergence_delta: also return the completeness error per example,
            ``sum(attributions) - (f(x) - f(x'))``.

    Shape:
        inputs (N, *); returns (N, *) and, with ``return_convergence_delta``, deltas (N,).

    Returns:
        The attributions, or ``(attributions, delta)``.

    Matches ``captum.attr.IntegratedGradients(model).attribute(inputs, baselines, target,
    additional_forward_args, n_steps, method, internal_batch_size,
    return_convergence_delta)``.

    Example:
        >>> import ember
        >>> from ember.explain import integrated_gradients
        >>> model = ember.nn.Sequential(ember.nn.Linear(3, 4), ember.nn.Tanh(),
        ...                             ember.nn.Linear(4, 2))
        >>> x = ember.randn(2, 3, dtype=ember.float64)
        >>> model.double()  # doctest: +ELLIPSIS
        Sequential(...)
        >>> attr, delta = integrated_gradients(model, x, target=0, n_steps=64,
        ...                                    return_convergence_delta=True)
        >>> attr.shape, bool(delta.abs().max() < 1e-6)
        ((2, 3), True)
    """
    x = check_inputs("integrated_gradients", inputs).detach()
    base = baseline_like("integrated_gradients", x, baselines)
    args = as_args(additional_forward_args)
    with model_state(model):
        t = resolve_target("integrated_gradients", model, x, target, args)
        total = path_gradients(model, base, x, t, args, n_steps, method, internal_batch_size)
        attr = total * (x - base)
        if not return_convergence_delta:
            return attr
        with no_grad():
            f_x = select(forward(model, x, args), t)
            f_base = select(forward(model, base, args), t)
    return attr, completeness_delta(attr, f_x - f_base)


def completeness_delta(attr: Tensor, difference: Tensor) -> Tensor:
    """``sum of each example's attributions - difference`` (N,)."""
    return attr.reshape(attr.shape[0], -1).sum(1) - difference.to(attr.dtype)
