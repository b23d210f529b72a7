"""Tensor creation: dtype inference, shapes as varargs or tuples, seeding, devices."""

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("data,expected,torch_expected", [
    ([1.0, 2.0], ember.float32, torch.float32),
    ([1, 2], ember.int64, torch.int64),
    ([True, False], ember.bool, torch.bool),
    ([[1, 2.5], [3, 4]], ember.float32, torch.float32),
    (3, ember.int64, torch.int64),
    (3.5, ember.float32, torch.float32),
    (True, ember.bool, torch.bool),
])
def test_tensor_dtype_inference_matches_torch(data, expected, torch_expected):
    t = ember.tensor(data)
    assert t.dtype is expected
    assert t.dtype.name == str(torch_expected).split(".")[1]
    np.testing.assert_array_equal(t.numpy(), torch.tensor(data).numpy())


def test_tensor_keeps_ndarray_dtype_and_copies():
    a = np.array([1.0, 2.0])  # float64
    t = ember.tensor(a)
    assert t.dtype is ember.float64
    a[0] = 100.0
    assert t.tolist() == [1.0, 2.0]  # ember.tensor copies
    assert ember.tensor(np.array([1, 2], dtype=np.int32)).dtype is ember.int32
    assert ember.tensor([1, 2], dtype=ember.float64).dtype is ember.float64


def test_from_numpy_shares_memory():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    t = ember.from_numpy(a)
    assert t.dtype is ember.float64
    assert np.shares_memory(t.numpy(), a)
    a[0, 0] = 42.0
    assert t[0, 0].item() == 42.0
    t.add_(1)
    assert a[1, 2] == 6.0
    with pytest.raises(TypeError, match="from_numpy"):
        ember.from_numpy([1, 2])


@pytest.mark.parametrize("name", ["zeros", "ones", "empty", "rand", "randn"])
def test_shape_varargs_or_tuple(name):
    fn = getattr(ember, name)
    for t in (fn(2, 3), fn((2, 3)), fn([2, 3])):
        assert t.shape == (2, 3)
        assert t.dtype is ember.float32
    assert fn(4).shape == (4,)
    assert fn(()).shape == ()
    assert fn(2, 3, dtype=ember.float64).dtype is ember.float64
    assert fn(2, requires_grad=True).requires_grad


def test_zeros_ones_full_values():
    np.testing.assert_array_equal(ember.zeros(2, 2).numpy(), np.zeros((2, 2), np.float32))
    np.testing.assert_array_equal(ember.ones(3).numpy(), np.ones(3, np.float32))
    assert ember.zeros(2, dtype=ember.int64).dtype is ember.int64
    f = ember.full((2, 3), 1.5)
    assert f.dtype is ember.float32 and f.shape == (2, 3)
    assert f.numpy().tolist() == [[1.5] * 3] * 2
    # fill value type decides the dtype, as in torch
    for v in (2, 1.5, True):
        assert ember.full((2,), v).dtype.name == str(torch.full((2,), v).dtype).split(".")[1]
    assert ember.full((2,), 7, dtype=ember.float64).tolist() == [7.0, 7.0]
    with pytest.raises(RuntimeError, match="negative dimension"):
        ember.zeros(2, -1)


def test_arange_linspace_eye_match_torch():
    for args in [(5,), (1, 7, 2), (0.0, 1.0, 0.25), (5, 0, -1)]:
        e, t = ember.arange(*args), torch.arange(*args)
        np.testing.assert_allclose(e.numpy(), t.numpy())
        assert e.dtype.name == str(t.dtype).split(".")[1]
    np.testing.assert_allclose(ember.linspace(-1, 1, 5).numpy(), torch.linspace(-1, 1, 5).numpy())
    assert ember.linspace(0, 1, 5).dtype is ember.float32
    np.testing.assert_array_equal(ember.eye(3).numpy(), torch.eye(3).numpy())
    np.testing.assert_array_equal(ember.eye(2, 4).numpy(), torch.eye(2, 4).numpy())
    with pytest.raises(RuntimeError, match="arange: step must be nonzero"):
        ember.arange(0, 3, 0)


