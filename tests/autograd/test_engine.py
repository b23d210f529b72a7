"""The reverse-mode engine: backward, grad accumulation, hooks, autograd.grad, higher order."""

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def pair(values, dtype=np.float64, requires_grad=True):
    a = np.asarray(values, dtype=dtype)
    return (ember.tensor(a.copy(), requires_grad=requires_grad),
            torch.tensor(a.copy(), requires_grad=requires_grad))


def close(e, t, **kw):
    ev = e.detach().numpy() if isinstance(e, ember.Tensor) else np.asarray(e)
    tv = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    assert ev.shape == tv.shape
    np.testing.assert_allclose(ev, tv, rtol=kw.get("rtol", 1e-10), atol=kw.get("atol", 1e-12))


def test_requires_grad_flags():
    x = ember.zeros(3)
    assert not x.requires_grad and x.is_leaf and x.grad is None and x.grad_fn is None
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad = False
    assert not x.requires_grad
    y = ember.ones(2, requires_grad=True) * 2
    assert y.requires_grad and not y.is_leaf
    assert (ember.ones(2) * 2).requires_grad is False
    with pytest.raises(RuntimeError, match="requires_grad_: you can only change requires_grad "
                                           "of leaf tensors"):
        y.requires_grad_(False)


def test_grad_accumulates_across_backward_calls():
    (xe, xt) = pair([1.0, 2.0, 3.0])
    for _ in range(2):
        (xe * xe).sum().backward()
        (xt * xt).sum().backward()
    close(xe.grad, xt.grad)
    assert xe.grad.tolist() == [4.0, 8.0, 12.0]
    assert not xe.grad.requires_grad and xe.grad.is_leaf


def test_backward_with_gradient():
    xe, xt = pair([[1.0, 2.0], [3.0, 4.0]])
    g = np.array([[1.0, -1.0], [0.5, 2.0]])
    (xe.sin() * 3).backward(gradient=ember.tensor(g))
    (xt.sin() * 3).backward(gradient=torch.tensor(g))
    close(xe.grad, xt.grad)


def test_retain_graph():
    xe, xt = pair([1.0, 2.0])
    ye = (xe.exp() * xe).sum()
    yt = (xt.exp() * xt).sum()
    ye.backward(retain_graph=True)
    ye.backward()
    yt.backward(retain_graph=True)
    yt.backward()
    close(xe.grad, xt.grad)
    with pytest.raises(RuntimeError, match="Backward: trying to backward through the graph a "
                                           "second time.*retain_graph=True"):
        ye.backward()


def test_detach_shares_memory_and_drops_grad():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    d = y.detach()
    assert not d.requires_grad and d.grad_fn is None and d.is_leaf
    assert np.shares_memory(d.numpy(), y.detach().numpy())
    d[0] = 10.0
    assert y.detach().tolist() == [10.0, 4.0]
    z = (y.detach() * x).sum()
    z.backward()
    assert x.grad.tolist() == [10.0, 4.0]  # the detached factor is a constant


def test_hooks_on_leaf_and_nonleaf():
    xe, xt = pair([1.0, 2.0, 3.0])
    for x in (xe, xt):
        h = x.register_hook(lambda g: g * 10)
        m = x * 2
        m.register_hook(lambda g: g + 1)
        m.retain_grad()
        (m * m).sum().backward()
        h.remove()
    close(xe.grad, xt.grad)
    assert xe.grad.tolist() == [100.0, 180.0, 260.0]
    # after remove(), the leaf hook is gone
    xe.grad = None
    (xe * 2).sum().backward()
    assert xe.grad.tolist() == [2.0, 2.0, 2.0]


def test_hook_returning_none_only_observes():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.tolist()))
    (x * 3).sum().backward()
    assert seen == [[3.0, 3.0]] and x.grad.tolist() == [3.0, 3.0]
    y = ember.tensor([1.0])
    with pytest.raises(RuntimeError, match="register_hook: cannot register a hook on a tensor "
                                           "that does not require gradient"):
        y.register_hook(lambda g: g)


