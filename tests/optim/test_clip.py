"""Gradient clipping and parameter vectors against PyTorch."""

from __future__ import annotations

import math

import numpy as np
import pytest

import ember
from ember.nn.utils import (
    clip_grad_norm_,
    clip_grad_value_,
    get_total_norm,
    parameters_to_vector,
    vector_to_parameters,
)

from .helpers import torch

SHAPES = [(4, 3), (5,), (2, 2, 2)]


def _pairs(dtype=np.float32, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    grads = [(rng.standard_normal(s) * scale).astype(dtype) for s in SHAPES]
    ep, tp = [], []
    for g in grads:
        e = ember.nn.Parameter(ember.zeros(*g.shape, dtype=ember.float64 if dtype == np.float64
                                           else ember.float32))
        e.grad = ember.from_numpy(g.copy())
        t = torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype))
        t.grad = torch.from_numpy(g.copy())
        ep.append(e)
        tp.append(t)
    return ep, tp


@pytest.mark.oracle
@pytest.mark.parametrize("norm_type", [1, 2.0, 3, math.inf, "inf"])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ep, tp = _pairs()
    e_total = clip_grad_norm_(ep, max_norm, norm_type=norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(tp, max_norm, norm_type=norm_type)
    assert isinstance(e_total, ember.Tensor) and e_total.shape == ()
    assert e_total.dtype == ember.float32
    np.testing.assert_allclose(e_total.item(), t_total.item(), rtol=1e-6)
    for e, t in zip(ep, tp):
        np.testing.assert_allclose(e.grad.numpy(), t.grad.numpy(), rtol=1e-6, atol=1e-7)
    if max_norm < 1:
        after = get_total_norm([p.grad for p in ep], norm_type).item()
        assert after == pytest.approx(max_norm, rel=1e-4)


@pytest.mark.oracle
def test_clip_grad_norm_float64_and_single_tensor():
    ep, tp = _pairs(np.float64)
    e_total = clip_grad_norm_(ep[0], 0.1)
    t_total = torch.nn.utils.clip_grad_norm_(tp[0], 0.1)
    assert e_total.dtype == ember.float64
    np.testing.assert_allclose(e_total.item(), t_total.item(), rtol=1e-12)
    np.testing.assert_allclose(ep[0].grad.numpy(), tp[0].grad.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(ep[1].grad.numpy(), tp[1].grad.numpy())  # untouched


def test_clip_grad_norm_skips_missing_grads_and_handles_none():
    a = ember.nn.Parameter(ember.ones(3))
    assert clip_grad_norm_([a], 1.0).item() == 0.0
    b = ember.nn.Parameter(ember.ones(4))
    b.grad = ember.full((4,), 2.0)
    total = clip_grad_norm_([a, b], 1.0)
    assert total.item() == pytest.approx(4.0)
    np.testing.assert_allclose(b.grad.numpy(), [0.5] * 4, rtol=1e-5)


def test_clip_grad_norm_nonfinite():
    a = ember.nn.Parameter(ember.ones(2))
    a.grad = ember.tensor([1.0, float("nan")])
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    assert math.isnan(clip_grad_norm_([a], 1.0).item())


@pytest.mark.oracle
def test_clip_grad_value_matches_torch():
    ep, tp = _pairs(scale=2.0)
    assert clip_grad_value_(ep, 0.7) is None
    torch.nn.utils.clip_grad_value_(tp, 0.7)
    for e, t in zip(ep, tp):
        np.testing.assert_array_equal(e.grad.numpy(), t.grad.numpy())
        assert np.abs(e.grad.numpy()).max() <= 0.7


@pytest.mark.oracle
def test_parameters_to_vector_matches_torch_and_round_trips():
    net = ember.nn.Sequential(ember.nn.Linear(3, 4), ember.nn.Linear(4, 2))
    vec = parameters_to_vector(net.parameters())
    assert vec.shape == (sum(p.numel() for p in net.parameters()),)
    tvec = torch.nn.utils.parameters_to_vector(
        [torch.from_numpy(p.detach().numpy().copy()) for p in net.parameters()])
    np.testing.assert_array_equal(vec.detach().numpy(), tvec.numpy())
    new = ember.arange(vec.shape[0], dtype=ember.float32)
    vector_to_parameters(new, net.parameters())
    np.testing.assert_array_equal(parameters_to_vector(net.parameters()).detach().numpy(),
                                  new.numpy())
    w = net[0].weight
    assert w.shape == (4, 3) and w.requires_grad
    assert w.detach().numpy()[0, 1] == 1.0


def test_parameters_to_vector_is_differentiable():
    a = ember.nn.Parameter(ember.ones(2, 2))
    b = ember.nn.Parameter(ember.ones(3))
    (parameters_to_vector([a, b]) * ember.arange(7, dtype=ember.float32)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[0, 1], [2, 3]])
    np.testing.assert_array_equal(b.grad.numpy(), [4, 5, 6])


def test_vector_to_parameters_errors():
    a = ember.nn.Parameter(ember.ones(2))
    with pytest.raises(TypeError, match="Tensor"):
        vector_to_parameters([1.0, 2.0], [a])
    with pytest.raises(ValueError, match="3 elements but the parameters have 2"):
        vector_to_parameters(ember.ones(3), [a])
