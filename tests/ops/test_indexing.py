"""Indexing ops against PyTorch: getitem / setitem, index_put, gather / scatter, index_select /
index_add, masks, take, one_hot, nonzero; gradients (duplicates accumulate), double backward,
properties (hypothesis) and error messages."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import ember
from ember.ops import indexing as I  # noqa: N812
from tests.oracle import FLOATS, check, noncontig, rand, torch

F = torch.nn.functional


def E(a):
    """An ember index tensor."""
    return ember.tensor(np.asarray(a))


def T(a):
    """A torch index tensor."""
    return torch.tensor(np.asarray(a))


def keys(make):
    """The same key for ember and torch: ``make(ctor)`` builds it with index tensors."""
    return make(E), make(T)


def long(*a):
    return np.array(a, dtype=np.int64)


# ============================================================================ getitem
MASK34 = np.array([[True, False, True, False], [False, False, False, False],
                   [True, True, False, True]])
GETITEM_CASES = [
    ((5,), lambda c: 2),
    ((5,), lambda c: -1),
    ((5,), lambda c: slice(1, 4)),
    ((5,), lambda c: slice(None, None, 2)),
    ((5,), lambda c: slice(-3, None)),
    ((3, 4), lambda c: (1, slice(None))),
    ((3, 4), lambda c: (slice(None), -1)),
    ((3, 4), lambda c: (None, 1)),
    ((3, 4), lambda c: (Ellipsis, None)),
    ((3, 4), lambda c: (Ellipsis, 2)),
    ((3, 4), lambda c: (1, 2)),
    ((3, 4), lambda c: Ellipsis),
    ((3, 4), lambda c: c(long(0, 2, 0, 0))),  # duplicates
    ((3, 4), lambda c: c(long(-1, 0, -1))),  # negative
    ((3, 4), lambda c: c(long([0, 1], [1, 1]))),  # 2-d index
    ((3, 4), lambda c: (slice(None), c(long(3, 3, -4)))),
    ((3, 4), lambda c: c(long(1))[0]),  # a 0-d index tensor
    ((3, 4, 5), lambda c: (c(long(0, 2)), slice(None), c(long(1, 4)))),  # separated
    ((3, 4, 5), lambda c: (slice(None), c(long(0, 2)), c(long(1, 4)))),  # adjacent
    ((3, 4, 5), lambda c: (1, slice(None), c(long(0, 0, 3)))),  # int + array
    ((3, 4, 5), lambda c: (slice(None), c(long(0, 2, 2)), 3)),
    ((2, 3, 4, 5), lambda c: (slice(None), c(long(0, 1, 0, 1, 2, 0)), slice(None), 1)),
    ((3, 4, 5), lambda c: (c(long([0], [2])), c(long(1, 2, 3)))),  # broadcast indices
    ((3, 4, 5), lambda c: (c(long(0, 2)), None, c(long(1, 1)))),
    ((3, 4), lambda c: c(MASK34)),  # full mask
    ((3, 4, 5), lambda c: c(MASK34)),  # mask over leading dims
    ((3, 4, 5), lambda c: (slice(None), c(np.array([True, False, True, True])))),
    ((3, 4, 5), lambda c: (c(np.array([True, False, True])), slice(1, 3), c(long(0, 4)))),
    ((3, 4), lambda c: c(np.zeros((3, 4), dtype=bool))),  # empty selection
    ((3, 4), lambda c: c(np.array([], dtype=np.int64))),
    ((0, 3), lambda c: (slice(None), 1)),
    ((3, 0), lambda c: c(long(2, 0))),
    ((1, 4), lambda c: c(long(0, 0, 0))),  # size-1 dim, repeated
    ((1, 4), lambda c: (0, c(long(3, 3)))),
    ((3, 4), lambda c: True),
    ((3, 4), lambda c: (slice(None), None, c(long(1, 2)), None)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,make", GETITEM_CASES)
def test_getitem(dtype, shape, make):
    ke, kt = keys(make)
    check(lambda x: x[ke], lambda x: x[kt], [rand(*shape, dtype=dtype)])


@pytest.mark.oracle
@pytest.mark.parametrize("make", [lambda c: (slice(None), c(long(2, 0, 2))),
                                  lambda c: (1, slice(1, None)),
                                  lambda c: (c(MASK34),)])
def test_getitem_noncontig(make):
    ke, kt = keys(make)
    check(lambda x: x[ke] * 2, lambda x: x[kt] * 2, [noncontig(rand(3, 4))])


def test_getitem_lists_and_view():
    x = ember.tensor(rand(3, 4))
    np.testing.assert_array_equal(x[[0, 2, 0]].numpy(), x.numpy()[[0, 2, 0]])
    np.testing.assert_array_equal(x[[True, False, True]].numpy(), x.numpy()[[0, 2]])
    np.testing.assert_array_equal(x[[]].numpy(), np.zeros((0, 4)))
    v = x[1]  # basic indexing is a view sharing the version counter
    assert np.shares_memory(v.numpy(), x.numpy()) and v._version is x._version
    s = x[1, 2]
    assert s.shape == () and np.shares_memory(s.numpy(), x.numpy())
    assert not np.shares_memory(x[[1]].numpy(), x.numpy())  # advanced indexing copies


@pytest.mark.parametrize("dtype", FLOATS)
def test_getitem_negative_step(dtype):
    """NumPy's negative steps (PyTorch refuses them): value and gradient against NumPy."""
    a = rand(4, 5, dtype=dtype)
    x = ember.tensor(a, requires_grad=True)
    y = x[::-1, 3:0:-2]
    np.testing.assert_array_equal(y.numpy(force=True), a[::-1, 3:0:-2])
    g = rand(*y.shape, dtype=dtype, seed=1)
    y.backward(ember.tensor(g))
    expected = np.zeros_like(a)
    expected[::-1, 3:0:-2] = g
    np.testing.assert_array_equal(x.grad.numpy(), expected)
    assert x.grad.dtype == x.dtype