@pytest.mark.parametrize("retain_first", [True, False])
def test_retain_grad_sees_hooked_grad(retain_first):
    results = []
    for lib in (ember, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        m = x * 2
        if retain_first:
            m.retain_grad()
            m.register_hook(lambda g: g * 3)
        else:
            m.register_hook(lambda g: g * 3)
            m.retain_grad()
        (m * m).sum().backward()
        results.append((m.grad.tolist(), x.grad.tolist()))
    assert results[0] == results[1] == ([12.0, 24.0], [24.0, 48.0])
    assert m.retains_grad


def test_retain_grad_nonleaf_is_none_otherwise():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    m = x * 2
    (m * m).sum().backward()
    assert m.grad is None
    m2 = x * 2
    m2.retain_grad()
    for _ in range(2):
        (m2 * m2).sum().backward(retain_graph=True)
    assert m2.grad.tolist() == [8.0, 16.0]  # accumulates like a leaf


def test_grad_fn_name_and_next_functions():
    x = ember.tensor([1.0], requires_grad=True)
    c = ember.tensor([2.0])
    y = (x * c).exp()
    assert y.grad_fn.name() == "ExpBackward"
    (mul, nr), = y.grad_fn.next_functions
    assert mul.name() == "MulBackward" and nr == 0
    acc, none = mul.next_functions
    assert acc[0].name() == "AccumulateGrad" and acc[0].variable is x
    assert none == (None, 0)
    assert x.grad_fn is None


def test_autograd_grad_multiple_outputs_and_inputs():
    (ae, at), (be, bt) = pair([1.0, 2.0]), pair([3.0, -4.0])
    ge = ember.autograd.grad([(ae * be).sum(), (ae.sin() * ae).sum()], [ae, be])
    gt = torch.autograd.grad([(at * bt).sum(), (at.sin() * at).sum()], [at, bt])
    for e, t in zip(ge, gt):
        close(e, t)
    assert ae.grad is None and be.grad is None  # grad() does not touch .grad


def test_autograd_grad_outputs_vector():
    (xe, xt) = pair([[1.0, 2.0], [3.0, 4.0]])
    v = np.array([[1.0, 0.5], [-1.0, 2.0]])
    (ge,) = ember.autograd.grad(xe.tanh() * 2, xe, grad_outputs=ember.tensor(v))
    (gt,) = torch.autograd.grad(xt.tanh() * 2, xt, grad_outputs=torch.tensor(v))
    close(ge, gt)
    with pytest.raises(RuntimeError, match=r"grad: gradient has shape \(3,\) but output 0 has "
                                           r"shape \(2, 2\)"):
        ember.autograd.grad(xe * 2, xe, grad_outputs=ember.zeros(3, dtype=ember.float64))


def test_allow_unused():
    a = ember.tensor([1.0], requires_grad=True)
    b = ember.tensor([2.0], requires_grad=True)
    out = (a * 3).sum()
    with pytest.raises(RuntimeError, match=r"grad: input 1 \(shape \(1,\)\) was not used"):
        ember.autograd.grad(out, [a, b], retain_graph=True)
    ga, gb = ember.autograd.grad(out, [a, b], allow_unused=True, retain_graph=True)
    assert ga.tolist() == [3.0] and gb is None
    ga, gb = ember.autograd.grad(out, [a, b], materialize_grads=True)
    assert gb.tolist() == [0.0]


def test_grad_wrt_nonleaf_inputs():
    xe, xt = pair([1.0, -2.0, 0.5])
    res = []
    for x in (xe, xt):
        m = x * 3
        n = m.sin()
        o = (n * m).sum()
        lib = ember if isinstance(x, ember.Tensor) else torch
        res.append(lib.autograd.grad(o, [m, x, n]))
    for e, t in zip(*res):
        close(e, t)


def test_x3_sin_higher_derivatives():
    xe, xt = pair([0.3, -1.2, 2.5])
    derivs = []
    for x, lib in ((xe, ember), (xt, torch)):
        y = (x ** 3 * x.sin()).sum()
        d = []
        for k in range(3):
            (y,) = lib.autograd.grad(y, x, create_graph=k < 2)
            d.append(y)
            y = y.sum()
        derivs.append(d)
    for e, t in zip(*derivs):
        close(e, t, rtol=1e-9)
    # the third derivative is still a plain leaf-like result without graph
    assert not derivs[0][2].requires_grad


def _mlp(lib, x, w1, b1, w2):
    return ((x @ w1 + b1).tanh() @ w2).sum()


def test_mlp_second_derivatives_and_hvp():
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s) for s in [(4, 3), (3, 5), (5,), (5, 2)]]
    e = [ember.tensor(a, requires_grad=True) for a in arrays]
    t = [torch.tensor(a, requires_grad=True) for a in arrays]
    vs = [rng.standard_normal(a.shape) for a in arrays[1:]]
    out = []
    for lib, ts in ((ember, e), (torch, t)):
        loss = _mlp(lib, *ts)
        grads = lib.autograd.grad(loss, ts[1:], create_graph=True)
        # Hessian-vector product with respect to the parameters
        dot = sum((g * lib.tensor(v)).sum() for g, v in zip(grads, vs))
        hvp = lib.autograd.grad(dot, ts, allow_unused=True)
        out.append((grads, hvp))
    for ge, gt in zip(out[0][0], out[1][0]):
        close(ge, gt, rtol=1e-9)
    for he, ht in zip(out[0][1], out[1][1]):
        close(he, ht, rtol=1e-9)


