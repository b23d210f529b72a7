"""The module oracle: build a layer in PyTorch and in ember, share weights, compare everything.

``check_module(make_ember, make_torch, inputs)`` creates the PyTorch twin, loads its state dict
(as NumPy arrays) into the ember module, then compares outputs, input gradients and every
parameter gradient for the same random upstream gradient, in train and eval mode, and checks
that ember's state dict has PyTorch's keys and shapes.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

TOL = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}


def _flat(out):
    if isinstance(out, (tuple, list)):
        res = []
        for o in out:
            res.extend(_flat(o))
        return res
    return [out] if out is not None else []


def _np(t):
    if isinstance(t, ember.Tensor):
        return t.detach().numpy()
    return t.detach().cpu().numpy()


def load_from_torch(e_mod, t_mod):
    """Copy the PyTorch module's state into the ember module (through NumPy arrays)."""
    sd = {k: v.detach().cpu().numpy() for k, v in t_mod.state_dict().items()}
    e_keys = {k: tuple(v.shape) for k, v in e_mod.state_dict().items()}
    t_keys = {k: tuple(v.shape) for k, v in sd.items()}
    assert e_keys == t_keys, f"state dict keys/shapes differ:\nember {e_keys}\ntorch {t_keys}"
    e_mod.load_state_dict(sd)


def check_module(make_ember, make_torch, inputs, *, dtype=np.float32, modes=("train", "eval"),
                 grad_inputs=True, rtol=None, atol=None, forward_kwargs=None, seed=0,
                 compare_outputs=None):
    """Compare an ember module and its PyTorch twin on ``inputs`` (NumPy arrays).

    ``make_ember()`` / ``make_torch()`` build the modules (same constructor arguments).
    ``compare_outputs``: indices of outputs to compare (default all).
    Returns the (ember, torch) modules.
    """
    torch.manual_seed(seed)
    t_mod = make_torch()
    e_mod = make_ember()
    if dtype == np.float64:
        t_mod = t_mod.double()
        e_mod = e_mod.double()
    load_from_torch(e_mod, t_mod)
    tol = dict(TOL[dtype])
    if rtol is not None:
        tol["rtol"] = rtol
    if atol is not None:
        tol["atol"] = atol
    kwargs = forward_kwargs or {}
    for mode in modes:
        t_mod.train(mode == "train")
        e_mod.train(mode == "train")
        e_in, t_in = [], []
        for a in inputs:
            a = np.asarray(a)
            if a.dtype.kind == "f":
                a = a.astype(dtype)
            need = grad_inputs and a.dtype.kind == "f"
            e_in.append(ember.tensor(a, requires_grad=need))
            t_in.append(torch.tensor(a, requires_grad=need))
        for p in t_mod.parameters():
            p.grad = None
        e_mod.zero_grad()
        e_out = _flat(e_mod(*e_in, **kwargs))
        t_out = _flat(t_mod(*t_in, **kwargs))
        assert len(e_out) == len(t_out), f"{len(e_out)} outputs vs torch's {len(t_out)}"
        idx = range(len(t_out)) if compare_outputs is None else compare_outputs
        rng = np.random.default_rng(seed)
        e_roots, t_roots, e_g, t_g = [], [], [], []
        for k in idx:
            ev, tv = _np(e_out[k]), _np(t_out[k])
            assert ev.shape == tv.shape, f"[{mode}] output {k}: {ev.shape} vs torch {tv.shape}"
            np.testing.assert_allclose(ev, tv, err_msg=f"[{mode}] output {k}", **tol)
            if t_out[k].requires_grad:
                g = rng.standard_normal(tv.shape).astype(tv.dtype)
                e_roots.append(e_out[k])
                t_roots.append(t_out[k])
                e_g.append(ember.tensor(g))
                t_g.append(torch.tensor(g))
        if not t_roots:
            continue
        ember.autograd.backward(e_roots, e_g)
        torch.autograd.backward(t_roots, t_g)
        for i, (e, t) in enumerate(zip(e_in, t_in)):
            if t.grad is not None:
                assert e.grad is not None, f"[{mode}] input {i}: no ember gradient"
                np.testing.assert_allclose(_np(e.grad), _np(t.grad),
                                           err_msg=f"[{mode}] grad of input {i}", **tol)
        t_params = dict(t_mod.named_parameters())
        for name, p in e_mod.named_parameters():
            tg = t_params[name].grad
            if tg is None:
                assert p.grad is None or not np.any(_np(p.grad)), f"{name}: unexpected grad"
                continue
            assert p.grad is not None, f"[{mode}] parameter {name}: no ember gradient"
            np.testing.assert_allclose(_np(p.grad), _np(tg),
                                       err_msg=f"[{mode}] grad of parameter {name}", **tol)
        t_bufs = dict(t_mod.named_buffers())
        for name, b in e_mod.named_buffers():
            if name in t_bufs and b.dtype.is_floating_point:
                np.testing.assert_allclose(_np(b), _np(t_bufs[name]),
                                           err_msg=f"[{mode}] buffer {name}", **tol)
    return e_mod, t_mod
