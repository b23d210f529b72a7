"""Image transforms for ``(C, H, W)`` (or ``(H, W)``) images held as NumPy arrays or tensors.

Matches: ``torchvision.transforms`` ``Compose``, ``ToTensor``, ``Normalize``, ``RandomCrop``,
``RandomHorizontalFlip``, ``RandomVerticalFlip``, ``RandomAffine`` (nearest-neighbour, rotation
+ translation + scale), ``Lambda``. Every random transform takes ``generator=`` (an ember
``Generator``; default: ember's global one), so ``ember.manual_seed`` or a seeded generator
makes augmentation reproducible. A transform returns the kind it was given: array in, array
out; tensor in, tensor out (except ``ToTensor``, which always returns a tensor).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..autograd import Tensor
from ..autograd.creation import from_numpy
from ..ops.random import Generator, default_generator


def _unwrap(img):
    if isinstance(img, Tensor):
        return img.detach().numpy(), True
    if isinstance(img, np.ndarray):
        return img, False
    if hasattr(img, "mode") and hasattr(img, "size"):  # a Pillow image
        return np.asarray(img), False
    raise TypeError(f"ember.data.transforms: expected a NumPy array or an ember tensor, got "
                    f"{type(img).__name__}")


def _wrap(arr: np.ndarray, as_tensor: bool):
    return from_numpy(np.ascontiguousarray(arr)) if as_tensor else arr


def _rng(generator: Generator | None) -> np.random.Generator:
    return (generator or default_generator).numpy_generator


class Compose:
    """Apply transforms one after another. Matches ``torchvision.transforms.Compose``."""

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"Compose({inner}\n)"


class Lambda:
    """Wrap a function as a transform. Matches ``torchvision.transforms.Lambda``."""

    def __init__(self, fn: Callable):
        if not callable(fn):
            raise TypeError(f"Lambda: argument should be callable, got {type(fn).__name__}")
        self.fn = fn

    def __call__(self, img):
        return self.fn(img)


class ToTensor:
    """An ``(H, W, C)`` or ``(H, W)`` image -> a ``(C, H, W)`` float32 tensor.

    uint8 values are scaled to ``[0, 1]`` (divided by 255); float images keep their values.

    Example:
        >>> import numpy as np
        >>> ToTensor()(np.full((2, 3, 1), 255, np.uint8)).shape
        (1, 2, 3)

    Matches ``torchvision.transforms.ToTensor``.
    """

    def __call__(self, pic) -> Tensor:
        arr, _ = _unwrap(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3:
            raise ValueError(f"ToTensor: expected an (H, W) or (H, W, C) image, got shape "
                             f"{arr.shape}")
        chw = arr.transpose(2, 0, 1)
        if arr.dtype == np.uint8:
            out = chw.astype(np.float32) / np.float32(255)
        elif arr.dtype.kind == "f":
            out = chw.astype(arr.dtype if arr.dtype != np.float16 else np.float32)
        else:
            out = chw.astype(np.float32)
        return from_numpy(np.ascontiguousarray(out))

    def __repr__(self) -> str:
        return "ToTensor()"


class Normalize:
    """Per channel: ``(x - mean[c]) / std[c]``. Matches ``torchvision.transforms.Normalize``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if (self.std == 0).any():
            raise ValueError(f"Normalize: std evaluated to zero after conversion, leading to "
                             f"division by zero (std={list(std)})")
        self.inplace = inplace

    def __call__(self, img):
        arr, was_tensor = _unwrap(img)
        if arr.ndim < 3:
            raise ValueError(f"Normalize: expected a (..., C, H, W) image, got shape {arr.shape}")
        if arr.dtype.kind != "f":
            raise TypeError(f"Normalize: input should be a float image, got {arr.dtype}")
        shape = (-1, 1, 1)
        mean = self.mean.astype(arr.dtype).reshape(shape)
        std = self.std.astype(arr.dtype).reshape(shape)
        if self.inplace:
            arr -= mean
            arr /= std
            return img
        return _wrap((arr - mean) / std, was_tensor)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


def _pair(size) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    size = tuple(int(s) for s in size)
    return (size[0], size[0]) if len(size) == 1 else size


def _pad_amounts(padding) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) from an int, (lr, tb) or (l, t, r, b), like torchvision."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    p = tuple(int(x) for x in padding)
    if len(p) == 1:
        return p * 4
    if len(p) == 2:
        return p[0], p[1], p[0], p[1]
    if len(p) == 4:
        return p
    raise ValueError(f"RandomCrop: padding must be an int or a sequence of 1, 2 or 4 ints, got "
                     f"{padding}")


