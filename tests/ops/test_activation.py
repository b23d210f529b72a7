"""Activations and softmax against PyTorch: values, gradients, kinks, stability, 2nd order."""

import numpy as np
import pytest

import ember
import ember.ops as E
from tests.oracle import FLOATS, check, noncontig, rand, torch

F = torch.nn.functional
pytestmark = pytest.mark.usefixtures("kernels")  # relu has a compiled kernel

# name -> (ember fn, torch fn, kinks to keep random inputs away from)
ACTS = {
    "relu": (E.relu, F.relu, [0.0]),
    "relu6": (E.relu6, F.relu6, [0.0, 6.0]),
    "leaky_relu": (E.leaky_relu, F.leaky_relu, [0.0]),
    "leaky_relu_0.2": (lambda x: E.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2), [0.0]),
    "elu": (E.elu, F.elu, [0.0]),
    "elu_a2": (lambda x: E.elu(x, alpha=2.0), lambda x: F.elu(x, alpha=2.0), [0.0]),
    "selu": (E.selu, F.selu, [0.0]),
    "celu": (E.celu, F.celu, [0.0]),
    "celu_a05": (lambda x: E.celu(x, 0.5), lambda x: F.celu(x, 0.5), [0.0]),
    "gelu": (E.gelu, F.gelu, None),
    "gelu_tanh": (lambda x: E.gelu(x, approximate="tanh"),
                  lambda x: F.gelu(x, approximate="tanh"), None),
    "silu": (E.silu, F.silu, None),
    "mish": (E.mish, F.mish, None),
    "softplus": (E.softplus, F.softplus, None),
    "softplus_b2_t1": (lambda x: E.softplus(x, beta=2.0, threshold=1.0),
                       lambda x: F.softplus(x, beta=2.0, threshold=1.0), [0.5]),
    "sigmoid": (E.sigmoid, torch.sigmoid, None),
    "tanh": (E.tanh, torch.tanh, None),
    "hardtanh": (E.hardtanh, F.hardtanh, [-1.0, 1.0]),
    "hardtanh_0_1.5": (lambda x: E.hardtanh(x, 0.0, 1.5), lambda x: F.hardtanh(x, 0.0, 1.5),
                       [0.0, 1.5]),
    "hardsigmoid": (E.hardsigmoid, F.hardsigmoid, [-3.0, 3.0]),
    "hardswish": (E.hardswish, F.hardswish, [-3.0, 3.0]),
    "logsigmoid": (E.logsigmoid, F.logsigmoid, None),
    "softsign": (E.softsign, F.softsign, None),
    "tanhshrink": (E.tanhshrink, F.tanhshrink, None),
    "threshold": (lambda x: E.threshold(x, 0.3, -2.0), lambda x: F.threshold(x, 0.3, -2.0),
                  [0.3]),
    "hardshrink": (E.hardshrink, F.hardshrink, [-0.5, 0.5]),
    "softshrink": (E.softshrink, F.softshrink, [-0.5, 0.5]),
}

# PyTorch's hardsigmoid/hardswish kernels use float32 constants (1.0f / 6.0f) even in float64
LOOSE = {"hardsigmoid": dict(rtol=1e-7, atol=1e-9), "hardswish": dict(rtol=1e-7, atol=1e-9)}

SHAPES = [(), (1,), (0,), (7,), (3, 4), (2, 0, 3), (2, 3, 4)]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_oracle(name, shape, dtype):
    fe, ft, kinks = ACTS[name]
    x = rand(*shape, dtype=dtype, low=-7.0, high=7.0, away_from=kinks, gap=0.05)
    check(fe, ft, [x], **(LOOSE.get(name, {}) if dtype == np.float64 else {}))


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_noncontiguous(name):
    fe, ft, kinks = ACTS[name]
    a = noncontig(rand(4, 5, low=-5, high=5, away_from=kinks))
    assert not a.flags.c_contiguous
    x = ember.from_numpy(a).requires_grad_()
    xt = torch.from_numpy(a.copy()).requires_grad_()
    y, yt = fe(x), ft(xt)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-9, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(a.shape)
    y.backward(ember.tensor(g))
    yt.backward(torch.tensor(g))
    tol = LOOSE.get(name, dict(rtol=1e-9, atol=1e-12))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), **tol)


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(ACTS))
def test_activation_at_kinks_and_special_points(name):
    """Exact forward values and gradients at kinks, 0 and large values, vs PyTorch."""
    fe, ft, kinks = ACTS[name]
    pts = [0.0, -0.0, 1e-8, -1e-8, 1.0, -1.0, 20.0, -20.0, 30.0, -30.0, 100.0, -100.0]
    pts += list(kinks or [])
    for dtype in FLOATS:
        x = np.array(pts, dtype=dtype)
        tol = dict(atol=1e-6) if dtype == np.float32 else LOOSE.get(name, dict(atol=1e-12))
        check(fe, ft, [x], **tol)