# ============================================================================ setitem / index_put
def _set(x, key, v):
    y = x * 1
    y[key] = v
    return y * 1


SETITEM_CASES = [
    ((3, 4), lambda c: 1, (4,)),
    ((3, 4), lambda c: (slice(None), 2), (3,)),
    ((3, 4), lambda c: (slice(1, None), slice(None, 2)), (1, 2)),  # broadcast values
    ((3, 4), lambda c: 0, (1, 4)),  # extra leading 1 in values
    ((3, 4), lambda c: c(long(2, 0)), (2, 4)),
    ((3, 4), lambda c: (c(long(2, -3)), c(long(1, 3))), (2,)),
    ((3, 4), lambda c: c(MASK34), (5,)),
    ((3, 4), lambda c: c(MASK34), ()),
    ((3, 4, 5), lambda c: (slice(None), c(long(0, 2)), 1), (3, 2)),  # int + array mix
    ((3, 4, 5), lambda c: (1, slice(None), c(long(0, 3))), (4, 2)),
    ((3, 4, 5), lambda c: (Ellipsis, c(long(4, 0))), (4, 1)),
    ((3, 1), lambda c: (c(long(0, 2)), 0), (1,)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,make,vshape", SETITEM_CASES)
def test_setitem_grad(dtype, shape, make, vshape):
    """``y[key] = v`` on a non-leaf: gradients to the original tensor and to ``v``."""
    ke, kt = keys(make)
    check(lambda x, v: _set(x, ke, v), lambda x, v: _set(x, kt, v),
          [rand(*shape, dtype=dtype), rand(*vshape, dtype=dtype, seed=3)])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
def test_setitem_scalar_and_leaf_value(dtype):
    ke, kt = keys(lambda c: c(MASK34))
    check(lambda x: _set(x, ke, 0.5), lambda x: _set(x, kt, 0.5), [rand(3, 4, dtype=dtype)])
    # only the value requires grad: the assigned-into tensor joins the graph
    base = rand(3, 4, dtype=dtype)

    def run(lib, v):
        y = lib.tensor(base.copy())
        y[1:, 2] = v
        return y

    check(lambda v: run(ember, v), lambda v: run(torch, v), [rand(2, dtype=dtype)])


@pytest.mark.oracle
@pytest.mark.parametrize("make,v", [(lambda c: (c(long(0, 2)), 1), 7.0),
                                    (lambda c: (slice(None), c(long(3, 0, 3))), 2.5),
                                    (lambda c: c(MASK34), -1.0),
                                    (lambda c: (1, slice(None, None, 2)), 9.0)])
def test_setitem_no_grad(make, v):
    a = rand(3, 4)
    ke, kt = keys(make)
    xe, xt = ember.tensor(a), torch.tensor(a)
    xe[ke] = v
    xt[kt] = v
    np.testing.assert_array_equal(xe.numpy(), xt.numpy())
    ve = ember.tensor(np.float64(v))
    xe[ke] = ve * 2
    xt[kt] = torch.tensor(v, dtype=torch.float64) * 2
    np.testing.assert_array_equal(xe.numpy(), xt.numpy())


@pytest.mark.oracle
def test_setitem_no_grad_int_array_mix():
    """Ints mixed with index tensors keep PyTorch's dim order (NumPy would move dims)."""
    a = rand(2, 3, 4, 5)
    v = rand(2, 3, 4, seed=1)
    xe, xt = ember.tensor(a), torch.tensor(a)
    xe[:, E(long(2, 0, 1)), :, 1] = ember.tensor(v)
    xt[:, T(long(2, 0, 1)), :, 1] = torch.tensor(v)
    np.testing.assert_array_equal(xe.numpy(), xt.numpy())
    assert xe[:, E(long(2, 0, 1)), :, 1].shape == (2, 3, 4)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("accumulate", [False, True])
def test_index_put(dtype, accumulate):
    idx = long(0, 2, 2, 1, 0) if accumulate else long(0, 2, 1)
    v = rand(len(idx), 4, dtype=dtype, seed=5)
    check(lambda x, v: ember.index_put(x, (E(idx),), v, accumulate=accumulate),
          lambda x, v: torch.index_put(x, (T(idx),), v, accumulate=accumulate),
          [rand(3, 4, dtype=dtype), v])
    check(lambda x, v: x.index_put((E(idx), E(idx % 4)), v, accumulate),
          lambda x, v: x.index_put((T(idx), T(idx % 4)), v, accumulate),
          [rand(3, 4, dtype=dtype), rand(len(idx), dtype=dtype)])


def test_index_put_duplicates_get_every_gradient():
    """Overwritten duplicates: each value still receives the gradient at its target (as torch)."""
    x = ember.zeros(3, dtype=ember.float64, requires_grad=True)
    v = ember.tensor([1.0, 2.0, 3.0], dtype=ember.float64, requires_grad=True)
    y = ember.index_put(x, E(long(1, 1, 0)), v)
    (y * ember.tensor([10.0, 20.0, 30.0], dtype=ember.float64)).sum().backward()
    np.testing.assert_array_equal(v.grad.numpy(), [20.0, 20.0, 10.0])
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 30.0])


