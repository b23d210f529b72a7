"""Every user-facing error names the op and the offending shapes/dtypes (no bare NumPy errors)."""

import pytest

import ember


def _no_numpy_message(excinfo, op):
    msg = str(excinfo.value)
    assert msg.startswith(op) or f"{op}:" in msg or f"{op}Backward" in msg, msg
    return msg


def test_incompatible_broadcast_shapes():
    a, b = ember.ones(2, 3), ember.ones(4)
    for op, fn in (("add", lambda: a + b), ("mul", lambda: a * b), ("sub", lambda: a - b),
                   ("div", lambda: a / b)):
        with pytest.raises((RuntimeError, ValueError), match=rf"{op}: .*\(2, 3\).*\(4,\)") as e:
            fn()
        _no_numpy_message(e, op)
    x = ember.ones(2, 3, requires_grad=True)
    with pytest.raises((RuntimeError, ValueError), match=r"mul: .*\(2, 3\).*\(4,\)"):
        x * b


def test_matmul_shape_mismatch_names_op():
    with pytest.raises((RuntimeError, ValueError), match=r"matmul.*\(2, 3\).*\(4, 5\)") as e:
        ember.ones(2, 3) @ ember.ones(4, 5)
    _no_numpy_message(e, "matmul")


def test_backward_non_scalar_without_gradient():
    y = ember.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"backward: grad can be implicitly created only for "
                                           r"single-element outputs, but output 0 has shape "
                                           r"\(2, 3\)"):
        y.backward()
    with pytest.raises(RuntimeError, match=r"grad: grad can be implicitly created only"):
        ember.autograd.grad(y, y)


def test_backward_twice_through_freed_graph():
    x = ember.ones(3, requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"Backward: trying to backward through the graph a "
                                           r"second time .*retain_graph=True") as e:
        y.backward()
    msg = str(e.value)
    assert msg.split(":")[0].endswith("Backward") and msg.split(":")[0] != "Backward"
    z = x.sin().sum()
    ember.autograd.grad(z, x)
    with pytest.raises(RuntimeError, match=r"(Sum|Sin)Backward: trying to backward through"):
        ember.autograd.grad(z, x)


@pytest.mark.parametrize("dtype", [ember.int64, ember.int32, ember.bool, ember.uint8])
def test_requires_grad_on_integer_tensor(dtype):
    with pytest.raises(RuntimeError, match=rf"requires_grad_: only floating-point tensors can "
                                           rf"require gradients, got dtype ember\.{dtype.name}"):
        ember.zeros(2, dtype=dtype).requires_grad_()
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients"):
        ember.tensor([1, 2], dtype=dtype, requires_grad=True)
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients"):
        ember.zeros(2, dtype=dtype, requires_grad=True)
    t = ember.zeros(2, dtype=dtype)
    with pytest.raises(RuntimeError, match="only floating-point tensors can require gradients"):
        t.requires_grad = True


def test_inplace_change_of_saved_tensor():
    x = ember.ones(3, requires_grad=True)
    w = ember.full((3,), 2.0)
    y = (x * w).sum()
    w.mul_(3)
    with pytest.raises(RuntimeError, match=r"MulBackward: one of the tensors needed for gradient "
                                           r"computation \(a tensor of shape \(3,\) input\) has "
                                           r"been modified by an in-place operation"):
        y.backward()


def test_nonexistent_dtype_or_device():
    with pytest.raises(TypeError, match=r"zeros: unknown dtype 'float99'; expected one of "
                                        r"ember\.float16"):
        ember.zeros(2, dtype="float99")
    with pytest.raises(TypeError, match="ones: unknown dtype"):
        ember.ones(2, dtype=object)
    with pytest.raises(TypeError, match="to: unknown dtype"):
        ember.zeros(2).to(dtype="float99")
    with pytest.raises(RuntimeError, match=r"tensor: device 'cuda' is not available: this build "
                                           r"of ember runs on the CPU only"):
        ember.tensor([1.0], device="cuda")
    with pytest.raises(RuntimeError, match=r"to: device 'mps' is not available"):
        ember.zeros(2).to("mps")
    with pytest.raises(RuntimeError, match=r"full: device 'cuda:0'"):
        ember.full((2,), 1.0, device="cuda:0")


def test_wrong_gradient_shape_to_backward():
    y = ember.ones(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"backward: gradient has shape \(3, 2\) but output 0 "
                                           r"has shape \(2, 3\)"):
        y.backward(ember.ones(3, 2))


def test_grad_input_not_requiring_grad():
    x = ember.ones(2, requires_grad=True)
    c = ember.ones(2)
    with pytest.raises(RuntimeError, match="grad: input 1 does not require grad"):
        ember.autograd.grad((x * c).sum(), [x, c])


def test_shape_errors_name_op():
    t = ember.ones(2, 3)
    with pytest.raises((RuntimeError, ValueError), match=r"reshape.*\(2, 3\)|reshape.*6"):
        t.reshape(4, 2)
    with pytest.raises(IndexError, match=r"sum: dimension 5 out of range"):
        t.sum(5)