class RandomCrop:
    """Cut a random ``size`` window out of the image, optionally padded first.

    Args:
        size: ``(h, w)`` or an int for a square.
        padding: added on each border before cropping (int, ``(lr, tb)`` or ``(l, t, r, b)``).
        pad_if_needed: pad images smaller than ``size``.
        fill: the value for ``padding_mode="constant"``.
        padding_mode: ``"constant"``, ``"edge"``, ``"reflect"`` or ``"symmetric"``.
        generator: ember ``Generator`` drawing the position.

    Matches ``torchvision.transforms.RandomCrop``.
    """

    def __init__(self, size, padding=None, pad_if_needed: bool = False, fill: float = 0,
                 padding_mode: str = "constant", generator: Generator | None = None):
        if padding_mode not in ("constant", "edge", "reflect", "symmetric"):
            raise ValueError(f"RandomCrop: padding_mode must be constant, edge, reflect or "
                             f"symmetric, got {padding_mode!r}")
        self.size, self.padding, self.pad_if_needed = _pair(size), padding, pad_if_needed
        self.fill, self.padding_mode, self.generator = fill, padding_mode, generator

    def _pad(self, arr, left, top, right, bottom):
        widths = [(0, 0)] * (arr.ndim - 2) + [(top, bottom), (left, right)]
        if self.padding_mode == "constant":
            return np.pad(arr, widths, mode="constant", constant_values=self.fill)
        return np.pad(arr, widths, mode=self.padding_mode)

    def __call__(self, img):
        arr, was_tensor = _unwrap(img)
        if self.padding is not None:
            arr = self._pad(arr, *_pad_amounts(self.padding))
        th, tw = self.size
        h, w = arr.shape[-2:]
        if self.pad_if_needed and (h < th or w < tw):
            dw, dh = max(tw - w, 0), max(th - h, 0)
            arr = self._pad(arr, dw, dh, dw, dh)
            h, w = arr.shape[-2:]
        if h < th or w < tw:
            raise ValueError(f"RandomCrop: required crop size {(th, tw)} is larger than the "
                             f"input image size {(h, w)}")
        rng = _rng(self.generator)
        top = int(rng.integers(0, h - th + 1))
        left = int(rng.integers(0, w - tw + 1))
        return _wrap(arr[..., top:top + th, left:left + tw], was_tensor)

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``. Matches ``transforms.RandomHorizontalFlip``."""

    _axis = -1

    def __init__(self, p: float = 0.5, generator: Generator | None = None):
        self.p, self.generator = p, generator

    def __call__(self, img):
        arr, was_tensor = _unwrap(img)
        if _rng(self.generator).random() < self.p:
            return _wrap(np.flip(arr, axis=self._axis), was_tensor)
        return img

    def __repr__(self) -> str:
        return f"{type(self).__name__}(p={self.p})"


class RandomVerticalFlip(RandomHorizontalFlip):
    """Mirror top-bottom with probability ``p``. Matches ``transforms.RandomVerticalFlip``."""

    _axis = -2


class RandomAffine:
    """Random rotation, translation and scaling about the centre (nearest-neighbour sampling).

    Args:
        degrees: rotation drawn from ``(-d, d)`` or a ``(min, max)`` range; positive angles
            turn the picture counter-clockwise as displayed, like torchvision.
        translate: ``(a, b)``: shifts drawn from ``|dx| <= a * W``, ``|dy| <= b * H``.
        scale: ``(lo, hi)`` range of zoom factors.
        fill: value for pixels that come from outside the image.
        generator: ember ``Generator``.

    Matches ``torchvision.transforms.RandomAffine`` without shear, with nearest interpolation.
    """

    def __init__(self, degrees, translate=None, scale=None, fill: float = 0,
                 generator: Generator | None = None):
        if isinstance(degrees, (int, float)):
            if degrees < 0:
                raise ValueError("RandomAffine: if degrees is a single number, it must be "
                                 "positive")
            degrees = (-degrees, degrees)
        self.degrees = (float(degrees[0]), float(degrees[1]))
        self.translate, self.scale, self.fill, self.generator = translate, scale, fill, generator

    def _draw(self, h: int, w: int):
        rng = _rng(self.generator)
        angle = float(rng.uniform(*self.degrees))
        dx = dy = 0.0
        if self.translate is not None:
            dx = float(np.round(rng.uniform(-self.translate[0] * w, self.translate[0] * w)))
            dy = float(np.round(rng.uniform(-self.translate[1] * h, self.translate[1] * h)))
        s = float(rng.uniform(*self.scale)) if self.scale is not None else 1.0
        return angle, dx, dy, s

    def __call__(self, img):
        arr, was_tensor = _unwrap(img)
        h, w = arr.shape[-2:]
        angle, dx, dy, s = self._draw(h, w)
        # Inverse map: for each output pixel, the input pixel it comes from.
        cy, cx = (h - 1) / 2, (w - 1) / 2
        ys, xs = np.meshgrid(np.arange(h) - cy - dy, np.arange(w) - cx - dx, indexing="ij")
        a = math.radians(angle)
        # Rows grow downwards, so undoing a counter-clockwise turn (as displayed) is this:
        src_x = (math.cos(a) * xs - math.sin(a) * ys) / s + cx
        src_y = (math.sin(a) * xs + math.cos(a) * ys) / s + cy
        ix, iy = np.rint(src_x).astype(np.int64), np.rint(src_y).astype(np.int64)
        inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
        out = np.full_like(arr, self.fill)
        out[..., inside] = arr[..., iy[inside], ix[inside]]
        return _wrap(out, was_tensor)

    def __repr__(self) -> str:
        return f"RandomAffine(degrees={self.degrees}, translate={self.translate}, " \
               f"scale={self.scale})"