# ============================================================================ gather / scatter
GATHER_CASES = [
    ((3, 4), 1, long([0, 0, 3, 1, 0], [2, 2, 2, 2, 2], [1, 3, 0, 0, 1])),  # duplicates
    ((3, 4), -1, long([3, 0], [1, 1])),  # smaller index, negative dim
    ((3, 4), 0, long([2, 0, 1, 2], [0, 0, 0, 0])),
    ((2, 3, 4), 1, np.random.default_rng(0).integers(0, 3, (2, 5, 3))),
    ((2, 3, 4), -3, np.random.default_rng(1).integers(0, 2, (2, 3, 4))),
    ((3, 4), 1, np.zeros((3, 0), np.int64)),
    ((1, 4), 0, long([0, 0, 0, 0], [0, 0, 0, 0])),
    ((), 0, np.array(0)),
    ((4,), 0, long(3, 3, 1)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim,idx", GATHER_CASES)
def test_gather(dtype, shape, dim, idx):
    check(lambda x: ember.gather(x, dim, E(idx)), lambda x: torch.gather(x, dim, T(idx)),
          [rand(*shape, dtype=dtype)])


@pytest.mark.oracle
def test_gather_noncontig_method():
    idx = long([1, 0, 1], [3, 3, 0], [2, 2, 2])
    check(lambda x: x.gather(1, E(idx)), lambda x: x.gather(1, T(idx)), [noncontig(rand(3, 4))])


def _distinct_rows(n_rows, k, size, seed):
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(size)[:k] for _ in range(n_rows)]).astype(np.int64)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [1, -1])
def test_scatter_src(dtype, dim):
    idx = _distinct_rows(3, 3, 5, seed=2)  # no repeated targets: the result is determined
    check(lambda x, s: ember.scatter(x, dim, E(idx), s),
          lambda x, s: torch.scatter(x, dim, T(idx), s),
          [rand(3, 5, dtype=dtype), rand(3, 3, dtype=dtype, seed=4)])
    check(lambda x, s: x.scatter(0, E(idx.T[:2]), s), lambda x, s: x.scatter(0, T(idx.T[:2]), s),
          [rand(5, 3, dtype=dtype), rand(2, 3, dtype=dtype, seed=4)])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
def test_scatter_value(dtype):
    idx = long([0, 3], [1, 1], [4, 2])
    check(lambda x: ember.scatter(x, 1, E(idx), 2.5), lambda x: torch.scatter(x, 1, T(idx), 2.5),
          [rand(3, 5, dtype=dtype)])
    check(lambda x: ember.scatter(x, 1, E(idx), value=-1.0),
          lambda x: torch.scatter(x, 1, T(idx), value=-1.0), [rand(3, 5, dtype=dtype)])
    for red, fill in (("add", 2.0), ("multiply", 3.0)):
        out = check(lambda x, red=red, fill=fill: ember.scatter(x, 1, E(idx), fill, reduce=red),
                    lambda x, red=red, fill=fill: torch.scatter(x, 1, T(idx), fill, reduce=red),
                    [rand(3, 5, dtype=dtype)], grad=[])
        # torch has no derivative here: the input gradient is 1, or 3 ** (times multiplied)
        x = ember.tensor(rand(3, 5, dtype=dtype), requires_grad=True)
        ember.scatter(x, 1, E(idx), fill, reduce=red).sum().backward()
        times = np.zeros((3, 5))
        np.add.at(times, (np.arange(3)[:, None], idx), 1.0)
        expected = np.ones((3, 5)) if red == "add" else 3.0 ** times
        np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-6)
        assert x.grad.dtype == x.dtype and out[0].dtype == x.dtype


