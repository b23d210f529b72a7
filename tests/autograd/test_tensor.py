"""The Tensor API: conversions, introspection, repr."""

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def test_introspection():
    t = ember.arange(24).reshape(2, 3, 4).float()
    assert t.shape == (2, 3, 4)
    assert t.ndim == 3 and t.dim() == 3
    assert t.size() == (2, 3, 4)
    assert t.size(1) == 3 and t.size(-1) == 4
    assert t.numel() == 24
    assert len(t) == 2
    assert t.dtype is ember.float32
    assert t.device == "cpu"
    assert t.is_floating_point()
    with pytest.raises(IndexError, match="size: dimension 3 out of range"):
        t.size(3)
    with pytest.raises(TypeError, match="len\\(\\) of a 0-d tensor"):
        len(ember.tensor(1.0))


def test_numpy_item_tolist():
    t = ember.tensor([[1.5, 2.0], [3.0, 4.0]])
    a = t.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    assert np.shares_memory(a, t.numpy())
    assert t.tolist() == [[1.5, 2.0], [3.0, 4.0]]
    assert ember.tensor([2.5]).item() == 2.5
    assert isinstance(ember.tensor(3).item(), int)
    assert float(ember.tensor(2.0)) == 2.0 and int(ember.tensor(7)) == 7
    with pytest.raises(RuntimeError, match=r"item: a tensor with 4 elements .*\(2, 2\)"):
        t.item()
    r = ember.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="numpy: can't call numpy\\(\\) on a tensor that "
                                           "requires grad"):
        r.numpy()
    assert r.detach().numpy().tolist() == [1.0, 1.0]


def test_dtype_conversions():
    t = ember.tensor([1.7, -2.2])
    assert t.double().dtype is ember.float64
    assert t.to(ember.float64).dtype is ember.float64
    assert t.to(dtype=ember.float16).dtype is ember.float16
    assert t.to("float64").dtype is ember.float64
    lt = t.long()
    assert lt.dtype is ember.int64
    assert lt.tolist() == torch.tensor([1.7, -2.2]).long().tolist() == [1, -2]
    assert lt.float().dtype is ember.float32
    assert t.int().dtype is ember.int32 and t.bool().dtype is ember.bool
    assert t.half().dtype is ember.float16
    assert t.to(ember.float32) is t  # no-op conversion returns self, like torch
    assert t.to("cpu") is t and t.cpu() is t
    assert t.to("cpu", ember.float64).dtype is ember.float64
    assert t.to(ember.zeros(1, dtype=ember.int64)).dtype is ember.int64
    c = t.to(ember.float32, copy=True)
    assert c is not t and c.tolist() == t.tolist()


def test_to_gradient_flows():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    (x.double() * 3).sum().backward()
    assert x.grad.dtype is ember.float32
    assert x.grad.tolist() == [3.0, 3.0]


def test_to_bad_device_or_dtype():
    t = ember.zeros(2)
    for dev in ("cuda", "mps", "cuda:1"):
        with pytest.raises(RuntimeError, match=f"to: device '{dev}' is not available"):
            t.to(dev)
    with pytest.raises(RuntimeError, match="to: device 'cuda'"):
        t.to(device="cuda")
    with pytest.raises(TypeError, match="to: unknown dtype"):
        t.to(dtype="complex512")


def test_repr_matches_torch_style():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    assert repr(x) == repr(torch.tensor([1.0, 2.0], requires_grad=True)) == \
        "tensor([1., 2.], requires_grad=True)"
    assert repr(ember.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(ember.tensor([1.5, 2.25])) == repr(torch.tensor([1.5, 2.25]))
    assert repr(ember.tensor([[1.0, 2.0], [3.0, 4.0]])) == repr(torch.tensor([[1.0, 2.0],
                                                                             [3.0, 4.0]]))
    assert repr(ember.tensor(1.0)) == "tensor(1.)"
    assert repr(ember.tensor([True, False])) == repr(torch.tensor([True, False]))
    assert repr(ember.tensor([1.0], dtype=ember.float64)) == "tensor([1.], dtype=ember.float64)"
    y = x * 2
    assert repr(y) == "tensor([2., 4.], grad_fn=<MulBackward>)"
    s = y.sum()
    assert "grad_fn=<SumBackward>" in repr(s)
    assert "dtype=ember.float32" in repr(ember.zeros(0))


def test_operators_with_numbers_and_arrays():
    t = ember.tensor([1.0, 2.0])
    assert (2 * t).tolist() == [2.0, 4.0]
    assert (1 - t).tolist() == [0.0, -1.0]
    assert (2 / t).tolist() == [2.0, 1.0]
    assert (t ** 2).tolist() == [1.0, 4.0]
    assert (2 ** t).tolist() == [2.0, 4.0]
    assert (-t).tolist() == [-1.0, -2.0]
    r = np.array([1.0, 1.0], dtype=np.float32) + t
    assert isinstance(r, ember.Tensor) and r.tolist() == [2.0, 3.0]
    assert (t > 1.5).tolist() == [False, True]
    assert bool(ember.tensor([1.0]))
    with pytest.raises(RuntimeError, match="bool: the truth value of a tensor with 2 elements"):
        bool(t)


def test_iteration_and_hash():
    t = ember.tensor([[1.0, 2.0], [3.0, 4.0]])
    rows = list(t)
    assert len(rows) == 2 and rows[1].tolist() == [3.0, 4.0]
    d = {t: 1}
    assert d[t] == 1


def test_tensor_constructor_class():
    t = ember.Tensor([1, 2])
    assert t.dtype is ember.float32  # like torch.Tensor([...])
    assert ember.is_tensor(t) and not ember.is_tensor(np.zeros(1))


def test_data_attribute():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    d = x.data
    assert not d.requires_grad
    d.mul_(2)
    assert x.detach().tolist() == [2.0, 4.0]
    x.data = ember.tensor([5.0, 6.0])
    assert x.detach().tolist() == [5.0, 6.0] and x.requires_grad


def test_where_method_takes_the_condition_first_like_torch():
    x = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]])
    cond, other = x > 0, np.full((1, 3), 0.5)
    a = ember.tensor(x, requires_grad=True)
    t = torch.tensor(x, requires_grad=True)
    got = a.where(ember.tensor(cond), ember.tensor(other))
    want = t.where(torch.tensor(cond), torch.tensor(other))
    np.testing.assert_array_equal(got.detach().numpy(), want.detach().numpy())
    got.sum().backward()
    want.sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), t.grad.numpy())
