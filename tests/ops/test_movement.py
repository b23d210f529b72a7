"""Oracle tests for ember.ops.movement: reshapes, views, joins and splits, flips, pads, masks."""

import numpy as np
import pytest

import ember
from tests.oracle import FLOATS, check, noncontig, rand, torch

pytestmark = pytest.mark.oracle


def both(fn):
    """The same lambda for ember and torch (method names agree)."""
    return fn, fn


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("src", ["plain", "noncontig"])
def test_reshape_view(src, dtype):
    x = rand(2, 3, 4, dtype=dtype)
    x = noncontig(x) if src == "noncontig" else x
    for shape in [(6, 4), (-1,), (4, -1), (2, 1, 12), (24,), (2, 3, 4), (1, -1, 1)]:
        check(*both(lambda t, s=shape: t.reshape(s)), [x])
        check(*both(lambda t, s=shape: t.reshape(*s)), [x])
    check(*both(lambda t: t.view(6, 4)), [rand(2, 3, 4, dtype=dtype)])
    check(*both(lambda t: t.view(-1)), [rand(2, 3, dtype=dtype)])
    check(lambda t: ember.reshape(t, (0, 3)), lambda t: torch.reshape(t, (0, 3)),
          [np.zeros((3, 0), dtype)])
    check(*both(lambda t: t.reshape(1, 1)), [np.array(2.0, dtype)])
    check(*both(lambda t: t.reshape(())), [np.array([2.0], dtype)])
    y = rand(2, 3, dtype=dtype)
    check(*both(lambda a, b: a.view_as(b)), [y, rand(3, 2, dtype=dtype)], grad=[0])
    for bad in [(5,), (-1, -1), (7, -1)]:
        with pytest.raises(RuntimeError, match="reshape"):
            ember.tensor(x).reshape(bad)


@pytest.mark.parametrize("dtype", FLOATS)
def test_permute_transpose(dtype):
    x = rand(2, 3, 4, dtype=dtype)
    for dims in [(2, 0, 1), (0, 1, 2), (-1, 0, -2), (1, 0, 2)]:
        check(*both(lambda t, d=dims: t.permute(*d)), [x])
        check(*both(lambda t, d=dims: t.permute(d)), [noncontig(x)])
    for d0, d1 in [(0, 1), (-1, 0), (1, 1), (2, -2)]:
        check(*both(lambda t, a=d0, b=d1: t.transpose(a, b)), [x])
    check(lambda t: ember.swapaxes(t, 0, 2), lambda t: torch.swapaxes(t, 0, 2), [x])
    check(lambda t: t.mT, lambda t: t.mT, [x])
    check(lambda t: t.T, lambda t: t.T, [rand(3, 4, dtype=dtype)])
    check(lambda t: ember.t(t), lambda t: torch.t(t), [rand(3, 4, dtype=dtype)])
    check(lambda t: ember.t(t), lambda t: torch.t(t), [rand(3, dtype=dtype)])
    with pytest.raises(RuntimeError):
        ember.tensor(x).permute(0, 1)
    with pytest.raises(RuntimeError):
        ember.tensor(x).permute(0, 0, 1)


def test_movedim():
    x = rand(2, 3, 4, 5)
    for s, d in [(0, 2), (-1, 0), ((0, 1), (2, 3)), ((3, 0), (0, 3)), ((0, 2), (-1, 0))]:
        check(lambda t, s=s, d=d: ember.movedim(t, s, d),
              lambda t, s=s, d=d: torch.movedim(t, s, d), [x])
    check(lambda t: t.movedim(1, -1), lambda t: t.movedim(1, -1), [x])


