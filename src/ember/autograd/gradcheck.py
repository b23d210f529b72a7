"""``ember.autograd.gradcheck``: analytic gradients against central finite differences.

Matches: ``torch.autograd.gradcheck`` (``eps``, ``atol``, ``rtol``, ``raise_exception``).
Inputs should be float64 for the comparison to be meaningful.
"""

from __future__ import annotations

import numpy as np

from .functional import grad
from .grad_mode import enable_grad, no_grad
from .tensor import Tensor


def _outputs(fn, inputs) -> list:
    out = fn(*inputs)
    return list(out) if isinstance(out, (tuple, list)) else [out]


def numerical_jacobian(fn, inputs, eps: float = 1e-6) -> list:
    """J[k][i] = d(output k) / d(input i), each of shape (output.numel(), input.numel())."""
    diff = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    with no_grad():
        outs = _outputs(fn, inputs)
        jac = [[np.zeros((o.numel(), inputs[i].numel())) for i in diff] for o in outs]
        for col, i in enumerate(diff):
            flat = inputs[i]._data.reshape(-1)  # a view: perturb in place, then restore
            if not np.shares_memory(flat, inputs[i]._data):
                raise ValueError("gradcheck: inputs must be contiguous tensors")
            for j in range(flat.size):
                orig = flat[j]
                flat[j] = orig + eps
                plus = [o._data.astype(np.float64).ravel().copy() for o in _outputs(fn, inputs)]
                flat[j] = orig - eps
                minus = [o._data.astype(np.float64).ravel().copy() for o in _outputs(fn, inputs)]
                flat[j] = orig
                for k in range(len(outs)):
                    jac[k][col][:, j] = (plus[k] - minus[k]) / (2 * eps)
    return jac


def analytical_jacobian(fn, inputs, create_graph: bool = False) -> list:
    diff = [inputs[i] for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    outs = _outputs(fn, inputs)
    jac = [[np.zeros((o.numel(), t.numel())) for t in diff] for o in outs]
    for k, o in enumerate(outs):
        if not o.requires_grad:  # does not depend on any input: its Jacobian is zero
            continue
        for r in range(o.numel()):
            seed = np.zeros(o.numel(), dtype=o._data.dtype)
            seed[r] = 1.0
            grads = grad([o], diff, [Tensor._make(seed.reshape(o.shape))], retain_graph=True,
                         allow_unused=True, create_graph=create_graph)
            for c, g in enumerate(grads):
                if g is not None:
                    jac[k][c][r, :] = g._data.astype(np.float64).ravel()
    return jac


def gradcheck(fn, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, **_ignored) -> bool:
    """Check ``fn``'s backward against finite differences; True if they agree.

    Example:
        >>> import ember
        >>> x = ember.randn(3, dtype=ember.float64, requires_grad=True)
        >>> ember.autograd.gradcheck(lambda t: (t.sin() * t).sum(), (x,))
        True
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    for i, t in enumerate(inputs):
        if isinstance(t, Tensor) and t.requires_grad and t._data.dtype != np.float64:
            import warnings

            warnings.warn(f"gradcheck: input {i} is {t.dtype}, not float64: finite differences "
                          f"will be inaccurate", UserWarning, stacklevel=2)
    num = numerical_jacobian(fn, inputs, eps)
    ana = analytical_jacobian(fn, inputs)
    for k, (nrow, arow) in enumerate(zip(num, ana)):
        for c, (n, a) in enumerate(zip(nrow, arow)):
            if not np.allclose(a, n, atol=atol, rtol=rtol):
                worst = tuple(int(w) for w in np.unravel_index(np.argmax(np.abs(a - n)),
                                                                a.shape))
                msg = (f"gradcheck: Jacobian mismatch for output {k} with respect to "
                       f"differentiable input {c}: analytical {a[worst]:.6g} vs numerical "
                       f"{n[worst]:.6g} at (output element, input element) {worst}\n"
                       f"analytical:\n{a}\nnumerical:\n{n}")
                if raise_exception:
                    raise RuntimeError(msg)
                return False
    return True


def gradgradcheck(fn, inputs, *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True) -> bool:
    """Check second derivatives: the gradient of (sum of outputs * fixed weights) via gradcheck."""
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    rng = np.random.default_rng(0)
    outs = _outputs(fn, inputs)
    weights = [Tensor._make(rng.standard_normal(o.shape)) for o in outs]

    @enable_grad()
    def first_grads(*xs):  # gradcheck runs it under no_grad for finite differences
        os_ = _outputs(fn, xs)
        total = sum((o * w).sum() for o, w in zip(os_, weights))
        xdiff = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        return grad(total, xdiff, create_graph=True, allow_unused=True,
                    materialize_grads=True)

    return gradcheck(first_grads, inputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception)
