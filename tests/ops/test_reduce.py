"""Oracle tests for ember.ops.reduce: reductions over dims, arg-reductions, cumulative ops."""

import numpy as np
import pytest

import ember
from tests.oracle import FLOATS, check, noncontig, rand, torch

pytestmark = pytest.mark.oracle

# (shape, dim) grid: None = all, int, negative, tuple, 0-d input
DIMS = [((3, 4), None), ((3, 4), 0), ((3, 4), -1), ((2, 3, 4), (0, 2)), ((2, 3, 4), (-1, 1)),
        ((2, 3, 4), 1), ((), None), ((1, 3), 0), ((4,), 0)]
KEEP = [False, True]


def _kw(dim, keepdim):
    return {} if dim is None else {"dim": dim, "keepdim": keepdim}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("shape,dim", DIMS)
@pytest.mark.parametrize("name", ["sum", "mean", "logsumexp", "amax", "amin", "var", "std",
                                  "norm"])
def test_reductions(name, shape, dim, keepdim, dtype):
    x = rand(*shape, dtype=dtype, low=0.5 if name == "std" else -2, seed=3)
    if name in ("std", "var") and (not shape or shape == (1, 3)):
        return  # one element with correction 1: nan, and torch warns (checked separately)
    kw = _kw(dim, keepdim)
    if name == "logsumexp":
        kw = {"dim": dim if dim is not None else tuple(range(len(shape))), "keepdim": keepdim}
    check(lambda t: getattr(ember, name)(t, **kw), lambda t: getattr(torch, name)(t, **kw), [x])
    check(lambda t: getattr(t, name)(**kw), lambda t: getattr(t, name)(**kw), [noncontig(x)])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("shape,dim", [((3, 4), None), ((3, 4), 1), ((2, 3, 4), -2), ((), None),
                                       ((5,), 0)])
def test_prod(shape, dim, keepdim, dtype):
    x = rand(*shape, dtype=dtype, low=0.5, high=1.5, seed=5) * np.where(
        rand(*shape, seed=6) > 0, 1, -1).astype(dtype)
    kw = _kw(dim, keepdim)
    check(lambda t: ember.prod(t, **kw), lambda t: torch.prod(t, **kw), [x])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
def test_prod_with_zeros(dim, dtype):
    x = rand(3, 4, dtype=dtype, seed=7)
    x[0, 1] = 0.0  # one zero in a row
    x[2, 0] = x[2, 3] = 0.0  # two zeros in a row: gradient 0 there
    kw = _kw(dim, False)
    check(lambda t: ember.prod(t, **kw), lambda t: torch.prod(t, **kw), [x])
    check(lambda t: ember.prod(t, **kw), lambda t: torch.prod(t, **kw), [noncontig(x)])


def test_prod_int_and_dtype():
    i = np.array([[1, 2, 3], [4, 5, 6]], np.int64)
    check(lambda t: ember.prod(t, 1), lambda t: torch.prod(t, 1), [i])
    check(lambda t: ember.prod(t), lambda t: torch.prod(t), [i.astype(np.int32)])
    check(lambda t: ember.prod(t, dtype=ember.float64),
          lambda t: torch.prod(t, dtype=torch.float64), [rand(3)])


def test_sum_dtypes():
    for d in (np.int32, np.int64, np.bool_, np.uint8):
        x = (rand(3, 4, seed=1) > 0).astype(d)
        check(lambda t: t.sum(), lambda t: t.sum(), [x])
        check(lambda t: t.sum(1, keepdim=True), lambda t: t.sum(1, keepdim=True), [x])
    x = rand(3, 4, dtype=np.float32)
    check(lambda t: ember.sum(t, dtype=ember.float64), lambda t: torch.sum(t, dtype=torch.float64),
          [x])
    check(lambda t: ember.sum(t, 0, dtype=ember.float32),
          lambda t: torch.sum(t, 0, dtype=torch.float32), [x.astype(np.float64)])
    check(lambda t: ember.mean(t, dtype=ember.float64),
          lambda t: torch.mean(t, dtype=torch.float64), [x])
    with pytest.raises(RuntimeError, match="mean"):
        ember.mean(ember.tensor([1, 2]))