def test_gradient_penalty():
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(s) for s in [(6, 3), (3, 4), (4,), (4, 1)]]
    res = []
    for lib in (ember, torch):
        x, w1, b1, w2 = [lib.tensor(a, requires_grad=True) for a in arrays]
        critic = ((x @ w1 + b1).tanh() @ w2).sum()
        (gx,) = lib.autograd.grad(critic, x, create_graph=True)
        penalty = ((gx * gx).sum(1).sqrt() - 1.0).pow(2).mean()
        penalty.backward()
        res.append([p.grad for p in (w1, b1, w2)])
    for e, t in zip(*res):
        close(e, t, rtol=1e-9)


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph")
def test_backward_create_graph_populates_differentiable_grad():
    xe, xt = pair([0.5, 1.5])
    for x in (xe, xt):
        (x ** 3).sum().backward(create_graph=True)
    assert xe.grad.requires_grad
    (ge,) = ember.autograd.grad(xe.grad.sum(), xe)
    (gt,) = torch.autograd.grad(xt.grad.sum(), xt)
    close(ge, gt)


def test_autograd_backward_several_roots():
    xe, xt = pair([1.0, 2.0])
    ge = np.array([1.0, -2.0])
    for x, lib in ((xe, ember), (xt, torch)):
        lib.autograd.backward([(x * x).sum(), x.exp() * 2], [None, lib.tensor(ge)])
    close(xe.grad, xt.grad)


def test_backward_inputs_argument():
    a = ember.tensor([1.0], requires_grad=True)
    b = ember.tensor([2.0], requires_grad=True)
    (a * b).sum().backward(inputs=[a])
    assert a.grad.tolist() == [2.0] and b.grad is None


def test_shared_subexpression_and_broadcast_grads():
    (ae, at), (be, bt) = pair(np.arange(6.0).reshape(2, 3)), pair([1.0, 2.0, 3.0])
    for a, b in ((ae, be), (at, bt)):
        c = a * b
        (c * c + c / b).sum().backward()
    close(ae.grad, at.grad)
    close(be.grad, bt.grad)
    assert be.grad.shape == (3,)


def test_deep_graph_no_recursion_error():
    x = ember.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000], rtol=1e-3)


def test_dtype_of_grad_matches_input():
    x = ember.tensor([1.0, 2.0], requires_grad=True)  # float32
    (x.double() ** 2).sum().backward()
    assert x.grad.dtype is ember.float32
    assert x.grad.tolist() == [2.0, 4.0]