def _grad_at(fn, values, dtype=np.float64):
    x = ember.tensor(np.array(values, dtype=dtype), requires_grad=True)
    fn(x).sum().backward()
    return x.grad.numpy()


def test_relu_gradient_at_zero_is_zero():
    np.testing.assert_array_equal(_grad_at(E.relu, [0.0, -0.0, 1.0, -1.0]), [0, 0, 1, 0])


def test_leaky_relu_gradient_at_zero_is_slope():
    g = _grad_at(lambda x: E.leaky_relu(x, 0.1), [0.0, 2.0, -2.0])
    np.testing.assert_allclose(g, [0.1, 1.0, 0.1])


def test_hardtanh_gradient_zero_at_bounds():
    g = _grad_at(E.hardtanh, [-1.0, 1.0, 0.999, -0.999, 2.0, -2.0])
    np.testing.assert_array_equal(g, [0, 0, 1, 1, 0, 0])
    g = _grad_at(E.relu6, [0.0, 6.0, 3.0])
    np.testing.assert_array_equal(g, [0, 0, 1])


def test_elu_gradient_at_zero_is_alpha():
    np.testing.assert_allclose(_grad_at(lambda x: E.elu(x, alpha=2.0), [0.0]), [2.0])
    np.testing.assert_allclose(_grad_at(lambda x: E.celu(x, alpha=2.0), [0.0]), [1.0])


def test_hardswish_gradient_at_bounds():
    np.testing.assert_allclose(_grad_at(E.hardswish, [-3.0, 3.0, 0.0]), [0.0, 1.0, 0.5])


def test_relu_keeps_integer_dtype_and_activations_floatify():
    x = ember.tensor([-2, 0, 3])
    assert E.relu(x).dtype == ember.int64
    assert E.gelu(x).dtype == ember.float32
    np.testing.assert_allclose(E.softmax(x, 0).numpy().sum(), 1.0, rtol=1e-6)


def test_inplace_argument_is_accepted():
    x = ember.tensor([-1.0, 2.0])
    y = E.relu(x, inplace=True)
    assert y is not x and x.numpy()[0] == -1.0


def test_numpy_fast_path():
    a = np.array([-1.0, 0.5], dtype=np.float32)
    out = E.gelu(a)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32


# ---------------------------------------------------------------------------- softmax family
SOFTMAX_CASES = [((), 0), ((), -1), ((1,), 0), ((5,), 0), ((5,), -1), ((3, 4), 0),
                 ((3, 4), 1), ((3, 4), -1), ((2, 3, 4), 1), ((2, 3, 4), -2), ((2, 3, 4), -3),
                 ((0, 4), 1), ((3, 0), 1), ((3, 0), 0), ((2, 1, 5), 1)]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim", SOFTMAX_CASES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
def test_softmax_family_oracle(name, shape, dim, dtype):
    fe, ft = getattr(E, name), getattr(F, name)
    x = rand(*shape, dtype=dtype, low=-5, high=5)
    check(lambda t: fe(t, dim), lambda t: ft(t, dim), [x])


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_dtype_argument(name):
    fe, ft = getattr(E, name), getattr(F, name)
    x = rand(3, 4, dtype=np.float32)
    out = check(lambda t: fe(t, 1, dtype=ember.float64), lambda t: ft(t, 1, dtype=torch.float64),
                [x])
    assert out[0].dtype == ember.float64


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_noncontiguous_and_method(name):
    a = noncontig(rand(4, 6))
    x = ember.from_numpy(a).requires_grad_()
    xt = torch.from_numpy(a.copy()).requires_grad_()
    y, yt = getattr(x, name)(0), getattr(xt, name)(0)
    np.testing.assert_allclose(y.detach().numpy(), yt.detach().numpy(), rtol=1e-12)
    g = rand(4, 6, seed=3)
    y.backward(ember.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_softmax_implicit_dim_legacy_rule():
    x = rand(3, 4)
    np.testing.assert_allclose(E.softmax(x).sum(axis=1), 1.0)
    np.testing.assert_allclose(E.softmax(x[0]).sum(), 1.0)


# ---------------------------------------------------------------------------- stability
BIG = [1e4, -1e4, 1e30, -1e30]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmin"])
def test_softmax_stable_at_extremes(name, dtype):
    fe, ft = getattr(E, name), getattr(F, name)
    x = np.array([[1e4, -1e4, 0.0, 1.0], [1e30, -1e30, 1e30, 0.0], [-1e4, -1e4 + 1, -1e4, -1e4]],
                 dtype=dtype)
    out = check(lambda t: fe(t, -1), lambda t: ft(t, -1), [x])
    assert np.isfinite(out[0].detach().numpy()).all() if name != "log_softmax" else True
    assert not np.isnan(out[0].detach().numpy()).any()


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["softplus", "logsigmoid", "sigmoid", "silu", "mish", "gelu",
                                  "elu", "selu", "tanhshrink", "softsign"])
