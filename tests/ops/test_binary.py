"""Oracle tests for ember.ops.binary: arithmetic, comparisons, logic, where, clamp, promotion."""

import numpy as np
import pytest

import ember
from tests.oracle import FLOATS, check, noncontig, rand, torch

pytestmark = pytest.mark.oracle

# broadcasting, size-1 and size-0 dims, 0-d operands
SHAPES = [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)), ((), (3,)), ((2, 3), ()),
          ((0, 3), (1, 3)), ((2, 1, 3), (4, 1)), ((1,), (2, 0))]

ARITH = {
    "add": (lambda a, b: a + b, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, lambda a, b: a * b),
    "div": (lambda a, b: a / b, lambda a, b: a / b),
    "maximum": (ember.maximum, torch.maximum),
    "minimum": (ember.minimum, torch.minimum),
}


def _pair(sa, sb, dtype, op):
    a = rand(*sa, dtype=dtype, seed=1)
    b = rand(*sb, dtype=dtype, seed=2, away_from=0.0, gap=0.3) if op == "div" else \
        rand(*sb, dtype=dtype, seed=2)
    return a, b


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sa,sb", SHAPES)
@pytest.mark.parametrize("op", list(ARITH))
def test_arith_broadcast(op, sa, sb, dtype):
    fe, ft = ARITH[op]
    a, b = _pair(sa, sb, dtype, op)
    check(fe, ft, [a, b])
    check(fe, ft, [b, a])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("op", list(ARITH))
def test_arith_noncontig(op, dtype):
    fe, ft = ARITH[op]
    a, b = _pair((3, 4), (4, 3), dtype, op)
    check(lambda x, y: fe(x, y.T), lambda x, y: ft(x, y.T), [noncontig(a), b])
    big = rand(6, 4, dtype=dtype, seed=3)[::2]  # sliced rows
    check(fe, ft, [big, noncontig(b.T.copy())])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("s", [2.5, -3, 0.5, 2])
def test_tensor_scalar(s, dtype):
    a = rand(3, 4, dtype=dtype, away_from=0.0, gap=0.2)
    for fe in (lambda x: x + s, lambda x: s + x, lambda x: x - s, lambda x: s - x,
               lambda x: x * s, lambda x: s * x, lambda x: x / s if s else x,
               lambda x: s / x):
        check(fe, fe, [a])


@pytest.mark.parametrize("dtype", FLOATS)
def test_alpha(dtype):
    a, b = rand(3, 4, dtype=dtype, seed=1), rand(4, dtype=dtype, seed=2)
    check(lambda x, y: ember.add(x, y, alpha=2.5), lambda x, y: torch.add(x, y, alpha=2.5), [a, b])
    check(lambda x, y: ember.sub(x, y, alpha=-3), lambda x, y: torch.sub(x, y, alpha=-3), [a, b])
    check(lambda x, y: x.add(y, alpha=0.5), lambda x, y: x.add(y, alpha=0.5), [b, a])


@pytest.mark.parametrize("dtype", FLOATS)
def test_numpy_operands(dtype):
    a, b = rand(3, 4, dtype=dtype, seed=1), rand(4, dtype=dtype, seed=2, away_from=0.0, gap=0.3)
    for op in ("__add__", "__sub__", "__mul__", "__truediv__"):
        ropname = "__r" + op[2:]
        check(lambda x, op=op: getattr(x, op)(b),
              lambda x, op=op: getattr(x, op)(torch.tensor(b)), [a])
        check(lambda x, r=ropname: getattr(x, r)(b),
              lambda x, r=ropname: getattr(x, r)(torch.tensor(b)), [a])
    # ndarray on the left defers to the tensor's reflected operator
    e = ember.tensor(a, requires_grad=True)
    out = b[:, None].repeat(3, 1).T * e
    assert isinstance(out, ember.Tensor)
    np.testing.assert_allclose(out.detach().numpy(), b * a, rtol=1e-6)
    out = b - e
    assert isinstance(out, ember.Tensor)
    np.testing.assert_allclose(out.detach().numpy(), b - a, rtol=1e-6)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 1), (4,)), ((), (2, 3))])
