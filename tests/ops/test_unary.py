"""Oracle tests for ember.ops.unary: every elementwise math function, values and gradients."""

import math

import numpy as np
import pytest

import ember
from ember.ops.unary import erf_numpy
from tests.oracle import FLOATS, check, noncontig, rand, torch

pytestmark = pytest.mark.oracle

SHAPES = [(3, 4), (), (0,), (2, 1, 3)]

# name -> (low, high, kinks to stay away from)
DOMAINS = {
    "exp": (-3, 3, None), "expm1": (-3, 3, None), "log": (0.1, 4, None),
    "log1p": (-0.8, 3, None), "log2": (0.1, 4, None), "log10": (0.1, 4, None),
    "sqrt": (0.1, 4, None), "rsqrt": (0.1, 4, None), "sin": (-4, 4, None),
    "cos": (-4, 4, None), "tan": (-1.2, 1.2, None), "tanh": (-3, 3, None),
    "sigmoid": (-6, 6, None), "abs": (-2, 2, 0.0), "reciprocal": (-2, 2, 0.0),
    "erf": (-3, 3, None), "square": (-2, 2, None), "neg": (-2, 2, None),
    "sign": (-2, 2, 0.0), "erfc": (-3, 3, None),
}
NOGRAD = {"sign"}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(DOMAINS))
def test_unary(name, shape, dtype):
    low, high, kink = DOMAINS[name]
    x = rand(*shape, dtype=dtype, low=low, high=high, away_from=kink, gap=0.1)
    fe, ft = getattr(ember, name), getattr(torch, name)
    # torch marks sign's output as requiring grad (with a zero gradient); ember records no graph
    check(fe, ft, [x], grad=[] if name in NOGRAD else None)
    if name not in NOGRAD:
        check(lambda t: getattr(t, name)() if hasattr(ember.Tensor, name) else fe(t),
              lambda t: getattr(t, name)() if hasattr(ember.Tensor, name) else ft(t), [x])


@pytest.mark.parametrize("name", list(DOMAINS))
def test_unary_noncontig(name):
    low, high, kink = DOMAINS[name]
    x = rand(4, 3, low=low, high=high, away_from=kink, gap=0.1)
    g = [] if name in NOGRAD else None
    check(getattr(ember, name), getattr(torch, name), [noncontig(x)], grad=g)
    check(getattr(ember, name), getattr(torch, name), [rand(6, 3, low=low, high=high,
                                                          away_from=kink, gap=0.1)[1::2]], grad=g)


@pytest.mark.parametrize("name", sorted(set(DOMAINS) - {"neg", "abs", "sign", "square"}))
@pytest.mark.parametrize("idtype", [np.int64, np.int32, np.bool_])
def test_int_inputs_give_float32(name, idtype):
    x = np.array([[1, 2, 3], [1, 4, 2]]).astype(idtype)
    out = check(getattr(ember, name), getattr(torch, name), [x], rtol=1e-5)
    assert out[0].dtype == ember.float32