def test_elementwise_stable_at_extremes(name, dtype):
    fe, ft, _ = ACTS[name]
    x = np.array(BIG + [0.0, 50.0, -50.0, 89.0, -89.0, 710.0, -710.0], dtype=dtype)
    out = check(fe, ft, [x], atol=1e-6)
    assert np.isfinite(out[0].detach().numpy()).all()
    xe = ember.tensor(x, requires_grad=True)
    fe(xe).sum().backward()
    assert np.isfinite(xe.grad.numpy()).all()


def test_softmax_all_neg_inf_row_is_nan_like_torch():
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    np.testing.assert_array_equal(np.isnan(E.softmax(x, 1)),
                                  np.isnan(F.softmax(torch.tensor(x), 1).numpy()))
    np.testing.assert_allclose(E.softmax(x, 1)[1], [1.0, 0.0])


# ---------------------------------------------------------------------------- gradcheck, 2nd order
@pytest.mark.parametrize("fn", [
    lambda t: E.softmax(t, 1), lambda t: E.softmax(t, 0), lambda t: E.log_softmax(t, -1),
    lambda t: E.gelu(t), lambda t: E.gelu(t, approximate="tanh"), lambda t: E.mish(t),
    lambda t: E.softplus(t, beta=0.5), lambda t: E.elu(t, 1.5), lambda t: E.silu(t),
], ids=["softmax1", "softmax0", "log_softmax", "gelu", "gelu_tanh", "mish", "softplus", "elu",
        "silu"])
def test_gradcheck_and_gradgradcheck(fn):
    x = ember.tensor(rand(3, 4, low=-3, high=3, away_from=0.0, seed=5), requires_grad=True)
    assert ember.autograd.gradcheck(fn, (x,))
    assert ember.autograd.gradgradcheck(fn, (x,))


SECOND = {
    "softmax": (lambda t: E.softmax(t, -1), lambda t: F.softmax(t, -1)),
    "log_softmax": (lambda t: E.log_softmax(t, 0), lambda t: F.log_softmax(t, 0)),
    "softmin": (lambda t: E.softmin(t, 1), lambda t: F.softmin(t, 1)),
}
# (torch has no double backward for hardsigmoid)
SECOND.update({k: v[:2] for k, v in ACTS.items() if k != "hardsigmoid"})


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(SECOND))
def test_second_order_vs_torch(name):
    fe, ft = SECOND[name]
    kinks = ACTS[name][2] if name in ACTS else None
    a = rand(3, 5, low=-5, high=5, away_from=kinks, seed=11)
    v = rand(3, 5, seed=12)
    w = rand(3, 5, seed=13)
    x = ember.tensor(a, requires_grad=True)
    xt = torch.tensor(a, requires_grad=True)
    (ge,) = ember.autograd.grad((fe(x) * ember.tensor(v)).sum(), x, create_graph=True)
    (gt,) = torch.autograd.grad((ft(xt) * torch.tensor(v)).sum(), xt, create_graph=True)
    tol = LOOSE.get(name, dict(rtol=1e-9, atol=1e-12))
    np.testing.assert_allclose(ge.detach().numpy(), gt.detach().numpy(), **tol)
    if not ge.requires_grad:  # piecewise-linear: the gradient does not depend on x
        he = ember.zeros(3, 5, dtype=ember.float64)
    else:
        (he,) = ember.autograd.grad((ge * ember.tensor(w)).sum(), x, allow_unused=True,
                                    materialize_grads=True)
    if gt.requires_grad:
        (ht,) = torch.autograd.grad((gt * torch.tensor(w)).sum(), xt, allow_unused=True,
                                    materialize_grads=True)
    else:
        ht = torch.zeros_like(xt)
    np.testing.assert_allclose(he.numpy(), ht.numpy(), rtol=1e-8, atol=1e-11)


# ---------------------------------------------------------------------------- errors
def test_errors():
    x = ember.randn(3, 4)
    with pytest.raises(IndexError, match=r"softmax: dimension 2 out of range"):
        E.softmax(x, 2)
    with pytest.raises(IndexError, match=r"log_softmax: dimension -3 out of range"):
        E.log_softmax(x, -3)
    with pytest.raises(ValueError, match=r"gelu: approximate must be 'none' or 'tanh'"):
        E.gelu(x, approximate="fast")
    with pytest.raises(ValueError, match=r"hardtanh: min_val \(2\) cannot be greater"):
        E.hardtanh(x, 2, 1)
    with pytest.raises(RuntimeError, match=r"glu: halving dimension must be even"):
        E.glu(ember.randn(3, 5))
    with pytest.raises(TypeError, match=r"gelu: expected a tensor, got a list"):
        E.gelu([1.0, 2.0])


@pytest.mark.oracle
@pytest.mark.parametrize("dim", [0, -1])
def test_glu(dim):
    check(lambda t: E.glu(t, dim), lambda t: F.glu(t, dim), [rand(4, 6)])