def _torch_quiet(fn):
    def run(*a):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*a)

    return run


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
def test_scatter_reduce_forward_and_grad(dtype):
    """Torch has no gradient for reduce= with a src tensor: compare values with torch and
    gradients with the equivalent scatter_add / a product rule."""
    idx = long([0, 0, 2], [1, 4, 1], [3, 3, 3])  # repeated targets
    x, s = rand(3, 5, dtype=dtype), rand(3, 3, dtype=dtype, seed=7)
    for red in ("add", "multiply"):
        check(lambda x, s, red=red: ember.scatter(x, 1, E(idx), s, reduce=red),
              _torch_quiet(lambda x, s, red=red: torch.scatter(x, 1, T(idx), s, reduce=red)),
              [x, s], grad=[])
    check(lambda x, s: ember.scatter(x, 1, E(idx), s, reduce="add"),
          lambda x, s: torch.scatter_add(x, 1, T(idx), s), [x, s])
    # multiply: input gradient is g times the scattered product
    xe, se = ember.tensor(x, requires_grad=True), ember.tensor(s)
    ember.scatter(xe, 1, E(idx), se, reduce="multiply").sum().backward()
    factor = np.ones_like(x)
    np.multiply.at(factor, (np.arange(3)[:, None], idx), s)
    np.testing.assert_allclose(xe.grad.numpy(), factor, rtol=1e-6)
    # src gradient with distinct targets: g * input at the target
    idx2 = _distinct_rows(3, 2, 5, seed=1)
    se = ember.tensor(s[:, :2], requires_grad=True)
    ember.scatter(ember.tensor(x), 1, E(idx2), se, reduce="multiply").sum().backward()
    np.testing.assert_allclose(se.grad.numpy(), np.take_along_axis(x, idx2, 1), rtol=1e-6)
    se = ember.tensor(s, requires_grad=True)
    out = ember.scatter(ember.tensor(x), 1, E(idx), se, reduce="multiply").sum()
    with pytest.raises(RuntimeError, match="reduce='multiply'"):
        out.backward()


@pytest.mark.oracle
def test_scatter_src_larger_than_index():
    """src may be larger than index: the unused part gets zero gradient (torch crashes there)."""
    idx = long([0, 2], [1, 0])
    s = rand(3, 3, seed=9)
    check(lambda x, s: ember.scatter(x, 1, E(idx), s), lambda x, s: torch.scatter(x, 1, T(idx), s),
          [rand(3, 4), s], grad=[0])
    se = ember.tensor(s, requires_grad=True)
    g = rand(3, 4, seed=1)
    ember.scatter(ember.zeros(3, 4, dtype=ember.float64), 1, E(idx), se).backward(ember.tensor(g))
    expected = np.zeros((3, 3))
    expected[:2, :2] = np.take_along_axis(g[:2], idx, 1)
    np.testing.assert_array_equal(se.grad.numpy(), expected)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim,idx,sshape", [
    ((3, 5), 1, long([0, 0, 4], [1, 1, 1], [2, 3, 2]), (3, 3)),
    ((4, 2), 0, long([3, 3], [0, 3], [3, 1]), (3, 2)),
    ((4, 2), -2, long([1, 1]), (2, 2)),  # index smaller than src
    ((2, 3, 2), 2, np.random.default_rng(0).integers(0, 2, (2, 3, 4)), (2, 3, 4)),
    ((3, 1), 1, long([0, 0], [0, 0], [0, 0]), (3, 2)),
])
def test_scatter_add(dtype, shape, dim, idx, sshape):
    small = idx.shape != sshape  # torch's backward fails when src is larger than index
    check(lambda x, s: ember.scatter_add(x, dim, E(idx), s),
          lambda x, s: torch.scatter_add(x, dim, T(idx), s),
          [rand(*shape, dtype=dtype), rand(*sshape, dtype=dtype, seed=2)],
          grad=[0] if small else None)


def test_scatter_0d_value_tensor_grad():
    v = ember.tensor(2.0, dtype=ember.float64, requires_grad=True)
    idx = E(long([0, 1], [2, 2]))
    out = ember.scatter(ember.zeros(2, 3, dtype=ember.float64), 1, idx, v)
    (out * ember.tensor(rand(2, 3, seed=3))).sum().backward()
    g = rand(2, 3, seed=3)
    np.testing.assert_allclose(v.grad.numpy(), g[0, 0] + g[0, 1] + 2 * g[1, 2])


# ============================================================================ index_select / add
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim,idx", [
    ((4, 3), 0, long(3, 0, 3, 3)),
    ((4, 3), -1, long(2, 0)),
    ((2, 3, 4), 1, long(1,)),
    ((2, 3, 4), 2, np.array(3)),
    ((4, 3), 0, np.zeros(0, np.int64)),
    ((1, 3), 0, long(0, 0)),
    ((), 0, long(0)),
])
def test_index_select(dtype, shape, dim, idx):
    check(lambda x: ember.index_select(x, dim, E(idx)),
          lambda x: torch.index_select(x, dim, T(idx)), [rand(*shape, dtype=dtype)])


@pytest.mark.oracle
def test_index_select_noncontig():
    check(lambda x: x.index_select(1, E(long(0, 0, 2))),
          lambda x: x.index_select(1, T(long(0, 0, 2))), [noncontig(rand(4, 3))])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,dim,idx,alpha", [
    ((4, 3), 0, long(3, 0, 3), 1),
    ((4, 3), -1, long(2, 2, 2, 0), 2.5),
    ((2, 3, 4), 1, long(1,), -1),
    ((4, 3), 0, np.zeros(0, np.int64), 1),
])
def test_index_add(dtype, shape, dim, idx, alpha):
    sshape = list(shape)
    sshape[dim] = len(idx)
    check(lambda x, s: ember.index_add(x, dim, E(idx), s, alpha=alpha),
          lambda x, s: torch.index_add(x, dim, T(idx), s, alpha=alpha),
          [rand(*shape, dtype=dtype), rand(*sshape, dtype=dtype, seed=1)])


