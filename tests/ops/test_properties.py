"""Property tests (hypothesis) for broadcasting arithmetic and autograd invariants, plus
float64 gradcheck and second-order gradients against PyTorch."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ember
from tests.oracle import rand, torch

SETTINGS = settings(max_examples=40, deadline=None)


@st.composite
def broadcast_pair(draw):
    """Two shapes that broadcast together (size-1, missing and size-0 dims included)."""
    nd = draw(st.integers(0, 3))
    base = draw(st.lists(st.integers(0, 3), min_size=nd, max_size=nd))
    shapes = []
    for _ in range(2):
        drop = draw(st.integers(0, nd))
        s = [1 if draw(st.booleans()) else d for d in base[drop:]]
        shapes.append(tuple(s))
    return shapes


def _sum_to(g, shape):
    """Independent reference: sum g over the dims that broadcasting added or stretched."""
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    for i, s in enumerate(shape):
        if s == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g


OPS = {
    "add": (lambda a, b: a + b, np.add, lambda a, b, g: (g, g)),
    "sub": (lambda a, b: a - b, np.subtract, lambda a, b, g: (g, -g)),
    "mul": (lambda a, b: a * b, np.multiply, lambda a, b, g: (g * b, g * a)),
    "div": (lambda a, b: a / b, np.divide, lambda a, b, g: (g / b, -g * a / b ** 2)),
}


@SETTINGS
@given(shapes=broadcast_pair(), op=st.sampled_from(sorted(OPS)), seed=st.integers(0, 2**16))
def test_broadcast_arith_property(shapes, op, seed):
    fe, fnp, fgrad = OPS[op]
    sa, sb = shapes
    rng = np.random.default_rng(seed)
    a = rng.uniform(-2, 2, sa)
    b = rng.uniform(0.5, 2, sb) * rng.choice([-1, 1], sb)
    ea, eb = ember.tensor(a, requires_grad=True), ember.tensor(b, requires_grad=True)
    out = fe(ea, eb)
    want = fnp(a, b)
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(want.shape)
    out.backward(ember.tensor(g), retain_graph=True)
    ga, gb = fgrad(*np.broadcast_arrays(a, b), g)
    assert ea.grad.shape == sa and eb.grad.shape == sb
    np.testing.assert_allclose(ea.grad.numpy(), _sum_to(ga, sa), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(eb.grad.numpy(), _sum_to(gb, sb), rtol=1e-10, atol=1e-12)
    # a second backward accumulates: the gradients double
    out.backward(ember.tensor(g))
    np.testing.assert_allclose(ea.grad.numpy(), 2 * _sum_to(ga, sa), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(eb.grad.numpy(), 2 * _sum_to(gb, sb), rtol=1e-10, atol=1e-12)


@SETTINGS
@given(shapes=broadcast_pair(), op=st.sampled_from(sorted(OPS)), seed=st.integers(0, 2**16))
def test_backward_linear_in_upstream(shapes, op, seed):
    fe = OPS[op][0]
    sa, sb = shapes
    rng = np.random.default_rng(seed)
    a = rng.uniform(-2, 2, sa)
    b = rng.uniform(0.5, 2, sb)
    ea, eb = ember.tensor(a, requires_grad=True), ember.tensor(b, requires_grad=True)
    out = fe(ea, eb)
    g = ember.tensor(rng.standard_normal(out.shape))
    g1 = ember.autograd.grad(out, [ea, eb], g, retain_graph=True)
    g2 = ember.autograd.grad(out, [ea, eb], g * 2.0)
    for x, y in zip(g1, g2):
        np.testing.assert_allclose(y.numpy(), 2 * x.numpy(), rtol=1e-12, atol=1e-14)


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), seed=st.integers(0, 2**16),
       data=st.data())
def test_reshape_transpose_round_trip(shape, seed, data):
    x = np.random.default_rng(seed).standard_normal(shape)
    e = ember.tensor(x, requires_grad=True)
    perm = data.draw(st.permutations(range(len(shape))))
    inv = tuple(np.argsort(perm))
    back = e.permute(*perm).reshape(-1).reshape(tuple(x.transpose(perm).shape)).permute(*inv)
    np.testing.assert_array_equal(back.detach().numpy(), x)
    d0, d1 = data.draw(st.integers(-len(shape), len(shape) - 1)), \
        data.draw(st.integers(-len(shape), len(shape) - 1))
    np.testing.assert_array_equal(e.transpose(d0, d1).transpose(d0, d1).detach().numpy(), x)
    g = np.random.default_rng(seed + 1).standard_normal(shape)
    back.backward(ember.tensor(g))
    np.testing.assert_array_equal(e.grad.numpy(), g)


def test_no_grad_records_nothing():
    x = ember.tensor(rand(3, 4), requires_grad=True)
    y = ember.tensor(rand(4), requires_grad=True)
    with ember.no_grad():
        outs = [x + y, x * 2, (x / y).sum(1), x.exp().mean(), x.reshape(12), x.permute(1, 0),
                ember.cat([x, x]), ember.ops.pad(x, (1, 1)), x.max(1)[0], x.norm(),
                ember.where(x > 0, x, y), x.clamp(-1, 1), x.cumsum(0), x.var()]
    for o in outs:
        assert o.grad_fn is None and not o.requires_grad
    assert (x * 2).grad_fn is not None


# ---------------------------------------------------------------------------- gradcheck
def _t(*shape, low=-2.0, high=2.0, seed=0, **kw):
    return ember.tensor(rand(*shape, low=low, high=high, seed=seed, **kw), requires_grad=True)


GRADCHECK = {
    "binary_div": (lambda a, b: a / b, lambda: (_t(2, 3), _t(3, seed=1, away_from=0.0, gap=0.5))),
    "binary_pow": (lambda a, b: a ** b, lambda: (_t(2, 3, low=0.5), _t(3, seed=1))),
    "binary_remainder": (lambda a, b: a % b,
                         lambda: (ember.tensor([[1.3, -2.6, 4.1]], dtype=ember.float64,
                                               requires_grad=True),
                                  ember.tensor([0.7, 1.1, -1.7], dtype=ember.float64,
                                               requires_grad=True))),
    "binary_clamp": (lambda x, lo, hi: ember.clamp(x, lo, hi),
                     lambda: (_t(3, 4, away_from=(-0.5, 0.5)),
                              ember.tensor(np.full(4, -0.5), requires_grad=True),
                              ember.tensor(np.full((3, 1), 0.5), requires_grad=True))),
    "unary_erf": (lambda x: ember.erf(x).sin(), lambda: (_t(3, 2),)),
    "unary_sigmoid": (lambda x: x.sigmoid() * x.tanh(), lambda: (_t(3, 2),)),
    "reduce_prod_zeros": (lambda x: x.prod(1), lambda: (ember.tensor(
        [[0.0, 2.0, 3.0], [1.5, 0.0, 0.0]], dtype=ember.float64, requires_grad=True),)),
    "reduce_cumprod_zeros": (lambda x: x.cumprod(1), lambda: (ember.tensor(
        [[0.0, 2.0, 3.0], [1.5, 0.0, -1.0]], dtype=ember.float64, requires_grad=True),)),
    "reduce_var": (lambda x: x.var((0, 2), correction=0), lambda: (_t(2, 3, 2),)),
    "reduce_norm3": (lambda x: x.norm(3, 1), lambda: (_t(2, 3, away_from=0.0),)),
    "reduce_logsumexp": (lambda x: ember.logsumexp(x, -1), lambda: (_t(2, 3),)),
    "movement_pad_reflect": (lambda x: ember.ops.pad(x, (2, 1), "reflect") * 1.5,
                             lambda: (_t(1, 2, 4),)),
    "movement_tile_roll": (lambda x: ember.roll(x.repeat(2, 1), 1, 0).flip(1),
                           lambda: (_t(2, 3),)),
    "movement_cat_split": (lambda a, b: ember.cat([a, b], 1).split([1, 3], 1)[1],
                           lambda: (_t(2, 1), _t(2, 3, seed=1))),
}


@pytest.mark.parametrize("name", sorted(GRADCHECK))
def test_gradcheck(name):
    fn, make = GRADCHECK[name]
    assert ember.autograd.gradcheck(fn, make())


# ---------------------------------------------------------------------------- second order
SECOND = {
    "mul": (lambda x: x * x * x, lambda x: x * x * x, {}),
    "div": (lambda x: 1.0 / (x * x + 1), lambda x: 1.0 / (x * x + 1), {}),
    "pow": (lambda x: (x.abs() + 0.5) ** x, lambda x: (x.abs() + 0.5) ** x, {"away": 0.0}),
    "pow_scalar": (lambda x: x ** 3 + 2.0 ** x, lambda x: x ** 3 + 2.0 ** x, {}),
    "exp": (lambda x: x.exp() * x, lambda x: x.exp() * x, {}),
    "log": (lambda x: (x * x + 0.5).log() * x, lambda x: (x * x + 0.5).log() * x, {}),
    "tanh": (lambda x: x.tanh() * x, lambda x: x.tanh() * x, {}),
    "sigmoid": (lambda x: x.sigmoid() * x, lambda x: x.sigmoid() * x, {}),
    "sum": (lambda x: (x * x).sum(1, keepdim=True) * x, lambda x: (x * x).sum(1, keepdim=True) * x,
            {}),
    "mean": (lambda x: (x * x).mean(0) * x, lambda x: (x * x).mean(0) * x, {}),
    "var": (lambda x: x.var(1, keepdim=True) * x, lambda x: x.var(1, keepdim=True) * x, {}),
    "logsumexp": (lambda x: ember.logsumexp(x * x, 1), lambda x: torch.logsumexp(x * x, 1), {}),
    "norm": (lambda x: x.norm(dim=1) * x.norm(), lambda x: x.norm(dim=1) * x.norm(), {}),
    "prod": (lambda x: x.prod(1), lambda x: x.prod(1), {}),
    "cumsum": (lambda x: (x * x).cumsum(1) * x, lambda x: (x * x).cumsum(1) * x, {}),
    "permute": (lambda x: (x * x).permute(1, 0) @ x, lambda x: (x * x).permute(1, 0) @ x, {}),
    "expand": (lambda x: (x[:, :1] * x[:1, :]).expand(2, 3, 4) * x,
               lambda x: (x[:, :1] * x[:1, :]).expand(2, 3, 4) * x, {}),
    "cat": (lambda x: ember.cat([x * x, x.exp()], 1) * ember.cat([x, x], 1),
            lambda x: torch.cat([x * x, x.exp()], 1) * torch.cat([x, x], 1), {}),
    "pad": (lambda x: ember.ops.pad(x * x, (1, 2, 0, 1)) * ember.ops.pad(x, (2, 1, 1, 0)),
            lambda x: torch.nn.functional.pad(x * x, (1, 2, 0, 1)) *
            torch.nn.functional.pad(x, (2, 1, 1, 0)), {}),
}


@pytest.mark.oracle
@pytest.mark.parametrize("name", sorted(SECOND))
def test_second_order(name):
    fe, ft, opts = SECOND[name]
    x = rand(3, 4, seed=5, low=-1.5, high=1.5, away_from=opts.get("away"), gap=0.2)
    v = np.random.default_rng(6).standard_normal((3, 4))
    ex = ember.tensor(x, requires_grad=True)
    tx = torch.tensor(x, requires_grad=True)
    eo, to = fe(ex), ft(tx)
    w = np.random.default_rng(7).standard_normal(tuple(to.shape))
    (eg,) = ember.autograd.grad((eo * ember.tensor(w)).sum(), [ex], create_graph=True)
    (tg,) = torch.autograd.grad((to * torch.tensor(w)).sum(), [tx], create_graph=True)
    np.testing.assert_allclose(eg.detach().numpy(), tg.detach().numpy(), rtol=1e-9, atol=1e-10)
    (egg,) = ember.autograd.grad((eg * ember.tensor(v)).sum(), [ex])
    (tgg,) = torch.autograd.grad((tg * torch.tensor(v)).sum(), [tx])
    np.testing.assert_allclose(egg.numpy(), tgg.numpy(), rtol=1e-8, atol=1e-10)