@pytest.mark.parametrize("dtype", FLOATS)
def test_empty_reductions(dtype):
    x = np.zeros((0, 3), dtype=dtype)
    check(lambda t: t.sum(), lambda t: t.sum(), [x])
    check(lambda t: t.sum(0), lambda t: t.sum(0), [x])
    check(lambda t: t.sum(1, keepdim=True), lambda t: t.sum(1, keepdim=True), [x])
    check(lambda t: t.mean(0), lambda t: t.mean(0), [x])  # nan, gradient of shape (0, 3)
    check(lambda t: t.mean(1), lambda t: t.mean(1), [x])
    check(lambda t: t.prod(0), lambda t: t.prod(0), [x])
    check(lambda t: t.amax(1), lambda t: t.amax(1), [x])
    check(lambda t: ember.logsumexp(t, 0), lambda t: torch.logsumexp(t, 0), [x])
    check(lambda t: ember.norm(t), lambda t: torch.norm(t), [x])
    check(lambda t: t.cumsum(0), lambda t: t.cumsum(0), [x])
    check(lambda t: t.all(), lambda t: t.all(), [x])
    check(lambda t: t.any(0), lambda t: t.any(0), [x])
    for fn in (lambda t: t.amax(0), lambda t: t.max(), lambda t: t.argmax()):
        with pytest.raises((IndexError, RuntimeError)):
            fn(ember.tensor(x))


@pytest.mark.parametrize("dtype", FLOATS)
def test_amax_amin_ties(dtype):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, -1.0], [-1.0, -5.0, 4.0, -5.0]], dtype)
    for name in ("amax", "amin"):
        for kw in ({}, {"dim": 1}, {"dim": 0, "keepdim": True}, {"dim": (0, 1)}):
            check(lambda t, n=name, k=kw: getattr(t, n)(**k),
                  lambda t, n=name, k=kw: getattr(t, n)(**k), [x])
    # full max()/min() split ties evenly like amax
    check(lambda t: t.max(), lambda t: t.max(), [x])
    check(lambda t: t.min(), lambda t: t.min(), [x])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("shape,dim", [((3, 4), 0), ((3, 4), -1), ((2, 3, 4), 1), ((5,), 0),
                                       ((), 0)])
@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_dim(name, shape, dim, keepdim, dtype):
    x = rand(*shape, dtype=dtype, seed=9)
    check(lambda t: getattr(ember, name)(t, dim, keepdim),
          lambda t: tuple(getattr(torch, name)(t, dim, keepdim)), [x])
    check(lambda t: getattr(t, name)(dim=dim, keepdim=keepdim),
          lambda t: tuple(getattr(t, name)(dim=dim, keepdim=keepdim)), [noncontig(x)])


@pytest.mark.parametrize("name", ["max", "min"])
def test_max_min_dim_ties_go_to_index(name):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    res = check(lambda t: getattr(ember, name)(t, 1), lambda t: tuple(getattr(torch, name)(t, 1)),
                [x])
    assert res[1].dtype == ember.int64
    values, indices = getattr(ember, name)(ember.tensor(x), 1)
    assert values.shape == (2,) and indices.shape == (2,)
    out = getattr(ember.tensor(x), name)(1)
    assert out.values.shape == (2,) and out.indices.dtype == ember.int64


def test_max_min_binary_forms():
    a, b = rand(3, 4, seed=1), rand(4, seed=2)
    check(lambda x, y: ember.max(x, y), lambda x, y: torch.max(x, y), [a, b])
    check(lambda x, y: ember.min(x, y), lambda x, y: torch.min(x, y), [a, b])
    check(lambda x, y: x.max(y), lambda x, y: x.max(y), [a, b])