# ============================================================================ masks
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,mshape", [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (3, 1)),
                                           ((4,), (3, 4)), ((2, 0), (1, 0)), ((), ())])
def test_masked_fill(dtype, shape, mshape):
    mask = np.random.default_rng(1).random(mshape) > 0.5
    check(lambda x: ember.masked_fill(x, E(mask), -2.0),
          lambda x: torch.masked_fill(x, T(mask), -2.0), [rand(*shape, dtype=dtype)])
    check(lambda x, v: x.masked_fill(E(mask), v), lambda x, v: x.masked_fill(T(mask), v),
          [rand(*shape, dtype=dtype), np.array(1.5, dtype=dtype)])


@pytest.mark.oracle
def test_masked_fill_noncontig_and_inplace():
    mask = MASK34
    check(lambda x: ember.masked_fill(x, E(mask), 0.0),
          lambda x: torch.masked_fill(x, T(mask), 0.0), [noncontig(rand(3, 4))])
    check(lambda x: (x * 1).masked_fill_(E(mask), 3.0) * 2,
          lambda x: (x * 1).masked_fill_(T(mask), 3.0) * 2, [rand(3, 4)])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,mshape", [((3, 4), (3, 4)), ((3, 4), (4,)), ((4,), (2, 4)),
                                           ((0, 4), (0, 4)), ((), ())])
def test_masked_select(dtype, shape, mshape):
    mask = np.random.default_rng(2).random(mshape) > 0.4
    check(lambda x: ember.masked_select(x, E(mask)),
          lambda x: torch.masked_select(x, T(mask)), [rand(*shape, dtype=dtype)])


# ============================================================================ take / take_along_dim
@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,idx", [((3, 4), long([0, -1, 11], [5, 5, -12])),
                                        ((5,), long(0, 0, 4)), ((), long(0, -1)),
                                        ((2, 3), np.array(4)), ((2, 3), np.zeros(0, np.int64))])
def test_take(dtype, shape, idx):
    check(lambda x: ember.take(x, E(idx)), lambda x: torch.take(x, T(idx)),
          [rand(*shape, dtype=dtype)])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,idx,dim", [
    ((3, 4), long([0, 3], [1, 1], [2, 0]), 1),
    ((3, 4), long([0, -1]), 1),  # broadcast index, negative index
    ((1, 4), long([0], [1], [3]), 1),  # broadcast input
    ((3, 4), long([2, 0, 2, 1]), 0),
    ((3, 4), long([0, 11, 1, 5]), None),
    ((2, 3, 4), np.random.default_rng(0).integers(-3, 3, (2, 5, 1)), -2),
])
def test_take_along_dim(dtype, shape, idx, dim):
    check(lambda x: ember.take_along_dim(x, E(idx), dim),
          lambda x: torch.take_along_dim(x, T(idx), dim), [rand(*shape, dtype=dtype)])


# ============================================================================ no-grad ops
@pytest.mark.oracle
@pytest.mark.parametrize("idx,n", [(long(0, 2, 1, 2), -1), (long([1, 0], [3, 3]), 5),
                                   (np.array(2), 3), (np.zeros(0, np.int64), 4)])
def test_one_hot(idx, n):
    out = ember.ops.one_hot(E(idx), n)
    ref = F.one_hot(T(idx), n)
    assert out.dtype == ember.int64 and not out.requires_grad
    np.testing.assert_array_equal(out.numpy(), ref.numpy())


@pytest.mark.oracle
@pytest.mark.parametrize("a", [np.array([[1.0, 0.0], [0.0, -3.0]]), np.array([0, 2, 0, 1]),
                               np.array(5.0), np.array(0.0), np.zeros((2, 0)),
                               np.random.default_rng(0).random((2, 3, 4)) > 0.5])
def test_nonzero_argwhere(a):
    e, t = ember.tensor(a), torch.tensor(a)
    np.testing.assert_array_equal(ember.nonzero(e).numpy(), torch.nonzero(t).numpy())
    np.testing.assert_array_equal(e.argwhere().numpy(), torch.argwhere(t).numpy())
    assert ember.nonzero(e).dtype == ember.int64
    et, tt = ember.nonzero(e, as_tuple=True), torch.nonzero(t, as_tuple=True)
    assert len(et) == len(tt)
    for u, w in zip(et, tt):
        np.testing.assert_array_equal(u.numpy(), w.numpy())
    x = ember.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)
    assert not ember.nonzero(x).requires_grad


# ============================================================================ helpers
@pytest.mark.oracle
@pytest.mark.parametrize("shape,dim,idx", [((3, 4), 1, long(0, -1)), ((3, 4), 0, long(1, 1)),
                                           ((2, 3, 4), -1, np.array(2)), ((4,), 0, long(3))])
