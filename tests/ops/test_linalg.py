"""matmul family, einsum, tensordot, kron against PyTorch: values, gradients, errors."""

import numpy as np
import pytest

import ember
import ember.ops as E
from tests.oracle import FLOATS, check, noncontig, rand, torch

MATMUL_SHAPES = [
    ((3,), (3,)),                  # dot
    ((1,), (1,)),
    ((0,), (0,)),
    ((2, 3), (3, 4)),              # mm
    ((1, 1), (1, 1)),
    ((0, 3), (3, 4)), ((2, 0), (0, 4)), ((2, 3), (3, 0)),
    ((3,), (3, 4)),                # vector @ matrix
    ((2, 3), (3,)),                # matrix @ vector
    ((5, 2, 3), (3, 4)),           # batched @ matrix (folded)
    ((2, 3), (5, 3, 4)),           # matrix @ batched
    ((5, 2, 3), (5, 3, 4)),        # bmm
    ((5, 1, 2, 3), (4, 3, 2)),     # broadcast batch dims
    ((1, 2, 3), (6, 3, 4)),
    ((4,), (2, 5, 4, 3)),          # 1-D x N-D
    ((2, 5, 3, 4), (4,)),          # N-D x 1-D
    ((0, 2, 3), (3, 4)),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sa,sb", MATMUL_SHAPES)
def test_matmul_oracle(sa, sb, dtype):
    a, b = rand(*sa, dtype=dtype, seed=1), rand(*sb, dtype=dtype, seed=2)
    check(lambda x, y: E.matmul(x, y), torch.matmul, [a, b])
    check(lambda x, y: x @ y, lambda x, y: x @ y, [a, b])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("sa,sb", [((2, 3), (3, 4)), ((5, 2, 3), (3, 4)), ((4,), (4, 3))])
def test_matmul_one_input_requires_grad(sa, sb, dtype):
    a, b = rand(*sa, dtype=dtype, seed=1), rand(*sb, dtype=dtype, seed=2)
    check(E.matmul, torch.matmul, [a, b], grad=[0])
    check(E.matmul, torch.matmul, [a, b], grad=[1])


def test_matmul_integer():
    a = np.arange(6).reshape(2, 3)
    out = E.matmul(ember.tensor(a), ember.tensor(a.T.copy()))
    assert out.dtype == ember.int64
    np.testing.assert_array_equal(out.numpy(), a @ a.T)


@pytest.mark.oracle
@pytest.mark.parametrize("sa,sb", [((4, 5), (5, 3)), ((2, 4, 5), (5, 3)), ((2, 4, 5), (2, 5, 3))])
def test_matmul_noncontiguous(sa, sb):
    a, b = noncontig(rand(*sa, seed=3)), noncontig(rand(*sb, seed=4))
    assert not a.flags.c_contiguous
    x, y = ember.from_numpy(a).requires_grad_(), ember.from_numpy(b).requires_grad_()
    xt, yt = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out, outt = x @ y, xt @ yt
    np.testing.assert_allclose(out.detach().numpy(), outt.detach().numpy(), rtol=1e-12)
    g = rand(*outt.shape, seed=5)
    out.backward(ember.tensor(g))
    outt.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y.grad.numpy(), yt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
def test_mm_bmm_mv_dot_outer_inner(dtype):
    r = lambda *s, seed=0: rand(*s, dtype=dtype, seed=seed)  # noqa: E731
    check(E.mm, torch.mm, [r(3, 4), r(4, 2, seed=1)])
    check(lambda a, b: a.mm(b), lambda a, b: a.mm(b), [r(1, 4), r(4, 1, seed=1)])
    check(E.bmm, torch.bmm, [r(2, 3, 4), r(2, 4, 5, seed=1)])
    check(E.mv, torch.mv, [r(3, 4), r(4, seed=1)])
    check(E.dot, torch.dot, [r(5), r(5, seed=1)])
    check(E.vdot, torch.vdot, [r(5), r(5, seed=1)])
    check(E.outer, torch.outer, [r(3), r(4, seed=1)])
    check(E.ger, torch.ger, [r(3), r(0, seed=1)])
    check(E.inner, torch.inner, [r(4), r(4, seed=1)])
    check(E.inner, torch.inner, [r(2, 3, 4), r(5, 4, seed=1)])
    check(E.inner, torch.inner, [r(), r(2, 3, seed=1)])


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("beta,alpha", [(1, 1), (0.5, 2.0), (0, 1), (1, -1.5)])
def test_addmm_addmv_baddbmm(dtype, beta, alpha):
    r = lambda *s, seed=0: rand(*s, dtype=dtype, seed=seed)  # noqa: E731
    kw = dict(beta=beta, alpha=alpha)
    for c in [r(3, 2), r(2), r(1, 1), r(3, 1)]:
        check(lambda c, a, b: E.addmm(c, a, b, **kw), lambda c, a, b: torch.addmm(c, a, b, **kw),
              [c, r(3, 4, seed=1), r(4, 2, seed=2)])
    check(lambda c, a, b: E.addmv(c, a, b, **kw), lambda c, a, b: torch.addmv(c, a, b, **kw),
          [r(3), r(3, 4, seed=1), r(4, seed=2)])
    for c in [r(2, 3, 5), r(3, 5), r(1)]:
        check(lambda c, a, b: E.baddbmm(c, a, b, **kw),
              lambda c, a, b: torch.baddbmm(c, a, b, **kw),
              [c, r(2, 3, 4, seed=1), r(2, 4, 5, seed=2)])


def test_addmm_beta_zero_ignores_nan():
    c = np.full((2, 2), np.nan)
    out = E.addmm(ember.tensor(c), ember.eye(2, dtype=ember.float64),
                  ember.eye(2, dtype=ember.float64), beta=0)
    np.testing.assert_array_equal(out.numpy(), np.eye(2))


# ---------------------------------------------------------------------------- einsum
EINSUM_CASES = [
    ("ij,jk->ik", [(3, 4), (4, 5)]),
    ("ij,jk", [(3, 4), (4, 5)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 4, 6), (2, 3, 6, 5)]),
    ("i,i->", [(5,), (5,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("ii->i", [(4, 4)]),
    ("ii", [(4, 4)]),
    ("ii->", [(3, 3)]),
    ("ij->ji", [(3, 4)]),
    ("ij->i", [(3, 4)]),
    ("ij->", [(3, 4)]),
    ("ij->j", [(3, 4)]),
    ("iij->ij", [(3, 3, 2)]),
    ("...ij,...jk->...ik", [(2, 3, 4), (2, 4, 5)]),
    ("...ij,...jk->...ik", [(3, 4), (4, 5)]),
    ("...ij,...jk", [(6, 1, 3, 4), (2, 4, 5)]),
    ("...ij,jk->...ik", [(2, 3, 3, 4), (4, 5)]),
    ("b...,b...->b", [(3, 4, 5), (3, 4, 5)]),
    ("ij,ij->ij", [(1, 3), (2, 3)]),
    ("ij,ij->j", [(2, 3), (1, 3)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("bn,anm,bm->ba", [(2, 3), (4, 3, 5), (2, 5)]),
    ("Ab,bc", [(2, 3), (3, 4)]),
    ("i,i,i->i", [(4,), (4,), (4,)]),
    ("ij,jk->ik", [(0, 3), (3, 2)]),
    ("ij,jk->ik", [(2, 0), (0, 2)]),
]


@pytest.mark.oracle
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("eq,shapes", EINSUM_CASES)
def test_einsum_oracle(eq, shapes, dtype):
    arrays = [rand(*s, dtype=dtype, seed=k) for k, s in enumerate(shapes)]
    check(lambda *ts: E.einsum(eq, *ts), lambda *ts: torch.einsum(eq, *ts), arrays)


@pytest.mark.oracle
def test_einsum_list_operands_and_spaces():
    arrays = [rand(3, 4, seed=1), rand(4, 2, seed=2)]
    check(lambda a, b: ember.einsum("ij, jk -> ik", [a, b]),
          lambda a, b: torch.einsum("ij,jk->ik", [a, b]), arrays)


@pytest.mark.oracle
@pytest.mark.parametrize("dims", [2, 1, 0, ([1, 0], [0, 1]), ([2], [0]), ([-1], [1])])
def test_tensordot(dims):
    a, b = rand(3, 4, 5, seed=1), rand(4, 3, 2, seed=2)
    if dims == 2:
        b = rand(4, 5, 2, seed=2)
    elif dims == 1:
        b = rand(5, 2, seed=2)
    elif dims == ([2], [0]):
        b = rand(5, 2, seed=2)
    elif dims == ([-1], [1]):
        b = rand(2, 5, 3, seed=2)
    check(lambda x, y: E.tensordot(x, y, dims), lambda x, y: torch.tensordot(x, y, dims), [a, b])


@pytest.mark.oracle
@pytest.mark.parametrize("sa,sb", [((2, 3), (4, 5)), ((3,), (2,)), ((2, 1, 3), (2, 2)), ((), (3,))])
def test_kron(sa, sb):
    check(E.kron, torch.kron, [rand(*sa, seed=1), rand(*sb, seed=2)])


# ---------------------------------------------------------------------------- gradcheck, 2nd order
def _t(*shape, seed):
    return ember.tensor(rand(*shape, seed=seed), requires_grad=True)


@pytest.mark.parametrize("fn,shapes", [
    (E.matmul, [(3, 4), (4, 2)]),
    (E.matmul, [(2, 3, 4), (4,)]),
    (E.matmul, [(4,), (2, 4, 3)]),
    (E.matmul, [(2, 1, 3, 4), (3, 4, 2)]),
    (lambda a, b: E.einsum("bij,bjk->bik", a, b), [(2, 3, 4), (2, 4, 2)]),
    (lambda a: E.einsum("ii->i", a), [(3, 3)]),
    (lambda a, b: E.einsum("...ij,...jk", a, b), [(2, 1, 2, 3), (3, 3, 2)]),
    (lambda a, b, c: E.einsum("ij,jk,kl->il", a, b, c), [(2, 3), (3, 2), (2, 2)]),
    (lambda c, a, b: E.addmm(c, a, b, beta=0.5, alpha=2.0), [(2,), (2, 3), (3, 2)]),
], ids=["mm", "nd_vec", "vec_nd", "bcast", "einsum_bmm", "einsum_diag", "einsum_ell",
        "einsum_3", "addmm"])
def test_gradcheck_and_gradgradcheck(fn, shapes):
    inputs = [_t(*s, seed=k) for k, s in enumerate(shapes)]
    assert ember.autograd.gradcheck(fn, inputs)
    assert ember.autograd.gradgradcheck(fn, inputs)


@pytest.mark.oracle
@pytest.mark.parametrize("name,fe,ft,shapes", [
    ("matmul", E.matmul, torch.matmul, [(2, 3, 4), (4, 5)]),
    ("matmul_vec", E.matmul, torch.matmul, [(4,), (3, 4, 2)]),
    ("einsum", lambda a, b: E.einsum("bhqd,bhkd->bhqk", a, b),
     lambda a, b: torch.einsum("bhqd,bhkd->bhqk", a, b), [(2, 2, 3, 4), (2, 2, 5, 4)]),
])
def test_second_order_vs_torch(name, fe, ft, shapes):
    """d/d(inputs) of <grad_a(<f(a, b), v>), w>: mixed second derivatives (f is bilinear)."""
    arrays = [rand(*s, seed=k) for k, s in enumerate(shapes)]
    xs = [ember.tensor(a, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out_t = ft(*ts)
    v = rand(*out_t.shape, seed=7)
    w = rand(*shapes[0], seed=8)
    ge = ember.autograd.grad((fe(*xs) * ember.tensor(v)).sum(), xs[0], create_graph=True)[0]
    gt = torch.autograd.grad((out_t * torch.tensor(v)).sum(), ts[0], create_graph=True)[0]
    np.testing.assert_allclose(ge.detach().numpy(), gt.detach().numpy(), rtol=1e-10)
    he = ember.autograd.grad((ge * ember.tensor(w)).sum(), xs[1])[0]
    ht = torch.autograd.grad((gt * torch.tensor(w)).sum(), ts[1])[0]
    np.testing.assert_allclose(he.numpy(), ht.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.oracle
def test_second_order_matmul_through_activation():
    """Hessian-vector product of sum(tanh(a @ b)) w.r.t. a."""
    a, b = rand(3, 4, seed=1), rand(4, 2, seed=2)
    v = rand(3, 4, seed=3)
    x = ember.tensor(a, requires_grad=True)
    xt = torch.tensor(a, requires_grad=True)
    (ge,) = ember.autograd.grad(E.tanh(x @ ember.tensor(b)).sum(), x, create_graph=True)
    (gt,) = torch.autograd.grad(torch.tanh(xt @ torch.tensor(b)).sum(), xt, create_graph=True)
    (he,) = ember.autograd.grad((ge * ember.tensor(v)).sum(), x)
    (ht,) = torch.autograd.grad((gt * torch.tensor(v)).sum(), xt)
    np.testing.assert_allclose(he.numpy(), ht.numpy(), rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------------- errors
def test_matmul_errors():
    with pytest.raises(RuntimeError, match=r"matmul: cannot multiply shapes \(128, 784\) and "
                                           r"\(512, 10\)"):
        E.matmul(ember.zeros(128, 784), ember.zeros(512, 10))
    with pytest.raises(RuntimeError, match=r"matmul: cannot multiply shapes \(3,\) and \(4,\)"):
        E.matmul(ember.zeros(3), ember.zeros(4))
    with pytest.raises(RuntimeError, match=r"matmul: .*batch dimensions \(2,\) and \(3,\)"):
        E.matmul(ember.zeros(2, 3, 4), ember.zeros(3, 4, 5))
    with pytest.raises(RuntimeError, match=r"matmul: both arguments need to be at least 1-D"):
        E.matmul(ember.tensor(2.0), ember.zeros(3))
    with pytest.raises(RuntimeError, match=r"matmul: expected all operands to have the same "
                                           r"dtype, got float32 and float64"):
        E.matmul(ember.zeros(2, 2), ember.zeros(2, 2, dtype=ember.float64))
    with pytest.raises(RuntimeError, match=r"cannot multiply shapes \(2, 3\) and \(2, 3\)"):
        ember.zeros(2, 3) @ ember.zeros(2, 3)


def test_other_errors():
    z = ember.zeros
    with pytest.raises(RuntimeError, match=r"mm: expected 2-D matrices, got shapes \(2, 3, 4\)"):
        E.mm(z(2, 3, 4), z(4, 2))
    with pytest.raises(RuntimeError, match=r"mm: cannot multiply shapes \(2, 3\) and \(4, 2\)"):
        E.mm(z(2, 3), z(4, 2))
    with pytest.raises(RuntimeError, match=r"bmm: expected 3-D tensors"):
        E.bmm(z(2, 3), z(3, 2))
    with pytest.raises(RuntimeError, match=r"bmm: batch sizes differ: shapes \(2, 3, 4\) and "
                                           r"\(3, 4, 5\)"):
        E.bmm(z(2, 3, 4), z(3, 4, 5))
    with pytest.raises(RuntimeError, match=r"mv: expected a 2-D matrix and a 1-D vector"):
        E.mv(z(2, 3), z(3, 1))
    with pytest.raises(RuntimeError, match=r"dot: expected 1-D tensors, got shapes \(2, 3\)"):
        E.dot(z(2, 3), z(3))
    with pytest.raises(RuntimeError, match=r"dot: inconsistent tensor sizes: shapes \(3,\) and "
                                           r"\(4,\)"):
        E.dot(z(3), z(4))
    with pytest.raises(RuntimeError, match=r"outer: expected 1-D tensors"):
        E.outer(z(3, 1), z(4))
    with pytest.raises(RuntimeError, match=r"addmm: input of shape \(4,\) cannot be broadcast "
                                           r"to the product's shape \(2, 2\)"):
        E.addmm(z(4), z(2, 3), z(3, 2))
    with pytest.raises(RuntimeError, match=r"tensordot: contracted dimensions have different "
                                           r"sizes"):
        E.tensordot(z(2, 3), z(4, 5), dims=1)
    with pytest.raises(TypeError, match=r"matmul: expected tensors, got a list"):
        E.matmul([[1.0]], z(1, 1))


def test_einsum_errors():
    z = ember.zeros
    with pytest.raises(ValueError, match=r"einsum: equation 'ij,jk->ik' names 2 operands but 1"):
        E.einsum("ij,jk->ik", z(2, 3))
    with pytest.raises(ValueError, match=r"einsum: operand 0 has 3 dims \(shape \(2, 3, 4\)\) "
                                         r"but subscripts 'ij' name 2"):
        E.einsum("ij->i", z(2, 3, 4))
    with pytest.raises(ValueError, match=r"einsum: subscript 'j' has size 4 in operand 1"):
        E.einsum("ij,jk->ik", z(2, 3), z(4, 5))
    with pytest.raises(ValueError, match=r"einsum: output subscript 'z' does not appear"):
        E.einsum("ij->z", z(2, 3))
    with pytest.raises(ValueError, match=r"einsum: invalid character '2'"):
        E.einsum("i2->i", z(2, 3))


def test_numpy_fast_path_and_methods():
    a, b = rand(3, 4), rand(4, 2)
    out = E.matmul(a, b)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, a @ b)
    t = ember.tensor(a)
    np.testing.assert_allclose(t.mm(ember.tensor(b)).numpy(), a @ b)
    np.testing.assert_allclose(t.mv(ember.tensor(b[:, 0])).numpy(), a @ b[:, 0])