@pytest.mark.parametrize("dtype", FLOATS)
def test_squeeze_unsqueeze(dtype):
    x = rand(1, 3, 1, 2, dtype=dtype)
    for dim in [None, 0, 2, -2, 1, (0, 2), (1, -2), (0, 1)]:
        kw = {} if dim is None else {"dim": dim}
        check(*both(lambda t, k=kw: t.squeeze(**k)), [x])
    check(*both(lambda t: t.squeeze()), [np.array(3.0, dtype)])
    check(*both(lambda t: t.squeeze(0)), [np.array(3.0, dtype)])
    for dim in [0, 2, 4, -1, -5]:
        check(*both(lambda t, d=dim: t.unsqueeze(d)), [x])
    check(*both(lambda t: t.unsqueeze(0)), [np.array(3.0, dtype)])
    check(*both(lambda t: t.unsqueeze(-1)), [np.array(3.0, dtype)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_flatten_unflatten(dtype):
    x = rand(2, 3, 4, dtype=dtype)
    for s, e in [(0, -1), (1, 2), (0, 1), (-2, -1), (1, 1)]:
        check(*both(lambda t, s=s, e=e: t.flatten(s, e)), [x])
    check(*both(lambda t: t.flatten()), [np.array(3.0, dtype)])
    check(lambda t: ember.ravel(t), lambda t: torch.ravel(t), [noncontig(rand(3, 4, dtype=dtype))])
    for dim, sizes in [(1, (3, 1)), (-1, (2, -1)), (0, (1, 2)), (2, (2, 2))]:
        check(*both(lambda t, d=dim, z=sizes: t.unflatten(d, z)), [x])


@pytest.mark.parametrize("dtype", FLOATS)
def test_expand_broadcast(dtype):
    x = rand(3, 1, dtype=dtype)
    check(*both(lambda t: t.expand(3, 4)), [x])
    check(*both(lambda t: t.expand(2, -1, 4)), [x])
    check(*both(lambda t: t.expand(-1, 1)), [x])
    check(*both(lambda t: t.expand((2, 3, 5))), [x])
    check(*both(lambda t: t.expand(4)), [np.array(2.0, dtype)])
    check(*both(lambda t: t.expand(0, 3, 1)), [x])
    check(lambda t: ember.broadcast_to(t, (2, 3, 4)), lambda t: torch.broadcast_to(t, (2, 3, 4)),
          [x])
    check(lambda a, b: a.expand_as(b), lambda a, b: a.expand_as(b), [x, rand(3, 5, dtype=dtype)],
          grad=[0])
    check(lambda a, b: ember.broadcast_tensors(a, b), lambda a, b: torch.broadcast_tensors(a, b),
          [x, rand(4, dtype=dtype)])
    assert ember.broadcast_shapes((3, 1), (4,)) == torch.broadcast_shapes((3, 1), (4,))
    with pytest.raises(RuntimeError):
        ember.tensor(x).expand(3, 4, 2)
    with pytest.raises(RuntimeError):
        ember.tensor(x).expand(4)
    with pytest.raises(RuntimeError):
        ember.broadcast_shapes((3,), (4,))


@pytest.mark.parametrize("dtype", FLOATS)
def test_repeat_tile(dtype):
    x = rand(2, 3, dtype=dtype)
    for reps in [(2, 1), (1, 3), (2, 2, 1), (3, 1, 2), (1, 1), (0, 2)]:
        check(*both(lambda t, r=reps: t.repeat(*r)), [x])
    for reps in [(2,), (2, 1), (1, 2, 3), ()]:
        check(lambda t, r=reps: ember.tile(t, r), lambda t, r=reps: torch.tile(t, r), [x])
    check(*both(lambda t: t.repeat(2, 3)), [rand(3, dtype=dtype)])
    check(*both(lambda t: t.repeat(2)), [np.array(1.5, dtype)])
    with pytest.raises(RuntimeError):
        ember.tensor(x).repeat(2)


@pytest.mark.parametrize("dtype", FLOATS)
def test_repeat_interleave(dtype):
    x = rand(2, 3, dtype=dtype)
    check(lambda t: ember.repeat_interleave(t, 2), lambda t: torch.repeat_interleave(t, 2), [x])
    check(lambda t: ember.repeat_interleave(t, 3, dim=1),
          lambda t: torch.repeat_interleave(t, 3, dim=1), [x])


@pytest.mark.parametrize("dtype", FLOATS)
def test_cat_stack(dtype):
    a, b, c = rand(2, 3, dtype=dtype, seed=1), rand(4, 3, dtype=dtype, seed=2), \
        rand(2, 5, dtype=dtype, seed=3)
    check(lambda x, y: ember.cat([x, y]), lambda x, y: torch.cat([x, y]), [a, b])
    check(lambda x, y: ember.cat((x, y), dim=-1), lambda x, y: torch.cat((x, y), dim=-1), [a, c])
    check(lambda x, y: ember.cat([x, y, x], 1), lambda x, y: torch.cat([x, y, x], 1),
          [a, noncontig(c)])
    check(lambda x: ember.cat([x]), lambda x: torch.cat([x]), [a])
    # empty tensors: 2-D with a zero-size cat dim, and the legacy 1-D (0,) that torch skips
    e = np.zeros((0, 3), dtype)
    check(lambda x, y: ember.cat([x, y]), lambda x, y: torch.cat([x, y]), [a, e])
    check(lambda x, y: ember.cat([y, x]), lambda x, y: torch.cat([y, x]), [a, np.zeros(0, dtype)])
    # different dtypes promote
    for other in (a.astype(np.float64 if dtype == np.float32 else np.float32),
                  np.ones((2, 3), np.int64), np.ones((2, 3), bool)):
        check(lambda x, y: ember.cat([x, y]), lambda x, y: torch.cat([x, y]), [a, other])
    for dim in (0, 1, 2, -1, -3):
        check(lambda x, y, d=dim: ember.stack([x, y], d),
              lambda x, y, d=dim: torch.stack([x, y], d),
              [a, noncontig(rand(2, 3, dtype=dtype, seed=4))])
    check(lambda x, y: ember.stack([x, y]), lambda x, y: torch.stack([x, y]),
          [np.array(1.0, dtype), np.array(2.0, dtype)])
    # mixed dtypes promote (the general path); one dtype is a single Stack primitive, whose
    # backward is differentiable again
    check(lambda x, y: ember.stack([x, y], 1), lambda x, y: torch.stack([x, y], 1),
          [a, a.astype(np.float64 if dtype == np.float32 else np.float32)])
    if dtype == np.float64:
        from ember.autograd.gradcheck import gradgradcheck

        x, y = (ember.tensor(v, requires_grad=True) for v in (a, rand(2, 3, dtype=dtype)))
        assert gradgradcheck(lambda u, v: ember.stack([u, v * v], 1), (x, y))
    check(lambda x, y: ember.hstack([x, y]), lambda x, y: torch.hstack([x, y]), [a, c])
    check(lambda x, y: ember.vstack([x, y]), lambda x, y: torch.vstack([x, y]), [a, b])
    check(lambda x, y: ember.vstack([x, y]), lambda x, y: torch.vstack([x, y]),
          [rand(3, dtype=dtype), rand(3, dtype=dtype, seed=9)])
    with pytest.raises(RuntimeError, match="cat"):
        ember.cat([ember.tensor(a), ember.tensor(c)])
    with pytest.raises(RuntimeError, match="stack"):
        ember.stack([ember.tensor(a), ember.tensor(b)])
    with pytest.raises(RuntimeError):
        ember.cat([])


@pytest.mark.parametrize("dtype", FLOATS)
def test_split_chunk_unbind(dtype):
    x = rand(5, 4, dtype=dtype)
    for size, dim in [(2, 0), (1, 1), (5, 0), (3, -1), (10, 0)]:
        check(lambda t, s=size, d=dim: ember.split(t, s, d),
              lambda t, s=size, d=dim: torch.split(t, s, d), [x])
    for sizes, dim in [([1, 4], 0), ([2, 0, 3], 0), ([4], 1), ([1, 1, 2], -1)]:
        check(lambda t, s=sizes, d=dim: t.split(s, d),
              lambda t, s=sizes, d=dim: t.split(s, d), [x])
    for n, dim in [(2, 0), (3, 1), (5, 0), (6, 0), (1, 1), (3, -2)]:
        check(lambda t, n=n, d=dim: t.chunk(n, d), lambda t, n=n, d=dim: t.chunk(n, d), [x])
    for dim in (0, 1, -1):
        check(lambda t, d=dim: t.unbind(d), lambda t, d=dim: t.unbind(d), [noncontig(x)])
    for arg in (3, [1, 3], (2,)):
        check(lambda t, a=arg: ember.tensor_split(t, a), lambda t, a=arg: torch.tensor_split(t, a),
              [x])
    with pytest.raises(RuntimeError, match="split"):
        ember.tensor(x).split([1, 2])


@pytest.mark.parametrize("dtype", FLOATS)
def test_narrow(dtype):
    x = rand(4, 5, dtype=dtype)
    for dim, start, length in [(0, 1, 2), (1, 0, 5), (-1, 3, 2), (0, -2, 2), (1, 2, 0)]:
        check(lambda t, a=dim, b=start, c=length: t.narrow(a, b, c),
              lambda t, a=dim, b=start, c=length: t.narrow(a, b, c), [x])
    with pytest.raises(IndexError):
        ember.tensor(x).narrow(0, 3, 2)


@pytest.mark.parametrize("dtype", FLOATS)
def test_flip_roll(dtype):
    x = rand(2, 3, 4, dtype=dtype)
    for dims in [0, (1,), (0, 2), (-1,), (0, 1, 2), ()]:
        check(*both(lambda t, d=dims: t.flip(d)), [x])
    check(lambda t: ember.fliplr(t), lambda t: torch.fliplr(t), [x])
    check(lambda t: ember.flipud(t), lambda t: torch.flipud(t), [noncontig(x)])
    for shifts, dims in [(1, 0), (-2, 2), (5, None), (-7, None), ((1, 2), (0, 2)),
                         ((1, -1), (-1, 1)), (0, 1), (3, -2)]:
        check(lambda t, s=shifts, d=dims: ember.roll(t, s, d),
              lambda t, s=shifts, d=dims: torch.roll(t, s, d), [x])
    check(*both(lambda t: t.roll(2)), [noncontig(rand(3, 4, dtype=dtype))])


PADS = [
    ((1, 2), "constant"), ((0, 0, 1, 1), "constant"), ((1, 0, 2, 1, 1, 1), "constant"),
    ((-1, 2), "constant"), ((1, -2, -1, 0), "constant"),
    ((2, 1), "reflect"), ((1, 2, 2, 0), "reflect"), ((1, 1), "replicate"),
    ((2, 0, 1, 3), "replicate"), ((1, 1, 1, 1, 1, 1), "replicate"), ((1, 2), "circular"),
    ((1, 0, 2, 1), "circular"), ((1, 1, 1, 0, 0, 1), "circular"), ((0, 1, 1, 0, 1, 1), "reflect"),
]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("pads,mode", PADS)
def test_pad(pads, mode, dtype):
    import torch.nn.functional as F

    nd = len(pads) // 2
    # reflect/replicate/circular need batch dims in torch: (N, C, *spatial)
    shape = (2, 3, 3, 4, 4)[-(nd + 2):] if mode != "constant" else (3, 4, 4)[-nd:]
    x = rand(*shape, dtype=dtype, seed=23)
    check(lambda t: ember.ops.pad(t, pads, mode), lambda t: F.pad(t, pads, mode), [x])
    check(lambda t: ember.ops.pad(t, pads, mode), lambda t: F.pad(t, pads, mode), [noncontig(x)])


def test_pad_constant_value_and_errors():
    import torch.nn.functional as F

    x = rand(3, 4)
    check(lambda t: ember.ops.pad(t, (1, 1, 2, 0), value=-2.5),
          lambda t: F.pad(t, (1, 1, 2, 0), value=-2.5), [x])
    check(lambda t: ember.ops.pad(t, (0, 0)), lambda t: F.pad(t, (0, 0)), [x])
    with pytest.raises(ValueError, match="pad"):
        ember.ops.pad(ember.tensor(x), (1,))
    with pytest.raises(ValueError, match="reflect"):
        ember.ops.pad(ember.tensor(x[None]), (4, 4), "reflect")
    with pytest.raises(ValueError, match="mode"):
        ember.ops.pad(ember.tensor(x), (1, 1), "wrap")


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("diagonal", [0, 1, -1, 3, -5])
@pytest.mark.parametrize("shape", [(4, 4), (3, 5), (2, 4, 3)])
def test_tril_triu(shape, diagonal, dtype):
    x = rand(*shape, dtype=dtype)
    check(*both(lambda t: t.tril(diagonal)), [x])
    check(*both(lambda t: t.triu(diagonal)), [x])
    check(lambda t: ember.triu(t, diagonal=diagonal), lambda t: torch.triu(t, diagonal=diagonal),
          [noncontig(x)])
    with pytest.raises(RuntimeError):
        ember.tril(ember.ones(3))


@pytest.mark.parametrize("dtype", FLOATS)
def test_clone_contiguous(dtype):
    x = noncontig(rand(3, 4, dtype=dtype))
    out = check(*both(lambda t: t.clone()), [x])
    assert out[0].detach().numpy().flags.c_contiguous
    out = check(*both(lambda t: t.contiguous()), [x])
    assert out[0].detach().numpy().flags.c_contiguous
    e = ember.tensor(rand(3, dtype=dtype))
    assert e.contiguous() is e
    c = e.clone()
    c.numpy()[0] = 100.0
    assert e.numpy()[0] != 100.0


@pytest.mark.parametrize("dtype", FLOATS)
def test_diagonal_forward(dtype):
    x = rand(3, 4, 5, dtype=dtype)
    for off, d1, d2 in [(0, 0, 1), (1, 1, 2), (-1, 0, 2), (2, -1, -2), (0, 2, 0), (7, 0, 1)]:
        check(lambda t, o=off, a=d1, b=d2: t.diagonal(o, a, b),
              lambda t, o=off, a=d1, b=d2: t.diagonal(o, a, b), [x], grad=[])


@pytest.mark.skipif(not hasattr(ember.ops.indexing, "diagonal_embed_like"),
                    reason="diagonal backward needs ember.ops.indexing.diagonal_embed_like, "
                           "which is not written yet")
@pytest.mark.parametrize("dtype", FLOATS)
def test_diagonal_backward(dtype):
    x = rand(3, 4, 5, dtype=dtype)
    for off, d1, d2 in [(0, 0, 1), (1, 1, 2), (-1, 0, 2), (2, -1, -2), (0, 2, 0)]:
        check(lambda t, o=off, a=d1, b=d2: t.diagonal(o, a, b),
              lambda t, o=off, a=d1, b=d2: t.diagonal(o, a, b), [x])


def test_views_share_memory():
    x = ember.tensor(rand(3, 4))
    for v in (x.reshape(12), x.T, x.narrow(0, 1, 1), x.unsqueeze(0), x[None].squeeze(0),
              x.expand(2, 3, 4)):
        assert np.shares_memory(v.numpy(), x.numpy())