def test_index_mask_and_index_fill(shape, dim, idx):
    m = ember.ops.index_mask(ember.zeros(*shape), dim, E(idx))
    ref = torch.zeros(shape, dtype=torch.bool).index_fill(dim, T(idx), True)
    assert m.shape == shape and m.dtype == bool
    np.testing.assert_array_equal(np.asarray(m), ref.numpy())
    check(lambda x: (x * 1).index_fill_(dim, E(idx), -5.0) * 2,
          lambda x: (x * 1).index_fill_(dim, T(idx), -5.0) * 2, [rand(*shape)])


@pytest.mark.oracle
@pytest.mark.parametrize("shape", [(3, 3), (7, 3), (3, 7), (4, 4, 4), (1, 5), (0, 2)])
@pytest.mark.parametrize("wrap", [False, True])
def test_diagonal_mask(shape, wrap):
    m = ember.ops.diagonal_mask(ember.zeros(*shape), wrap)
    ref = torch.zeros(shape).fill_diagonal_(1.0, wrap=wrap) != 0
    np.testing.assert_array_equal(m, ref.numpy())
    check(lambda x: (x * 1).fill_diagonal_(2.0, wrap) * 1,
          lambda x: (x * 1).fill_diagonal_(2.0, wrap) * 1, [rand(*shape)])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape,offset,d1,d2", [((3, 4), 0, 0, 1), ((3, 4), 1, 0, 1),
                                                 ((4, 3), -2, 0, 1), ((2, 3, 4), 1, 2, 0),
                                                 ((2, 3, 4), 0, -1, 1), ((3, 3), 5, 0, 1)])
def test_diagonal_embed_via_diagonal(dtype, shape, offset, d1, d2):
    check(lambda x: ember.diagonal(x, offset, d1, d2) * 3,
          lambda x: torch.diagonal(x, offset, d1, d2) * 3, [rand(*shape, dtype=dtype)])


def test_diagonal_embed_like_direct_and_double_backward():
    g = rand(2, 2, seed=1)
    out = ember.ops.diagonal_embed_like(g, (3, 2, 4), 1, 2, 0)
    assert out.shape == (3, 2, 4)
    np.testing.assert_array_equal(np.diagonal(out, 1, 2, 0), g)
    assert np.count_nonzero(out) == np.count_nonzero(g)
    x = ember.tensor(rand(3, 4), requires_grad=True)
    assert ember.autograd.gradgradcheck(lambda t: ember.diagonal(t, 1) ** 2, (x,))


# ============================================================================ gradcheck, 2nd order
def test_gradcheck_gather_getitem():
    x = ember.tensor(rand(3, 4), requires_grad=True)
    idx = E(long([0, 0, 3], [1, 2, 1], [3, 3, 3]))
    assert ember.autograd.gradcheck(lambda t: ember.gather(t, 1, idx) ** 2, (x,))
    assert ember.autograd.gradcheck(lambda t: t[E(long(2, 0, 2)), 1:] * t[1, 2], (x,))
    assert ember.autograd.gradcheck(lambda t: t[E(MASK34)] ** 3, (x,))
    idx0 = E(long([2, 0, 2, 2], [1, 1, 0, 2]))
    assert ember.autograd.gradgradcheck(lambda t: ember.gather(t, 0, idx0) ** 2, (x,))
    assert ember.autograd.gradgradcheck(lambda t: t[E(long(1, 1)), ::2] ** 3, (x,))
    v = ember.tensor(rand(2, seed=3), requires_grad=True)
    assert ember.autograd.gradcheck(lambda t, u: ember.index_put(t, (E(long(0, 2)), 1), u) ** 2,
                                    (x, v))
    s = ember.tensor(rand(3, 3, seed=4), requires_grad=True)
    sidx = E(_distinct_rows(3, 3, 4, seed=0))
    assert ember.autograd.gradgradcheck(lambda t, u: ember.scatter(t, 1, sidx, u) ** 2, (x, s))
    assert ember.autograd.gradgradcheck(
        lambda t, u: ember.scatter_add(t, 1, idx[:, :2], u[:, :2]) ** 2, (x, s))


@pytest.mark.oracle
@pytest.mark.parametrize("op", ["getitem", "gather", "index_select", "masked_fill"])
def test_second_order(op):
    a, w = rand(3, 4), rand(3, 4, seed=8)
    idx = long(2, 0, 2)
    gidx = long([0, 0, 3], [1, 2, 1], [3, 3, 3])

    def f(lib, x):
        C = E if lib is ember else T
        if op == "getitem":
            y = x[C(idx), 1:]
        elif op == "gather":
            y = lib.gather(x, 1, C(gidx))
        elif op == "index_select":
            y = lib.index_select(x, 1, C(idx))
        else:
            y = lib.masked_fill(x, C(MASK34), 1.0)
        return (y ** 3).sum()

    results = []
    for lib, grad in ((ember, ember.autograd.grad), (torch, torch.autograd.grad)):
        x = lib.tensor(a.copy(), requires_grad=True)
        (g,) = grad(f(lib, x), x, create_graph=True)
        ((g * lib.tensor(w)).sum()).backward()
        results.append((g.detach().numpy(), x.grad.numpy()))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-10)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-10)