def test_randint_forms_and_range():
    a = ember.randint(0, 10, (100,))
    b = ember.randint(10, (100,))
    for t in (a, b):
        assert t.dtype is ember.int64 and t.shape == (100,)
        assert t.numpy().min() >= 0 and t.numpy().max() < 10
    c = ember.randint(3, 5, (2, 3))
    assert set(np.unique(c.numpy())) <= {3, 4}
    with pytest.raises(ValueError, match="randint"):
        ember.randint(5, 5, (3,))


def test_like_functions():
    src = ember.zeros(2, 3, dtype=ember.float64)
    for fn in (ember.zeros_like, ember.ones_like, ember.empty_like, ember.rand_like,
               ember.randn_like):
        t = fn(src)
        assert t.shape == (2, 3) and t.dtype is ember.float64
    assert ember.ones_like(src).numpy().sum() == 6
    assert ember.full_like(src, 2.5).numpy().tolist() == [[2.5] * 3] * 2
    assert ember.zeros_like(src, dtype=ember.int64).dtype is ember.int64
    r = ember.randint_like(ember.zeros(4, dtype=ember.int64), 0, 3)
    assert r.dtype is ember.int64 and r.numpy().max() < 3


def test_random_statistics():
    u = ember.rand(20000).numpy()
    assert 0.0 <= u.min() and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.01
    n = ember.randn(20000).numpy()
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1.0) < 0.03
    p = ember.randperm(10).numpy()
    assert sorted(p.tolist()) == list(range(10))


def test_manual_seed_reproducible():
    ember.manual_seed(123)
    a = ember.randn(5).numpy().copy()
    b = ember.rand(3).numpy().copy()
    ember.manual_seed(123)
    np.testing.assert_array_equal(ember.randn(5).numpy(), a)
    np.testing.assert_array_equal(ember.rand(3).numpy(), b)
    ember.manual_seed(124)
    assert not np.array_equal(ember.randn(5).numpy(), a)


def test_generator_state_round_trip():
    g = ember.Generator().manual_seed(7)
    assert g.initial_seed() == 7
    state = g.get_state()
    first = ember.randn(4, generator=g).numpy().copy()
    ember.randn(10, generator=g)
    g.set_state(state)
    np.testing.assert_array_equal(ember.randn(4, generator=g).numpy(), first)
    # the default generator too
    s = ember.default_generator.get_state()
    x = ember.rand(3).numpy().copy()
    ember.default_generator.set_state(s)
    np.testing.assert_array_equal(ember.rand(3).numpy(), x)
    # a separate generator does not disturb the default one
    ember.manual_seed(1)
    ref = ember.rand(3).numpy().copy()
    ember.manual_seed(1)
    ember.rand(5, generator=ember.Generator().manual_seed(99))
    np.testing.assert_array_equal(ember.rand(3).numpy(), ref)
    with pytest.raises(ValueError, match="set_state"):
        g.set_state({"bogus": 1})


def test_device_cpu_accepted_others_rejected():
    assert ember.zeros(2, device="cpu").device == "cpu"
    assert ember.tensor([1.0], device="cpu").tolist() == [1.0]
    for dev in ("cuda", "mps", "cuda:0"):
        with pytest.raises(RuntimeError, match=rf"zeros: device '{dev}' is not available"):
            ember.zeros(2, device=dev)
    with pytest.raises(RuntimeError, match="randn: device 'cuda'"):
        ember.randn(2, device="cuda")


def test_bogus_dtype_rejected():
    with pytest.raises(TypeError, match="zeros: unknown dtype 'bogus'"):
        ember.zeros(2, dtype="bogus")
    with pytest.raises(TypeError, match="tensor: unknown dtype"):
        ember.tensor([1.0], dtype="float128x")
    with pytest.raises(TypeError, match="tensor: cannot build a tensor from"):
        ember.tensor({"a": 1})


def test_dtype_objects():
    assert repr(ember.float32) == "ember.float32"
    assert ember.float is ember.float32 and ember.double is ember.float64
    assert ember.long is ember.int64
    assert ember.float64.is_floating_point and not ember.int32.is_floating_point
    assert ember.int16.itemsize == 2
    for d in (ember.float16, ember.float32, ember.float64, ember.int8, ember.uint8, ember.int16,
              ember.int32, ember.int64, ember.bool):
        assert ember.zeros(2, dtype=d).dtype is d