@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin(name, dim, keepdim):
    x = rand(3, 4, seed=11)
    x[1, 2] = x[1, 0] = 5.0  # ties: first index, like torch
    x[2, 1] = x[2, 3] = -5.0
    check(lambda t: getattr(ember, name)(t, dim, keepdim),
          lambda t: getattr(torch, name)(t, dim, keepdim), [x], grad=[])
    check(lambda t: getattr(t, name)(dim=dim), lambda t: getattr(t, name)(dim=dim),
          [np.array([[3, 1, 3], [0, 7, 7]], np.int64)])
    check(lambda t: getattr(ember, name)(t), lambda t: getattr(torch, name)(t), [np.float64(2.0)],
          grad=[])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("dim", [None, 1, (0, 2), -1])
@pytest.mark.parametrize("kw", [{}, {"correction": 0}, {"correction": 2}, {"unbiased": False},
                                {"unbiased": True}])
@pytest.mark.parametrize("name", ["var", "std"])
def test_var_std_corrections(name, kw, dim, keepdim, dtype):
    x = rand(2, 3, 4, dtype=dtype, seed=13)
    args = dict(kw, dim=dim, keepdim=keepdim)
    check(lambda t: getattr(ember, name)(t, **args), lambda t: getattr(torch, name)(t, **args),
          [x])


def test_var_mean_std_mean():
    x = rand(3, 4)
    check(lambda t: ember.var_mean(t, 1), lambda t: torch.var_mean(t, 1), [x])
    check(lambda t: ember.std_mean(t, (0, 1), correction=0),
          lambda t: torch.std_mean(t, (0, 1), correction=0), [x])


def test_var_degenerate():
    # a single element with correction 1 gives nan (torch warns; ember is silent)
    e = ember.var(ember.tensor(np.array([2.0])))
    assert np.isnan(e.item())
    e = ember.var(ember.tensor(np.array([[2.0, 3.0]])), 0, correction=1)
    assert np.isnan(e.numpy()).all()
    e = ember.std(ember.tensor(np.array([2.0, 3.0])), correction=3)
    assert np.isinf(e.item())
    # positional dim, like torch.var(x, 1)
    check(lambda t: ember.var(t, 1), lambda t: torch.var(t, 1), [rand(3, 4)])
    check(lambda t: t.std(0, True, True), lambda t: t.std(0, True, True), [rand(3, 4)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_logsumexp_stable(dtype):
    x = np.array([[1e4, 1e4 - 1.0, -1e4], [-1e4, -1e4, -1e4 + 2.0]], dtype)
    check(lambda t: ember.logsumexp(t, 1), lambda t: torch.logsumexp(t, 1), [x])
    check(lambda t: ember.logsumexp(t, (0, 1), keepdim=True),
          lambda t: torch.logsumexp(t, (0, 1), keepdim=True), [x])
    y = np.array([[-np.inf, -np.inf], [0.0, -np.inf]], dtype)
    check(lambda t: ember.logsumexp(t, 1), lambda t: torch.logsumexp(t, 1), [y], grad=[])
    check(lambda t: ember.logsumexp(t, 0), lambda t: torch.logsumexp(t, 0), [np.array(3.0, dtype)])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [1, 2, float("inf"), float("-inf"), 3, 0.5, "fro", 0])
@pytest.mark.parametrize("dim,keepdim", [(None, False), (1, False), (-1, True), ((0, 1), False),
                                         (0, True)])
def test_norm(p, dim, keepdim, dtype):
    x = rand(3, 4, dtype=dtype, seed=15, away_from=0.0, gap=0.1)
    x[1, 2] = -x[0, 3]  # a tie in |x| for the inf norms is avoided elsewhere
    if p == "fro" and dim is not None and not isinstance(dim, tuple):
        return  # torch's 'fro' needs 2 dims or None
    check(lambda t: ember.norm(t, p, dim, keepdim), lambda t: torch.norm(t, p, dim, keepdim), [x])
    check(lambda t: t.norm(p, dim, keepdim), lambda t: t.norm(p, dim, keepdim), [noncontig(x)])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("p", [1, 2, 3, float("inf"), "fro"])
def test_norm_zero_vector(p, dtype):
    x = np.zeros((2, 3), dtype)
    x[1] = [1.0, -2.0, 0.5]
    # the zero row has gradient 0 (not nan)
    if p != "fro":
        check(lambda t: ember.norm(t, p, 1), lambda t: torch.norm(t, p, 1), [x])
    check(lambda t: ember.norm(t, p), lambda t: torch.norm(t, p), [np.zeros(3, dtype)])


def test_norm_inf_ties():
    x = np.array([[1.0, -3.0, 3.0], [2.0, 0.5, -1.0]])
    check(lambda t: ember.norm(t, float("inf"), 1), lambda t: torch.norm(t, float("inf"), 1), [x])
    check(lambda t: ember.norm(t, float("inf")), lambda t: torch.norm(t, float("inf")), [x])


@pytest.mark.parametrize("keepdim", KEEP)
@pytest.mark.parametrize("dim", [None, 0, 1, -1, (0, 1)])
@pytest.mark.parametrize("name", ["all", "any"])
def test_all_any(name, dim, keepdim):
    b = np.array([[True, False, True], [True, True, True]])
    f = np.array([[1.0, 0.0, 2.0], [0.5, 1.0, -1.0]])
    i = np.array([[1, 0, 2], [0, 0, 0]], np.int64)
    for x in (b, f, i):
        kw = {} if dim is None else {"dim": dim, "keepdim": keepdim}
        out = check(lambda t, k=kw: getattr(ember, name)(t, **k),
                    lambda t, k=kw: getattr(torch, name)(t, **k), [x], grad=[])
        assert out[0].dtype == ember.bool


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim", [((3, 4), 0), ((3, 4), 1), ((2, 3, 4), -1), ((5,), 0),
                                       ((), 0), ((2, 0), 1)])