# ============================================================================ properties
@st.composite
def _array_and_index(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    dim = draw(st.integers(0, len(shape) - 1))
    n = shape[dim]
    idx = draw(hnp.arrays(np.int64, st.integers(0, 6), elements=st.integers(-n, n - 1)))
    return shape, dim, idx


@settings(max_examples=60, deadline=None)
@given(_array_and_index())
def test_property_getitem_matches_numpy_and_scatter_add(case):
    shape, dim, idx = case
    a = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    key = (slice(None),) * dim + (E(idx),)
    nkey = (slice(None),) * dim + (idx,)
    x = ember.tensor(a, requires_grad=True)
    y = x[key]
    np.testing.assert_array_equal(y.numpy(force=True), a[nkey])
    g = np.random.default_rng(len(idx)).standard_normal(y.shape)
    y.backward(ember.tensor(g))
    expected = np.zeros(shape)
    np.add.at(expected, nkey, g)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)
    # d sum(x[idx]) / dx counts how often each position is selected
    x.grad = None
    x[key].sum().backward()
    counts = np.bincount(idx % shape[dim], minlength=shape[dim]).astype(np.float64)
    view = [1] * len(shape)
    view[dim] = shape[dim]
    np.testing.assert_array_equal(x.grad.numpy(), np.broadcast_to(counts.reshape(view), shape))


@settings(max_examples=40, deadline=None)
@given(_array_and_index(), st.booleans())
def test_property_gather_grad_counts(case, use_take_along):
    shape, dim, idx = case
    ishape = list(shape)
    ishape[dim] = len(idx)
    view = [1] * len(shape)
    view[dim] = len(idx)
    full = np.broadcast_to(idx.reshape(view), ishape)
    x = ember.tensor(rand(*shape), requires_grad=True)
    if use_take_along:
        y = ember.take_along_dim(x, E(full), dim)
    else:
        y = ember.gather(x, dim, E(full % shape[dim]))
    np.testing.assert_array_equal(y.numpy(force=True), np.take_along_axis(x.numpy(force=True),
                                                                          full, dim))
    y.sum().backward()
    counts = np.bincount(idx % shape[dim], minlength=shape[dim]).astype(np.float64)
    cview = [1] * len(shape)
    cview[dim] = shape[dim]
    np.testing.assert_array_equal(x.grad.numpy(), np.broadcast_to(counts.reshape(cview), shape))


@settings(max_examples=40, deadline=None)
@given(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                  elements=st.floats(-5, 5)))
def test_property_mask_roundtrip(a):
    """x[mask] then setting it back reproduces x; gradient of x[mask] is the mask."""
    mask = a > 0
    x = ember.tensor(a, requires_grad=True)
    sel = x[E(mask)]
    np.testing.assert_array_equal(sel.numpy(force=True), a[mask])
    sel.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), mask.astype(np.float64))
    y = ember.tensor(np.zeros_like(a))
    y[E(mask)] = sel.detach()
    np.testing.assert_array_equal(y.numpy(), np.where(mask, a, 0.0))


# ============================================================================ errors
def test_errors_getitem():
    x = ember.tensor(rand(3, 4))
    with pytest.raises(IndexError, match=r"getitem: index 5 is out of bounds for dim 0 with size"):
        x[5]
    with pytest.raises(IndexError, match=r"getitem: index -5 is out of bounds for dim 1 with size"):
        x[0, -5]
    with pytest.raises(IndexError, match=r"getitem: index 4 is out of bounds for dim 1 with size"):
        x[:, E(long(0, 4))]
    with pytest.raises(IndexError, match=r"too many indices for a tensor of dimension 2"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match=r"single ellipsis"):
        x[..., ...]
    with pytest.raises(IndexError, match=r"the shape of the mask \(4,\) at index 0 does not"):
        x[E(np.ones(4, bool))]
    with pytest.raises(IndexError, match=r"must be integer or bool tensors, got dtype float"):
        x[E(np.array([0.0]))]
    with pytest.raises(IndexError, match=r"could not be broadcast together with shapes \(2,\)"):
        x[E(long(0, 1)), E(long(0, 1, 2))]
    with pytest.raises(IndexError, match=r"unsupported index of type str"):
        x["a"]
    with pytest.raises(IndexError, match=r"__setitem__: index 3 is out of bounds for dim 0"):
        x[3] = 1.0


