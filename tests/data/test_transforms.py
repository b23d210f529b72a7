"""Image transforms: closed-form values and seeded randomness."""

import numpy as np
import pytest

import ember
from ember.data import transforms as T


def _gen(seed):
    return ember.Generator().manual_seed(seed)


def test_to_tensor_scales_and_moves_channels():
    img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3) * 10
    out = T.ToTensor()(img)
    assert isinstance(out, ember.Tensor) and out.shape == (3, 2, 4)
    assert out.dtype == ember.float32
    np.testing.assert_allclose(out.numpy(), img.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    gray = T.ToTensor()(np.full((5, 6), 255, np.uint8))
    assert gray.shape == (1, 5, 6) and float(gray.numpy().min()) == 1.0
    floats = T.ToTensor()(np.full((2, 2, 1), 3.5, np.float32))
    assert floats.numpy().max() == 3.5  # floats are not rescaled


def test_normalize_closed_form():
    x = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3], [0.5, 2.0, 4.0]
    out = T.Normalize(mean, std)(x)
    want = (x - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(out, want, rtol=1e-6)
    t = T.Normalize(mean, std)(ember.from_numpy(x))
    assert isinstance(t, ember.Tensor)
    np.testing.assert_allclose(t.numpy(), want, rtol=1e-6)
    with pytest.raises(ValueError):
        T.Normalize([0.0], [0.0])


@pytest.mark.oracle
def test_normalize_matches_torch_formula():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(1).random((2, 3, 4, 4)).astype(np.float32)
    mean, std = np.array([0.4, 0.5, 0.6]), np.array([0.2, 0.3, 0.4])
    want = (torch.from_numpy(x) - torch.tensor(mean, dtype=torch.float32)[:, None, None]) \
        / torch.tensor(std, dtype=torch.float32)[:, None, None]
    np.testing.assert_allclose(T.Normalize(mean, std)(x), want.numpy(), rtol=1e-6)


def test_compose_and_lambda():
    pipeline = T.Compose([T.ToTensor(), T.Lambda(lambda t: t * 2)])
    out = pipeline(np.full((2, 2), 255, np.uint8))
    assert out.tolist() == [[[2.0, 2.0], [2.0, 2.0]]]
    assert "ToTensor" in repr(pipeline)
    with pytest.raises(TypeError):
        T.Lambda(3)


def test_random_crop_is_a_window_and_seeded():
    img = np.arange(2 * 6 * 7).reshape(2, 6, 7)
    crop = T.RandomCrop((3, 4), generator=_gen(0))
    outs = [crop(img) for _ in range(20)]
    for out in outs:
        assert out.shape == (2, 3, 4)
        top, left = np.argwhere(img[0] == out[0, 0, 0])[0]
        np.testing.assert_array_equal(out, img[:, top:top + 3, left:left + 4])
    assert len({o[0, 0, 0] for o in outs}) > 1  # the position varies
    again = T.RandomCrop((3, 4), generator=_gen(0))
    assert all(np.array_equal(o, again(img)) for o in outs)


def test_random_crop_padding():
    img = np.ones((1, 4, 4), np.float32)
    crop = T.RandomCrop(4, padding=2, generator=_gen(1))
    outs = [crop(img) for _ in range(30)]
    assert all(o.shape == (1, 4, 4) for o in outs)
    assert any(o.sum() < 16 for o in outs)  # some crops include the zero border
    assert all(o.sum() >= 4 for o in outs)  # at least a 2x2 corner of the image remains
    full = T.RandomCrop(8, padding=2, generator=_gen(1))(img)
    np.testing.assert_array_equal(full[0, 2:6, 2:6], 1)
    assert full.sum() == 16
    with pytest.raises(ValueError, match="larger"):
        T.RandomCrop(5)(img)
    assert T.RandomCrop(6, pad_if_needed=True, generator=_gen(0))(img).shape == (1, 6, 6)
    t = T.RandomCrop(2, generator=_gen(0))(ember.from_numpy(img))
    assert isinstance(t, ember.Tensor) and t.shape == (1, 2, 2)


def test_random_flip_probability_and_seed():
    img = np.arange(12).reshape(1, 3, 4)
    flip = T.RandomHorizontalFlip(p=0.5, generator=_gen(2))
    outs = [flip(img) for _ in range(400)]
    flipped = [np.array_equal(o, img[..., ::-1]) for o in outs]
    assert all(f or np.array_equal(o, img) for f, o in zip(flipped, outs))
    assert 150 < sum(flipped) < 250
    again = T.RandomHorizontalFlip(p=0.5, generator=_gen(2))
    assert [np.array_equal(again(img), img[..., ::-1]) for _ in range(400)] == flipped
    assert np.array_equal(T.RandomHorizontalFlip(p=1.0)(img), img[..., ::-1])
    assert np.array_equal(T.RandomHorizontalFlip(p=0.0)(img), img)
    assert np.array_equal(T.RandomVerticalFlip(p=1.0)(img), img[:, ::-1, :])


def test_random_affine_identity_and_translation():
    img = np.random.default_rng(0).random((1, 9, 9)).astype(np.float32)
    same = T.RandomAffine(0, generator=_gen(0))(img)
    np.testing.assert_array_equal(same, img)
    rot = T.RandomAffine((90, 90), generator=_gen(0))(img)
    np.testing.assert_allclose(np.sort(rot.ravel()), np.sort(img.ravel()))  # a permutation
    shifted = T.RandomAffine(0, translate=(0.3, 0.0), generator=_gen(3))(img)
    dx = [d for d in range(-3, 4) if np.array_equal(np.roll(img, d, axis=-1)[..., 3:-3],
                                                     shifted[..., 3:-3])]
    assert dx, "a horizontal translation by a whole number of pixels"


def test_random_affine_turns_counter_clockwise_and_scales():
    img = np.zeros((1, 5, 5), np.float32)
    img[0, 2, 4] = 1.0  # right of the centre
    turned = T.RandomAffine((90, 90), generator=_gen(0))(img)
    assert np.argwhere(turned[0] == 1.0).tolist() == [[0, 2]]  # now above it
    img = np.zeros((1, 5, 5), np.float32)
    img[0, 2, 3] = 1.0
    zoomed = T.RandomAffine(0, scale=(2.0, 2.0), generator=_gen(0))(img)
    assert zoomed[0, 2, 4] == 1.0  # twice as far from the centre