def test_cumsum_cumprod(shape, dim, dtype):
    x = rand(*shape, dtype=dtype, seed=17, away_from=0.0, gap=0.2)
    check(lambda t: ember.cumsum(t, dim), lambda t: torch.cumsum(t, dim), [x])
    check(lambda t: t.cumprod(dim), lambda t: t.cumprod(dim), [x])
    check(lambda t: t.cumsum(dim), lambda t: t.cumsum(dim), [noncontig(x)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_cumprod_with_zeros(dtype):
    x = rand(3, 4, dtype=dtype, seed=19)
    x[0, 1] = 0.0
    x[1, 0] = x[1, 2] = 0.0
    check(lambda t: ember.cumprod(t, 1), lambda t: torch.cumprod(t, 1), [x])
    check(lambda t: ember.cumprod(t, 0), lambda t: torch.cumprod(t, 0), [x])


def test_cum_dtypes():
    i = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
    check(lambda t: t.cumsum(1), lambda t: t.cumsum(1), [i])
    check(lambda t: t.cumprod(0), lambda t: t.cumprod(0), [i])
    check(lambda t: t.cumsum(0), lambda t: t.cumsum(0), [i > 2])
    check(lambda t: ember.cumsum(t, 0, dtype=ember.float64),
          lambda t: torch.cumsum(t, 0, dtype=torch.float64), [rand(3, dtype=np.float32)])


def test_count_nonzero():
    x = np.array([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]])
    check(ember.count_nonzero, torch.count_nonzero, [x], grad=[])
    check(lambda t: ember.count_nonzero(t, 0), lambda t: torch.count_nonzero(t, 0), [x], grad=[])


def test_bad_dims():
    x = ember.ones(2, 3)
    for fn in (lambda: x.sum(2), lambda: x.mean(-3), lambda: x.amax((0, 5)),
               lambda: x.max(2), lambda: x.cumsum(3), lambda: x.argmax(-3)):
        with pytest.raises(IndexError, match="out of range"):
            fn()
