"""The oracle harness: run the same function in ember and in PyTorch and compare.

``check(fn_ember, fn_torch, arrays, ...)`` builds tensors from the same NumPy arrays in both
frameworks, compares the forward outputs, then backpropagates the same random upstream gradient
and compares every input's gradient. Use it for every op: one line per case.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}


def _to_np(x):
    if isinstance(x, ember.Tensor):
        return x.detach().numpy()
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _flatten(out):
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(_flatten(o))
        return res
    return [out]


def check(fn_ember, fn_torch, arrays, *, grad=None, rtol=None, atol=None, grad_rtol=None,
          grad_atol=None, seed=0, check_dtype=True):
    """Compare forward values and gradients of ``fn_ember`` and ``fn_torch`` on ``arrays``.

    Args:
        fn_ember / fn_torch: take tensors (one per array) and return a tensor or a tuple.
        arrays: NumPy arrays; floating ones require grad unless ``grad`` says otherwise.
        grad: indices of the inputs whose gradients to compare (default: every float input).
    Returns:
        The ember outputs (to allow extra assertions).
    """
    arrays = [np.asarray(a) for a in arrays]
    if grad is None:
        grad = [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    e_in = [ember.from_numpy(_same_layout(a)).requires_grad_(i in grad)
            for i, a in enumerate(arrays)]
    t_in = [torch.from_numpy(_same_layout(a)).requires_grad_(i in grad)
            for i, a in enumerate(arrays)]
    e_out = _flatten(fn_ember(*e_in))
    t_out = _flatten(fn_torch(*t_in))
    assert len(e_out) == len(t_out), f"{len(e_out)} outputs vs torch's {len(t_out)}"
    fdt = next((a.dtype.type for a in arrays if a.dtype.kind == "f"), np.float32)
    tol = dict(TOL.get(fdt, TOL[np.float32]))
    if rtol is not None:
        tol["rtol"] = rtol
    if atol is not None:
        tol["atol"] = atol
    for k, (e, t) in enumerate(zip(e_out, t_out)):
        ev, tv = _to_np(e), _to_np(t)
        assert ev.shape == tv.shape, f"output {k}: shape {ev.shape} vs torch {tv.shape}"
        if check_dtype:
            assert ev.dtype == tv.dtype, f"output {k}: dtype {ev.dtype} vs torch {tv.dtype}"
        np.testing.assert_allclose(ev.astype(np.float64) if ev.dtype != bool else ev,
                                   tv.astype(np.float64) if tv.dtype != bool else tv,
                                   err_msg=f"forward output {k}", equal_nan=True, **tol)
    if not grad:
        return e_out
    rng = np.random.default_rng(seed)
    e_roots, t_roots, e_g, t_g = [], [], [], []
    for e, t in zip(e_out, t_out):
        if isinstance(t, torch.Tensor) and t.requires_grad:
            assert e.requires_grad, "ember output does not require grad but torch's does"
            g = rng.standard_normal(t.shape).astype(_to_np(t).dtype)
            e_roots.append(e)
            t_roots.append(t)
            e_g.append(ember.tensor(g))
            t_g.append(torch.tensor(g))
    if not t_roots:
        return e_out
    ember.autograd.backward(e_roots, e_g)
    torch.autograd.backward(t_roots, t_g)
    gtol = dict(tol)
    if grad_rtol is not None:
        gtol["rtol"] = grad_rtol
    if grad_atol is not None:
        gtol["atol"] = grad_atol
    for i in grad:
        tg = t_in[i].grad
        eg = e_in[i].grad
        if tg is None:
            assert eg is None or not np.any(eg.numpy()), f"input {i}: ember has a gradient"
            continue
        assert eg is not None, f"input {i}: ember computed no gradient"
        assert eg.shape == tuple(tg.shape), f"input {i}: grad shape {eg.shape} vs {tg.shape}"
        assert eg.dtype.np == tg.numpy().dtype, f"input {i}: grad dtype {eg.dtype}"
        np.testing.assert_allclose(eg.numpy().astype(np.float64),
                                   tg.numpy().astype(np.float64),
                                   err_msg=f"gradient of input {i}", **gtol)
    return e_out


def _same_layout(a: np.ndarray) -> np.ndarray:
    """A private copy of ``a``, non-contiguous again if ``a`` was (see :func:`noncontig`)."""
    if a.flags.c_contiguous or a.ndim == 0:
        return a.copy()
    return noncontig(np.ascontiguousarray(a))


def rand(*shape, dtype=np.float64, low=-2.0, high=2.0, seed=None, away_from=None, gap=0.05):
    """Random array; ``away_from`` keeps values at least ``gap`` from given kinks."""
    rng = np.random.default_rng(seed if seed is not None else hash(shape) % 2**32)
    a = rng.uniform(low, high, size=shape)
    if away_from is not None:
        for k in np.atleast_1d(away_from):
            close = np.abs(a - k) < gap
            a[close] = k + np.where(a[close] >= k, gap, -gap) * 2
    return a.astype(dtype)


def noncontig(a: np.ndarray) -> np.ndarray:
    """A non-contiguous array with the same values (a transposed copy, transposed back)."""
    if a.ndim == 0:
        return a.copy()
    if a.ndim < 2 or a.shape[-1] < 2 or a.shape[-2] < 2:
        b = np.zeros(a.shape[:-1] + (a.shape[-1] * 2,), a.dtype)
        b[..., ::2] = a
        return b[..., ::2]
    return np.ascontiguousarray(a.swapaxes(-1, -2)).swapaxes(-1, -2)


FLOATS = [np.float32, np.float64]
