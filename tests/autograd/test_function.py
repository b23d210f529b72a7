"""Custom autograd Functions, gradcheck and gradgradcheck."""

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _cube(lib):
    class Cube(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return x ** 3 * k

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3 * x ** 2 * ctx.k, None

    return Cube


def test_single_output_function_with_non_tensor_arg():
    a = np.array([0.5, -1.0, 2.0])
    res = []
    for lib in (ember, torch):
        x = lib.tensor(a, requires_grad=True)
        y = _cube(lib).apply(x, 2.0)
        assert y.requires_grad and not y.is_leaf
        (g1,) = lib.autograd.grad(y.sum(), x, create_graph=True)
        (g2,) = lib.autograd.grad(g1.sum(), x)
        res.append((y.detach().numpy(), g1.detach().numpy(), g2.numpy()))
    for e, t in zip(*res):
        np.testing.assert_allclose(e, t)
    np.testing.assert_allclose(res[0][2], 12 * a)
    assert ember.tensor(1.0, requires_grad=True).__class__ is ember.Tensor
    y = _cube(ember).apply(ember.tensor([1.0], requires_grad=True), 1.0)
    assert y.grad_fn.name() == "CubeBackward"


def test_needs_input_grad():
    seen = []

    class F(ember.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, n):
            seen.append(ctx.needs_input_grad)
            return a * b * n

        @staticmethod
        def backward(ctx, g):
            return g, None, None

    a = ember.ones(2, requires_grad=True)
    b = ember.ones(2)
    F.apply(a, b, 3).sum().backward()
    assert seen == [(True, False, False)]
    assert a.grad.tolist() == [1.0, 1.0]
    # no input requires grad: the output is a plain tensor
    out = F.apply(b, b, 2)
    assert not out.requires_grad and out.grad_fn is None


def _two(lib):
    class Two(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            ctx.save_for_backward(a, b)
            idx = (a > 0).long()
            ctx.mark_non_differentiable(idx)
            return a * b, a + b, idx

        @staticmethod
        def backward(ctx, gp, gs, gi):
            a, b = ctx.saved_tensors
            return gp * b + gs, gp * a + gs

    return Two


def test_multiple_outputs_and_non_differentiable():
    av, bv = np.array([1.0, -2.0]), np.array([3.0, 4.0])
    res = []
    for lib in (ember, torch):
        a = lib.tensor(av, requires_grad=True)
        b = lib.tensor(bv, requires_grad=True)
        p, s, idx = _two(lib).apply(a, b)
        assert not idx.requires_grad and p.requires_grad and s.requires_grad
        (p.sum() * 2 + (s * s).sum()).backward()
        res.append((a.grad.numpy(), b.grad.numpy(), idx.tolist()))
    for e, t in zip(*res):
        np.testing.assert_allclose(e, t)
    # only one output used: the other's gradient is zero
    a = ember.tensor(av, requires_grad=True)
    b = ember.tensor(bv, requires_grad=True)
    p, s, _ = _two(ember).apply(a, b)
    s.sum().backward()
    assert a.grad.tolist() == [1.0, 1.0]


def test_wrong_number_of_grads_is_clear_error():
    class Bad(ember.autograd.Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g

    a = ember.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadBackward: backward returned 1 gradients, "
                                           r"expected 2"):
        Bad.apply(a, ember.ones(2)).sum().backward()


def test_wrong_gradient_shape_is_clear_error():
    class BadShape(ember.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return ember.ones(5)

    a = ember.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadShapeBackward: backward returned a gradient of "
                                           r"shape \(5,\) for input 0 of shape \(2,\)"):
        BadShape.apply(a).sum().backward()


def test_save_for_backward_rejects_non_tensors():
    class F(ember.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a, 3)
            return a

    with pytest.raises(TypeError, match="save_for_backward: expected tensors"):
        F.apply(ember.ones(1, requires_grad=True))


class Exp(ember.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y = x.exp()
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


def test_saved_output_double_backward():
    x = ember.tensor([0.5, 1.0], dtype=ember.float64, requires_grad=True)
    (g,) = ember.autograd.grad(Exp.apply(x).sum(), x, create_graph=True)
    (g2,) = ember.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(g2.numpy(), np.exp([0.5, 1.0]))


def test_saved_output_modified_in_place_detected():
    x = ember.tensor([0.5, 1.0], requires_grad=True)
    y = Exp.apply(x)
    y.add_(1)
    with pytest.raises(RuntimeError, match="ExpBackward: one of the tensors needed for gradient "
                                           "computation .* modified by an in-place operation"):
        y.sum().backward()


def test_saved_input_modified_in_place_detected():
    x = ember.tensor([0.5, 1.0], requires_grad=True)
    w = ember.tensor([2.0, 3.0])
    y = _cube(ember).apply(x * w, 1.0)
    xw = y.grad_fn.ctx._saved[0]
    with ember.no_grad():
        xw.mul_(2)
    with pytest.raises(RuntimeError, match="CubeBackward: .* modified by an in-place operation"):
        y.sum().backward()


def test_function_retain_graph_and_freed():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = _cube(ember).apply(x, 1.0).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [6.0, 24.0]
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_gradcheck_passes_and_detects_wrong_backward():
    x = ember.randn(4, dtype=ember.float64, requires_grad=True)
    w = ember.randn(4, 3, dtype=ember.float64, requires_grad=True)
    assert ember.autograd.gradcheck(lambda a, b: (a @ b).tanh(), (x, w))
    assert ember.autograd.gradcheck(lambda a: _cube(ember).apply(a, 2.0), (x,))

    class Wrong(ember.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return g * 3 * a  # should be 2 * a

    with pytest.raises(RuntimeError, match="gradcheck: Jacobian mismatch for output 0 with "
                                           "respect to differentiable input 0"):
        ember.autograd.gradcheck(Wrong.apply, (x,))
    assert ember.autograd.gradcheck(Wrong.apply, (x,), raise_exception=False) is False


def test_gradgradcheck():
    x = ember.randn(3, dtype=ember.float64, requires_grad=True)
    y = ember.randn(3, dtype=ember.float64, requires_grad=True)
    assert ember.autograd.gradgradcheck(lambda a, b: a.sin() * b.exp() * a, (x, y))
    assert ember.autograd.gradgradcheck(lambda a: _cube(ember).apply(a, 2.0), (x,))
    assert ember.autograd.gradgradcheck(Exp.apply, (x,))

    class WrongSecond(ember.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save_for_backward(a)
            return a * a * a

        @staticmethod
        def backward(ctx, g):
            (a,) = ctx.saved_tensors
            return g * 3 * a.detach() ** 2  # right first derivative, no second derivative

    assert ember.autograd.gradcheck(WrongSecond.apply, (x,))
    assert not ember.autograd.gradgradcheck(WrongSecond.apply, (x,), raise_exception=False)


def test_gradcheck_float32_warns():
    x = ember.randn(2, requires_grad=True)
    with pytest.warns(UserWarning, match="gradcheck: input 0 is ember.float32"):
        assert ember.autograd.gradcheck(lambda a: a * 2, (x,), eps=1e-2, atol=1e-3, rtol=1e-3)
