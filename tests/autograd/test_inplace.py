"""In-place ops: values, version counters, autograd through them, and the safety checks."""

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")



def _run_both(fn):
    """fn(lib) -> tensor; compare ember and torch values."""
    e, t = fn(ember), fn(torch)
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=1e-6)
    assert str(e.dtype).split(".")[1] == str(t.dtype).split(".")[1]
    return e, t


def test_inplace_values_on_plain_tensors():
    def chain(lib):
        t = lib.tensor([1.0, -2.0, 3.0, 0.5])
        t.add_(1).mul_(2).sub_(0.5).div_(4).clamp_(-0.2, 1.0)
        t.add_(lib.tensor([1.0, 1.0, 1.0, 1.0]), alpha=2).sub_(lib.ones(4), alpha=3)
        t.mul_(lib.tensor([1.0, 2.0, 3.0, 4.0]))
        t += 1
        t -= lib.tensor(0.5)
        t *= 2
        t /= 4
        return t

    e, _ = _run_both(chain)
    assert e._version[0] == 12


def test_zero_fill_copy_setitem_values_and_versions():
    t = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.zero_() is t and t.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    t.fill_(2.5)
    assert t.tolist() == [[2.5, 2.5], [2.5, 2.5]]
    t.fill_(ember.tensor(7.0))
    assert t.tolist() == [[7.0, 7.0], [7.0, 7.0]]
    t.copy_(ember.tensor([1.0, 2.0]))  # broadcast
    assert t.tolist() == [[1.0, 2.0], [1.0, 2.0]]
    t.copy_(ember.tensor([[1, 2], [3, 4]]))  # int -> float cast
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]] and t.dtype is ember.float32
    t[0] = 9.0
    t[1, 1] = ember.tensor(8.0)
    t[:, 0] = ember.tensor([5.0, 6.0])
    assert t.tolist() == [[5.0, 9.0], [6.0, 8.0]]
    t[t > 5] = 0.0
    assert t.tolist() == [[5.0, 0.0], [0.0, 0.0]]
    assert t._version[0] == 9
    with pytest.raises(RuntimeError, match=r"fill_: expected a number or a one-element tensor, "
                                           r"got shape \(2,\)"):
        t.fill_(ember.ones(2))
    with pytest.raises(RuntimeError, match=r"copy_: a value of shape \(3,\) cannot be broadcast "
                                           r"to the tensor's shape \(2, 2\)"):
        t.copy_(ember.ones(3))


def test_int_tensor_rejects_float_results_like_torch():
    for op, arg in (("add_", 1.5), ("mul_", 2.5), ("div_", 2), ("add_", ember.tensor([0.5]))):
        t = ember.tensor([1, 2, 3])
        with pytest.raises(RuntimeError, match=f"{op}: result type ember.float32 can't be cast "
                                               f"to the tensor's dtype ember.int64"):
            getattr(t, op)(arg)
        assert t.tolist() == [1, 2, 3]
        tt = torch.tensor([1, 2, 3])
        with pytest.raises(RuntimeError, match="can't be cast"):
            getattr(tt, op)(torch.tensor([0.5]) if isinstance(arg, ember.Tensor) else arg)
    t = ember.tensor([1, 2, 3])
    t.add_(2).mul_(3)
    assert t.tolist() == [9, 12, 15] and t.dtype is ember.int64


def test_parameters_under_no_grad_bump_version():
    p = ember.tensor([1.0, 2.0], requires_grad=True)
    pt = torch.tensor([1.0, 2.0], requires_grad=True)
    for lib, q in ((ember, p), (torch, pt)):
        with lib.no_grad():
            q.add_(1)
            q.mul_(2)
            q.sub_(lib.tensor([1.0, 1.0]), alpha=0.5)
            q.div_(2)
            q.clamp_(0, 2.5)
            q.copy_(q * 2)
            q.fill_(3)
            q.zero_()
            q[0] = 7.0
    assert p.tolist() == pt.tolist() == [7.0, 0.0]
    assert p._version[0] == pt._version == 9
    assert p.requires_grad and p.is_leaf and p.grad_fn is None


@pytest.mark.parametrize("op", [
    lambda p: p.add_(1), lambda p: p.mul_(2), lambda p: p.sub_(1), lambda p: p.div_(2),
    lambda p: p.zero_(), lambda p: p.fill_(1.0), lambda p: p.copy_(ember.ones(2)),
    lambda p: p.clamp_(0, 1), lambda p: p.__setitem__(0, 1.0), lambda p: p.exp_(),
])
def test_inplace_on_leaf_requiring_grad_raises(op):
    p = ember.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"_: a leaf tensor that requires grad \(shape \(2,\)\) "
                                           r"cannot be changed in place"):
        op(p)
    assert p.detach().tolist() == [1.0, 2.0]
    assert p._version[0] == 0