def test_errors_index_put():
    x = ember.tensor(rand(3, 4))
    v = ember.tensor(rand(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"index_put: shape mismatch: values of shape \(3,\) "
                                           r"cannot be broadcast to the indexed shape \(4,\)"):
        ember.index_put(x, 0, v)
    with pytest.raises(IndexError, match=r"index_put: index 7 is out of bounds"):
        ember.index_put(x, E(long(7)), v)


def test_errors_gather_scatter():
    x = ember.tensor(rand(3, 4))
    with pytest.raises(RuntimeError, match=r"gather: index of shape \(4, 2\) does not match input "
                                           r"of shape \(3, 4\) outside dim 1"):
        ember.gather(x, 1, E(np.zeros((4, 2), np.int64)))
    with pytest.raises(RuntimeError, match=r"gather: index has 1 dims but input has 2"):
        ember.gather(x, 1, E(long(0)))
    with pytest.raises(IndexError, match=r"gather: index 4 is out of bounds for dim 1 with size 4"):
        ember.gather(x, 1, E(long([4])))
    with pytest.raises(RuntimeError, match=r"gather: index -1 is out of bounds"):
        ember.gather(x, -1, E(long([-1])))
    with pytest.raises(RuntimeError, match=r"gather: expected an integer tensor for index"):
        ember.gather(x, 1, E(np.array([[0.0]])))
    with pytest.raises(IndexError, match=r"gather: dimension 2 out of range"):
        ember.gather(x, 2, E(long([0])))
    with pytest.raises(RuntimeError, match=r"scatter: index of shape \(1, 3\) does not fit src of "
                                           r"shape \(1, 2\)"):
        ember.scatter(x, 1, E(long([0, 1, 2])), ember.ones(1, 2, dtype=ember.float64))
    with pytest.raises(IndexError, match=r"scatter_add: index 9 is out of bounds for dim 0"):
        ember.scatter_add(x, 0, E(long([9])), ember.ones(1, 1, dtype=ember.float64))
    with pytest.raises(ValueError, match=r"scatter: reduce must be None, 'add' or 'multiply'"):
        ember.scatter(x, 0, E(long([0])), 1.0, reduce="max")
    with pytest.raises(IndexError, match=r"index_select: index 3 is out of bounds for dim 0"):
        ember.index_select(x, 0, E(long(0, 3)))
    with pytest.raises(RuntimeError, match=r"index_select: index must be 0-d or 1-d"):
        ember.index_select(x, 0, E(long([0])))
    with pytest.raises(RuntimeError, match=r"index_add: source of shape \(3, 4\) does not match"):
        ember.index_add(x, 0, E(long(0, 1)), ember.tensor(rand(3, 4)))
    with pytest.raises(IndexError, match=r"take: index 12 is out of bounds for a tensor of 12"):
        ember.take(x, E(long(12)))
    with pytest.raises(RuntimeError, match=r"take_along_dim: input of shape \(3, 4\) and indices "
                                           r"of shape \(2, 1\) cannot be broadcast"):
        ember.take_along_dim(x, E(long([0], [1])), 1)


def test_errors_masks_one_hot_fill_diagonal():
    x = ember.tensor(rand(3, 4))
    with pytest.raises(RuntimeError, match=r"masked_fill: mask of shape \(3,\) is not "
                                           r"broadcastable with input of shape \(3, 4\)"):
        ember.masked_fill(x, E(np.ones(3, bool)), 0.0)
    with pytest.raises(RuntimeError, match=r"masked_fill: expected a bool mask, got dtype int64"):
        ember.masked_fill(x, E(long(1, 0, 1, 0)), 0.0)
    with pytest.raises(RuntimeError, match=r"masked_fill: value must be a number or a 0-d"):
        ember.masked_fill(x, E(np.ones(4, bool)), ember.ones(2))
    with pytest.raises(RuntimeError, match=r"masked_select: expected a bool mask"):
        ember.masked_select(x, E(np.ones(4)))
    with pytest.raises(RuntimeError, match=r"one_hot: class values must be non-negative, got -1"):
        ember.ops.one_hot(E(long(0, -1)), 3)
    with pytest.raises(RuntimeError, match=r"one_hot: class value 3 is too large for "
                                           r"num_classes=3"):
        ember.ops.one_hot(E(long(0, 3)), 3)
    with pytest.raises(RuntimeError, match=r"one_hot: cannot infer the number of classes"):
        ember.ops.one_hot(E(np.zeros(0, np.int64)))
    with pytest.raises(RuntimeError, match=r"one_hot: expected an integer tensor"):
        ember.ops.one_hot(ember.tensor([0.0]))
    with pytest.raises(RuntimeError, match=r"fill_diagonal_: all dims must have the same size"):
        ember.ops.diagonal_mask(ember.zeros(3, 3, 2))
    with pytest.raises(RuntimeError, match=r"fill_diagonal_: the tensor must have at least 2"):
        ember.ops.diagonal_mask(ember.zeros(3))
    with pytest.raises(IndexError, match=r"index_fill: index 4 is out of bounds for dim 1"):
        ember.ops.index_mask(x, 1, E(long(4)))


def test_module_exports():
    for name in I.__all__:
        assert getattr(ember.ops, name) is getattr(I, name)
    assert "np" not in I.__all__


@pytest.mark.parametrize("shape,n", [((1000, 70), 2000), ((300, 4, 60), 900), ((50, 2000), 40)])
def test_scatter_add_rows_large_matches_add_at(shape, n):
    """The grouped fast path for large row scatters equals np.add.at (duplicates included)."""
    from ember.ops.indexing import scatter_add_rows

    rng = np.random.default_rng(1)
    idx = rng.integers(0, shape[0], size=n)
    g = rng.standard_normal((n,) + shape[1:])
    expected = np.zeros(shape)
    np.add.at(expected, idx, g)
    out = np.zeros(shape)
    scatter_add_rows(out, idx, g)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    # and through autograd: the gradient of x[idx] with repeated rows
    x = ember.zeros(shape, dtype=ember.float64, requires_grad=True)
    x[ember.tensor(idx)].backward(ember.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12, atol=1e-12)