@pytest.mark.parametrize("name", ["neg", "abs", "sign", "square"])
def test_int_inputs_keep_dtype(name):
    x = np.array([[-1, 2, 0], [3, -4, 2]], np.int64)
    check(getattr(ember, name), getattr(torch, name), [x])
    if name in ("abs", "sign"):
        check(getattr(ember, name), getattr(torch, name), [x.astype(np.int32)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_kinks(dtype):
    x = np.array([-1.5, 0.0, 0.0, 2.0], dtype=dtype)
    check(ember.abs, torch.abs, [x])  # d|x| at 0 is 0
    check(ember.sign, torch.sign, [x], grad=[])
    assert ember.sign(ember.tensor(x, requires_grad=True)).grad_fn is None
    check(ember.sqrt, torch.sqrt, [np.array([0.0, 1.0, 4.0], dtype=dtype)])  # inf grad at 0
    check(ember.log, torch.log, [np.array([0.0, -1.0, 1.0], dtype=dtype)])  # -inf, nan


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["floor", "ceil", "round", "trunc"])
def test_rounding(name, dtype):
    x = rand(3, 5, dtype=dtype, low=-4, high=4)
    x[0, :4] = [0.5, 1.5, -0.5, -2.5]  # halves: round to even
    check(getattr(ember, name), getattr(torch, name), [x], grad=[])
    e = ember.tensor(x, requires_grad=True)
    out = getattr(ember, name)(e)
    assert out.grad_fn is None and not out.requires_grad
    check(getattr(ember, name), getattr(torch, name), [np.array([1, -2, 3], np.int64)])


def test_round_decimals():
    x = rand(4, 3, low=-50, high=50)
    for d in (0, 1, 2, -1):
        check(lambda t, d=d: ember.round(t, decimals=d),
              lambda t, d=d: torch.round(t, decimals=d), [x], grad=[])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", ["isnan", "isinf", "isfinite", "isposinf", "isneginf"])
def test_float_tests(name, dtype):
    x = np.array([[0.0, np.nan, np.inf], [-np.inf, -1.0, 3.0]], dtype=dtype)
    out = check(getattr(ember, name), getattr(torch, name), [x], grad=[])
    assert out[0].dtype == ember.bool
    check(getattr(ember, name), getattr(torch, name), [np.array([1, 2], np.int64)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_nan_to_num(dtype):
    x = np.array([[0.5, np.nan, np.inf], [-np.inf, -1.0, 3.0]], dtype=dtype)
    check(ember.nan_to_num, torch.nan_to_num, [x])
    check(lambda t: ember.nan_to_num(t, nan=1.0, posinf=9.0, neginf=-9.0),
          lambda t: torch.nan_to_num(t, nan=1.0, posinf=9.0, neginf=-9.0), [x])
    check(lambda t: t.nan_to_num(2.0), lambda t: t.nan_to_num(2.0), [x])


def test_special_values_silent():
    """inf/nan results come without NumPy warnings (as PyTorch gives them silently)."""
    x = np.array([0.0, -1.0, 1e30, -1e30, np.inf, np.nan], np.float32)
    for name in ("exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt",
                 "reciprocal", "sin", "cos", "tan", "tanh", "sigmoid", "erf", "square"):
        check(getattr(ember, name), getattr(torch, name), [x], grad=[], rtol=1e-5)


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_stable(dtype):
    x = np.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], dtype=dtype)
    out = check(ember.sigmoid, torch.sigmoid, [x])
    assert np.all(np.isfinite(out[0].detach().numpy()))
    check(ember.tanh, torch.tanh, [x])
    check(ember.exp, torch.exp, [np.array([-1e4, 1e4], dtype)], grad=[])


def test_erf_numpy_matches_math_erf():
    x = np.concatenate([np.linspace(-6, 6, 2401), [0.0, -0.0, 1.5811, 1.5812, 1e-8, -1e-300]])
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf_numpy(x), want, rtol=0, atol=1e-14)
    # beyond 6 it saturates cleanly, no warnings
    big = np.array([-30.0, 7.0, 30.0, np.inf, -np.inf])
    np.testing.assert_allclose(erf_numpy(big), np.sign(big), atol=0)
    assert np.isnan(erf_numpy(np.array([np.nan])))[0]
    assert erf_numpy(np.array([0.3], np.float32)).dtype == np.float32
    assert erf_numpy(np.float64(0.3)).shape == ()


def test_erf_numpy_as_fallback(monkeypatch):
    import ember.ops.unary as un

    monkeypatch.setattr(un, "_SCIPY_ERF", False)
    x = rand(5, low=-3, high=3)
    check(ember.erf, torch.erf, [x])
    check(ember.erf, torch.erf, [x.astype(np.float32)])


def test_neg_operator_and_abs_operator():
    x = rand(2, 3, away_from=0.0)
    check(lambda t: -t, lambda t: -t, [x])
    check(lambda t: abs(t), lambda t: abs(t), [x])
    check(lambda t: +t, lambda t: +t, [x])