def test_inplace_on_nonleaf_gives_torch_gradients():
    xv = np.array([1.0, -2.0, 3.0])
    res = []
    for lib in (ember, torch):
        x = lib.tensor(xv, requires_grad=True)
        y = x * 2
        y.add_(1)
        y.mul_(3)
        y.sub_(x)
        y.div_(lib.tensor([1.0, 2.0, 4.0]))
        y.clamp_(-5, 5)
        (y * y).sum().backward()
        res.append((y.detach().numpy(), x.grad.numpy(), y.grad_fn.name() if lib is ember
                    else None))
    np.testing.assert_allclose(res[0][0], res[1][0])
    np.testing.assert_allclose(res[0][1], res[1][1])
    assert not res[0][2].startswith("Add")


def test_inplace_with_grad_requiring_other():
    res = []
    for lib in (ember, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        buf = lib.zeros(2)
        buf.add_(x * x)  # buf had no grad; becomes part of the graph
        buf.mul_(x)
        assert buf.requires_grad and not buf.is_leaf
        buf.sum().backward()
        res.append(x.grad.tolist())
    assert res[0] == res[1] == [3.0, 12.0]


def test_setitem_on_nonleaf_gradients():
    res = []
    for lib in (ember, torch):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        v = lib.tensor(5.0, requires_grad=True)
        y = x * 2
        y[0] = 0
        y[2] = v
        (y * y).sum().backward()
        res.append((x.grad.tolist(), v.grad.tolist()))
    assert res[0] == res[1]


def test_modified_saved_output_detected():
    for lib in (ember, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = x.exp()
        y.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation|modified by an "
                                               "in-place operation"):
            y.sum().backward()
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.add_(1)
    with pytest.raises(RuntimeError, match=r"ExpBackward: one of the tensors needed for gradient "
                                           r"computation \(a tensor of shape \(2,\) output\) has "
                                           r"been modified by an in-place operation: it was saved "
                                           r"at version 0 and is now at version 1"):
        y.sum().backward()


def test_modified_saved_leaf_under_no_grad_detected():
    for lib in (ember, torch):
        a = lib.tensor([1.0, 2.0], requires_grad=True)
        b = lib.tensor([3.0, 4.0], requires_grad=True)
        z = a * b
        with lib.no_grad():
            a.add_(1)
        with pytest.raises(RuntimeError, match="modified by an in-?place operation"):
            z.sum().backward()
    # but an op that did not save ``a`` does not care
    a = ember.tensor([1.0, 2.0], requires_grad=True)
    z = a + 1
    with ember.no_grad():
        a.add_(1)
    z.sum().backward()
    assert a.grad.tolist() == [1.0, 1.0]


def test_modified_view_of_saved_tensor_detected():
    for lib in (ember, torch):
        x = lib.tensor([1.0, 2.0, 3.0], requires_grad=True)
        base = lib.tensor([1.0, 2.0, 3.0])
        s = x * base
        view = base[1:]
        view.mul_(2)
        assert (base._version if lib is torch else base._version[0]) == 1
        with pytest.raises(RuntimeError, match="modified by an in-?place operation"):
            s.sum().backward()
    # and the other way round: the base modified, a view saved
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    base = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
    s = x * base[0]
    base.zero_()
    with pytest.raises(RuntimeError, match="MulBackward: .* modified by an in-place operation"):
        s.sum().backward()


def test_views_share_version_counter():
    t = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
    v1 = t[0]
    v2 = t.reshape(4)
    v3 = t.transpose(0, 1)
    v1.add_(1)
    assert t._version[0] == v1._version[0] == v2._version[0] == v3._version[0] == 1
    assert t.tolist() == [[2.0, 3.0], [3.0, 4.0]]
    d = t.detach()
    d.mul_(2)
    assert t._version[0] == 2 and t.tolist() == [[4.0, 6.0], [6.0, 8.0]]
    c = t.clone()
    c.add_(1)
    assert t._version[0] == 2


def test_detach_then_modify_detected():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()
    y.detach().zero_()
    with pytest.raises(RuntimeError, match="ExpBackward: .* modified by an in-place operation"):
        y.sum().backward()


def test_inplace_on_view_of_requires_grad_is_clear_error():
    x = ember.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="add_: in-place change of a view of a tensor that "
                                           "requires grad is not supported"):
        y[1:].add_(1)


def test_sgd_style_update_loop():
    w = ember.tensor([1.0, -1.0], requires_grad=True)
    wt = torch.tensor([1.0, -1.0], requires_grad=True)
    for lib, p in ((ember, w), (torch, wt)):
        for _ in range(3):
            loss = ((p - lib.tensor([3.0, 2.0])) ** 2).sum()
            loss.backward()
            with lib.no_grad():
                p.sub_(p.grad, alpha=0.1)
            p.grad.zero_()
    np.testing.assert_allclose(w.detach().numpy(), wt.detach().numpy(), rtol=1e-6)