def test_remainder_floordiv(sa, sb, dtype):
    a = rand(*sa, dtype=dtype, low=-5, high=5, seed=4)
    b = rand(*sb, dtype=dtype, seed=5, away_from=0.0, gap=0.4)
    # keep a/b away from integers (kinks of remainder, jumps of floor division)
    q = np.broadcast_arrays(a / b)[0]
    assert np.all(np.abs(q - np.round(q)) > 1e-3)
    # torch has no derivative of remainder for `other`: that one is checked by gradcheck
    check(lambda x, y: x % y, lambda x, y: x % y, [a, b], grad=[0])
    check(lambda x, y: x // y, lambda x, y: x // y, [a, b], grad=[])
    check(lambda x: x % 1.5, lambda x: x % 1.5, [a])
    check(lambda x: 7.25 % x, lambda x: 7.25 % x, [b], grad=[])
    check(lambda x: x // -2, lambda x: x // -2, [a], grad=[])
    check(lambda x: 3 // x, lambda x: 3 // x, [b], grad=[])


@pytest.mark.parametrize("mode", [None, "floor", "trunc"])
def test_div_rounding_modes(mode):
    a = rand(3, 4, low=-6, high=6, seed=6)
    b = rand(4, seed=7, away_from=0.0, gap=0.4)
    check(lambda x, y: ember.div(x, y, rounding_mode=mode),
          lambda x, y: torch.div(x, y, rounding_mode=mode), [a, b],
          grad=None if mode is None else [])
    ia = np.array([[-7, 7, -8, 9], [5, -5, 0, 3]], dtype=np.int64)
    ib = np.array([2, -3, 3, 4], dtype=np.int64)
    check(lambda x, y: ember.div(x, y, rounding_mode=mode),
          lambda x, y: torch.div(x, y, rounding_mode=mode), [ia, ib])
    check(lambda x: ember.div(x, 2, rounding_mode=mode),
          lambda x: torch.div(x, 2, rounding_mode=mode), [ia])


def test_int_remainder_floordiv():
    ia = np.array([[-7, 7, -8, 9], [5, -5, 0, 3]], dtype=np.int64)
    ib = np.array([2, -3, 3, 4], dtype=np.int64)
    check(lambda x, y: x % y, lambda x, y: x % y, [ia, ib])
    check(lambda x, y: x // y, lambda x, y: x // y, [ia, ib])
    check(lambda x: x // 2.5, lambda x: x // 2.5, [ia])
    check(lambda x: x % 3, lambda x: x % 3, [ia])


@pytest.mark.parametrize("dtype", FLOATS)
def test_pow(dtype):
    a = rand(3, 4, dtype=dtype, low=0.2, high=2.0, seed=8)
    b = rand(4, dtype=dtype, low=-2, high=2, seed=9)
    check(lambda x, y: x ** y, lambda x, y: x ** y, [a, b])
    check(lambda x, y: x ** y, lambda x, y: x ** y, [b.reshape(4, 1) ** 2 + 0.1, a.T])
    for s in (2, 3, 0.5, -1.5, 0, 1, -2):
        check(lambda x, s=s: x ** s, lambda x, s=s: x ** s, [a])
        rpow = (lambda x, s=s: s ** x) if s > 0 else (lambda x, s=s: x ** s)
        check(rpow, rpow, [b])
    neg = rand(2, 3, dtype=dtype, seed=10)
    for s in (2, 3, -1, 0):
        check(lambda x, s=s: x ** s, lambda x, s=s: x ** s, [neg])
    check(lambda x: ember.pow(x, 2.5), lambda x: torch.pow(x, 2.5), [a])


def test_pow_at_zero():
    a = np.array([0.0, 1.0, 2.0, 0.0])
    b = np.array([2.0, 3.0, 0.5, 0.0])
    check(lambda x, y: x ** y, lambda x, y: x ** y, [a, b])
    check(lambda x: x ** 2, lambda x: x ** 2, [a])
    check(lambda x: x ** 0, lambda x: x ** 0, [a])


def test_pow_int():
    ia = np.array([[1, 2, 3], [-2, 0, 5]], dtype=np.int64)
    check(lambda x: x ** 2, lambda x: x ** 2, [ia])
    check(lambda x: x ** 0.5, lambda x: x ** 0.5, [np.abs(ia)])
    check(lambda x: 2 ** x, lambda x: 2 ** x, [np.abs(ia)])
    check(lambda x, y: x ** y, lambda x, y: x ** y, [ia, np.abs(ia)])
    with pytest.raises(RuntimeError):
        ember.tensor(ia) ** -1


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("fn", ["maximum", "minimum"])
def test_max_min_ties(fn, dtype):
    a = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype=dtype)
    b = np.array([[1.0, 0.0, 3.0], [0.5, 4.0, -2.0]], dtype=dtype)
    check(getattr(ember, fn), getattr(torch, fn), [a, b])
    check(getattr(ember, fn), getattr(torch, fn), [a, np.array(2.0, dtype=dtype)])
    out = check(lambda x: getattr(ember, fn)(x, x), lambda x: getattr(torch, fn)(x, x), [a])
    assert out[0].shape == (2, 3)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sc,sa,sb", [((3, 4), (3, 4), (3, 4)), ((3, 1), (4,), (3, 4)),
                                      ((4,), (3, 4), ()), ((0, 2), (1, 2), (2,))])
def test_where(sc, sa, sb, dtype):
    cond = rand(*sc, seed=11) > 0
    a, b = rand(*sa, dtype=dtype, seed=12), rand(*sb, dtype=dtype, seed=13)
    check(lambda c, x, y: ember.where(c, x, y), lambda c, x, y: torch.where(c, x, y),
          [cond, a, b])
    check(lambda c, x: ember.where(c, x, 0.0), lambda c, x: torch.where(c, x, 0.0), [cond, a])
    check(lambda c, y: ember.where(c, 1.5, y), lambda c, y: torch.where(c, 1.5, y), [cond, b])


def test_where_mixed_dtypes():
    cond = np.array([True, False, True])
    a = np.array([1.0, 2.0, 3.0], np.float32)
    b = np.array([4.0, 5.0, 6.0], np.float64)
    i = np.array([7, 8, 9], np.int64)
    check(lambda c, x, y: ember.where(c, x, y), lambda c, x, y: torch.where(c, x, y),
          [cond, a, b])
    check(lambda c, x, y: ember.where(c, x, y), lambda c, x, y: torch.where(c, x, y),
          [cond, i, a])
    check(lambda c, x: ember.where(c, x, 0), lambda c, x: torch.where(c, x, 0), [cond, i])


@pytest.mark.parametrize("dtype", FLOATS)
def test_clamp_scalar(dtype):
    a = np.array([[-2.0, -1.0, -0.5, 0.0], [0.5, 1.0, 1.5, 3.0]], dtype=dtype)
    # bounds hit exactly: the gradient passes at the boundaries (inclusive)
    for lo, hi in [(-1.0, 1.0), (None, 0.5), (-0.5, None), (2.0, 1.0), (0, 1)]:
        check(lambda x, lo=lo, hi=hi: ember.clamp(x, lo, hi),
              lambda x, lo=lo, hi=hi: torch.clamp(x, lo, hi), [a])
        method = lambda x, lo=lo, hi=hi: x.clamp(min=lo, max=hi)  # noqa: E731
        check(method, method, [a])
    with pytest.raises(ValueError):
        ember.clamp(ember.tensor(a), None, None)


@pytest.mark.parametrize("dtype", FLOATS)
def test_clamp_tensor_bounds(dtype):
    a = rand(3, 4, dtype=dtype, seed=14)
    lo = rand(4, dtype=dtype, seed=15, low=-1.5, high=0)
    hi = rand(3, 1, dtype=dtype, seed=16, low=0, high=1.5)
    a[0, :] = lo  # exact ties at the lower bound
    a[1, 0] = hi[1, 0]  # and at the upper one
    check(lambda x, l, h: ember.clamp(x, l, h), lambda x, l, h: torch.clamp(x, l, h),
          [a, lo, hi])
    check(lambda x, l: ember.clamp(x, min=l), lambda x, l: torch.clamp(x, min=l), [a, lo])
    check(lambda x, h: ember.clamp(x, max=h), lambda x, h: torch.clamp(x, max=h), [a, hi])
    # lo > hi everywhere: torch gives hi
    check(lambda x, l, h: ember.clamp(x, l, h), lambda x, l, h: torch.clamp(x, l, h),
          [a, hi.reshape(3, 1) + 2, lo])
    # lo == hi, and 0-d tensor bounds
    eqb = np.array([-1.0, 0.0, a[0, 2], 3.0], dtype=dtype)
    check(lambda x, l, h: ember.clamp(x, l, h), lambda x, l, h: torch.clamp(x, l, h),
          [a, eqb, eqb.copy()])
    check(lambda x, l, h: ember.clamp(x, l, h), lambda x, l, h: torch.clamp(x, l, h),
          [a, np.array(-0.5, dtype=dtype), np.array(0.5, dtype=dtype)])


def test_clamp_int():
    ia = np.array([-3, -1, 0, 2, 5], np.int64)
    check(lambda x: ember.clamp(x, -1, 2), lambda x: torch.clamp(x, -1, 2), [ia])
    check(lambda x: ember.clamp(x, -0.5, 2.5), lambda x: torch.clamp(x, -0.5, 2.5), [ia])


CMP = ["eq", "ne", "lt", "le", "gt", "ge"]


@pytest.mark.parametrize("op", CMP)
@pytest.mark.parametrize("sa,sb", [((3, 4), (3, 4)), ((3, 1), (4,)), ((), (2,)), ((0,), (1,))])
def test_comparisons(op, sa, sb):
    a = np.round(rand(*sa, seed=17))
    b = np.round(rand(*sb, seed=18))
    check(getattr(ember, op), getattr(torch, op), [a, b], grad=[])
    check(lambda x: getattr(ember, op)(x, 1.0), lambda x: getattr(torch, op)(x, 1.0), [a],
          grad=[])
    dunder = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__",
              "ge": "__ge__"}[op]
    out = check(lambda x, y: getattr(x, dunder)(y), lambda x, y: getattr(x, dunder)(y),
                [a, b])
    assert out[0].dtype == ember.bool
    assert out[0].grad_fn is None and not out[0].requires_grad
    # mixed dtypes compare after promotion
    check(getattr(ember, op), getattr(torch, op), [a.astype(np.float32), b.astype(np.int64)],
          grad=[])


def test_logical_bool_ops():
    a = rand(3, 4, seed=19) > 0
    b = rand(4, seed=20) > 0
    for fe in (lambda x, y: x & y, lambda x, y: x | y, lambda x, y: x ^ y):
        check(fe, fe, [a, b])
    check(lambda x: ~x, lambda x: ~x, [a])
    check(ember.logical_not, torch.logical_not, [a])
    check(ember.logical_not, torch.logical_not, [rand(5, seed=21).round()], grad=[])
    check(ember.logical_and, torch.logical_and, [rand(5, seed=1).round(), a[0, :1]])
    check(ember.logical_xor, torch.logical_xor, [rand(5, seed=2).round(), rand(5).round()],
          grad=[])
    check(lambda x: ~x, lambda x: ~x, [np.array([0, 5, -3], np.int64)])
    with pytest.raises(TypeError):
        ~ember.tensor([1.0])


def test_bool_sub_raises():
    a = ember.tensor([True, False])
    with pytest.raises(TypeError, match="sub"):
        a - a


PROMO = [
    (np.float32, np.float64), (np.int64, np.float32), (np.int32, np.float64),
    (np.int32, np.int64), (np.uint8, np.int8), (np.bool_, np.int64), (np.bool_, np.float32),
    (np.int16, np.uint8), (np.bool_, np.bool_), (np.int64, np.int64), (np.float16, np.int64),
]


@pytest.mark.parametrize("da,db", PROMO)
@pytest.mark.parametrize("op", ["add", "mul", "div", "maximum", "eq"])
def test_promotion_tensor_tensor(da, db, op):
    a = (rand(2, 3, seed=22) * 3).astype(da)
    b = (rand(3, seed=23, away_from=0.0, gap=0.5) * 3).astype(db)
    if op == "div":
        b = np.where(b == 0, 1, b).astype(db)
    for x, y in ((a, b), (b, a)):
        check(getattr(ember, op), getattr(torch, op), [x, y], grad=[], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("da,db", PROMO)
def test_promotion_zero_dim(da, db):
    """0-d tensors only decide the dtype when they are of a higher category (as in torch)."""
    a = (rand(2, 3, seed=22) * 3).astype(da)
    b = np.asarray(rand(seed=24) * 3).astype(db)
    for x, y in ((a, b), (b, a)):
        check(ember.add, torch.add, [x, y], grad=[], rtol=1e-3, atol=1e-3)
        check(ember.mul, torch.mul, [x, y], grad=[], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("da", [np.float32, np.float64, np.int64, np.int32, np.uint8, np.bool_,
                                np.float16])
@pytest.mark.parametrize("s", [2.5, 3, True, -1])
def test_promotion_scalar(da, s):
    a = (rand(2, 3, seed=25) * 3).astype(da)
    for fe in (lambda x: x + s, lambda x: s * x, lambda x: x / s, lambda x: s / (x + 10),
               lambda x: x > s):
        check(fe, fe, [a], grad=[], rtol=1e-3, atol=1e-3)


def test_promotion_examples():
    i = ember.tensor([1, 2])
    assert (i * 2.5).dtype == ember.float32
    assert (i / i).dtype == ember.float32
    assert (i / 2).dtype == ember.float32
    f32 = ember.ones(2)
    f64 = ember.ones(2, dtype=ember.float64)
    assert (f32 + f64).dtype == ember.float64
    assert (ember.tensor([True]) + i).dtype == ember.int64
    assert (i + f64).dtype == ember.float64
    assert (ember.tensor([1], dtype=ember.int32) + f32).dtype == ember.float32
    assert (ember.tensor([1, 200], dtype=ember.uint8) + -1).tolist() == [0, 199]
    assert (f32 + np.float64(2.0)).dtype == ember.float32  # NumPy scalars are weak, like floats
    assert (f32 * ember.tensor(2.0, dtype=ember.float64)).dtype == ember.float32


def test_grad_dtypes_after_promotion():
    a = ember.tensor(rand(3, dtype=np.float32), requires_grad=True)
    b = ember.tensor(rand(3, dtype=np.float64), requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == ember.float32 and b.grad.dtype == ember.float64
    np.testing.assert_allclose(a.grad.numpy(), b.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum", "remainder", "eq", "pow"])
def test_broadcast_error_message(op):
    a = ember.ones(2, 3, requires_grad=True)
    b = ember.ones(4)
    with pytest.raises((RuntimeError, ValueError)) as info:
        getattr(ember, op)(a, b)
    msg = str(info.value)
    assert op in msg and "(2, 3)" in msg and "(4,)" in msg
    with pytest.raises((RuntimeError, ValueError)) as info:
        getattr(ember, op)(a.detach().numpy(), b.numpy())
    msg = str(info.value)
    assert op in msg and "(2, 3)" in msg and "(4,)" in msg


def test_where_clamp_broadcast_error_message():
    with pytest.raises((RuntimeError, ValueError)) as info:
        ember.where(ember.ones(3) > 0, ember.ones(2, 3), ember.ones(2))
    assert "where" in str(info.value) and "(2,)" in str(info.value)
    with pytest.raises((RuntimeError, ValueError)) as info:
        ember.clamp(ember.ones(2, 3), ember.zeros(2), None)
    assert "clamp" in str(info.value) and "(2,)" in str(info.value)


def test_list_operand_error():
    with pytest.raises(TypeError, match="ember.tensor"):
        ember.add(ember.ones(2), [1.0, 2.0])


def test_equal_allclose_isclose():
    a = ember.tensor([1.0, 2.0, float("nan")])
    assert not ember.equal(a, a)
    assert ember.equal(ember.tensor([1, 2]), ember.tensor([1, 2]))
    assert not ember.equal(ember.tensor([1, 2]), ember.tensor([[1, 2]]))
    assert ember.allclose(a, a, equal_nan=True)
    np.testing.assert_array_equal(ember.isclose(a, a + 1e-9).numpy(),
                                  torch.isclose(torch.tensor(a.numpy()),
                                                torch.tensor(a.numpy()) + 1e-9).numpy())
