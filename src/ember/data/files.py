"""Users' own data: CSV tables, NumPy arrays and folders of images.

* :func:`load_csv` -> a ``TensorDataset`` of float32 features and int64 class indices (or
  float targets), with the class names attached.
* :func:`from_numpy_arrays` -> a ``TensorDataset`` from arrays ``x`` and ``y``.
* :class:`ImageFolder` -> ``(image, class_index)`` from ``root/<class>/<file>``, classes sorted
  by name. Formats: ``.npy`` (``np.load(allow_pickle=False)``) and binary/ASCII PGM/PPM
  (``.pgm``, ``.ppm``, ``.pnm``; read natively), plus PNG/JPEG/BMP/GIF through Pillow when it
  is installed (``pip install pillow``); without Pillow those files raise a clear error.
  Images come back as NumPy arrays, ``(H, W)`` or ``(H, W, C)``, as stored: add
  ``transforms.ToTensor()`` to get ``(C, H, W)`` float tensors.

Matches: ``torchvision.datasets.ImageFolder`` (``classes``, ``class_to_idx``, ``samples``,
``targets``, ``transform``, ``target_transform``).
"""

from __future__ import annotations

import csv
import os
import pathlib

import numpy as np

from .dataset import Dataset, TensorDataset

NATIVE_EXTENSIONS = (".npy", ".pgm", ".ppm", ".pnm")
PILLOW_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
IMG_EXTENSIONS = NATIVE_EXTENSIONS + PILLOW_EXTENSIONS


def _column_index(spec, header: list[str] | None, ncols: int, what: str) -> int:
    if isinstance(spec, int):
        if not -ncols <= spec < ncols:
            raise ValueError(f"load_csv: {what} {spec} is out of range for {ncols} columns")
        return spec % ncols
    if header is None:
        raise ValueError(f"load_csv: {what} {spec!r} is a name but header=False; use an int")
    if spec not in header:
        raise ValueError(f"load_csv: {what} {spec!r} is not a column; columns are {header}")
    return header.index(spec)


def _class_order(labels: list[str]) -> list[str]:
    """Sorted class names: numerically when every label is a number, else as strings."""
    unique = set(labels)
    try:
        return sorted(unique, key=float)
    except ValueError:
        return sorted(unique)


def load_csv(path, label_column, feature_columns=None, delimiter: str = ",",
             header: bool = True, task: str = "classification",
             encoding: str = "utf-8") -> TensorDataset:
    """Read a CSV table into a ``TensorDataset`` of ``(features, label)``.

    Args:
        path: the file.
        label_column: the label's column, by name (needs ``header``) or index.
        feature_columns: the feature columns (names or indices); default: all others.
        delimiter: the field separator.
        header: whether the first row names the columns.
        task: ``"classification"`` (labels -> int64 class indices; the dataset gets
            ``classes`` and ``class_to_idx``) or ``"regression"`` (labels -> float32).

    Returns:
        a ``TensorDataset``; features are float32 ``(N, F)``. Its ``feature_names`` lists the
        feature columns.
    """
    if task not in ("classification", "regression"):
        raise ValueError(f"load_csv: task must be 'classification' or 'regression', got {task!r}")
    with open(path, newline="", encoding=encoding) as f:
        rows = [r for r in csv.reader(f, delimiter=delimiter) if r]
    names = rows.pop(0) if header and rows else None
    if not rows:
        raise ValueError(f"load_csv: {path} has no data rows")
    ncols = len(names) if names is not None else len(rows[0])
    label_i = _column_index(label_column, names, ncols, "label_column")
    if feature_columns is None:
        feat_i = [i for i in range(ncols) if i != label_i]
    else:
        feat_i = [_column_index(c, names, ncols, "feature column") for c in feature_columns]
    x = np.empty((len(rows), len(feat_i)), dtype=np.float32)
    labels = []
    for r, row in enumerate(rows):
        line = r + 1 + bool(header)
        if len(row) != ncols:
            raise ValueError(f"load_csv: {path} line {line} has {len(row)} fields, expected "
                             f"{ncols}")
        try:
            x[r] = [float(row[i]) for i in feat_i]
        except ValueError as e:
            raise ValueError(f"load_csv: {path} line {line}: a feature is not a number "
                             f"({e})") from None
        labels.append(row[label_i].strip())
    if task == "regression":
        ds = TensorDataset(x, np.array([float(v) for v in labels], dtype=np.float32))
    else:
        classes = _class_order(labels)
        class_to_idx = {c: i for i, c in enumerate(classes)}
        ds = TensorDataset(x, np.array([class_to_idx[v] for v in labels], dtype=np.int64))
        ds.classes, ds.class_to_idx = classes, class_to_idx
    ds.feature_names = [names[i] for i in feat_i] if names is not None else list(feat_i)
    return ds


def from_numpy_arrays(x, y=None, dtype=None) -> TensorDataset:
    """A ``TensorDataset`` of ``(x[i], y[i])`` (or ``(x[i],)``); arrays are not copied.

    Float64 features become float32 (ember's default) unless ``dtype`` says otherwise.
    """
    x = np.asarray(x)
    if dtype is not None:
        x = x.astype(dtype)
    elif x.dtype == np.float64:
        x = x.astype(np.float32)
    if y is None:
        return TensorDataset(x)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"from_numpy_arrays: x has {len(x)} rows but y has {len(y)}")
    return TensorDataset(x, y)


# ---------------------------------------------------------------------- images
def _pnm_tokens(data: bytes, count: int):
    """The first ``count`` header fields of a PNM file, skipping comments; and the offset."""
    fields, i = [], 2
    while len(fields) < count:
        while i < len(data) and data[i:i + 1].isspace():
            i += 1
        if data[i:i + 1] == b"#":
            while i < len(data) and data[i:i + 1] not in (b"\n", b"\r"):
                i += 1
            continue
        start = i
        while i < len(data) and not data[i:i + 1].isspace():
            i += 1
        if start == i:
            raise ValueError("read_pnm: truncated header")
        fields.append(int(data[start:i]))
    return fields, i + 1  # exactly one whitespace byte ends the header


def read_pnm(path) -> np.ndarray:
    """Read a PGM (``(H, W)``) or PPM (``(H, W, 3)``) image, binary (P5/P6) or ASCII (P2/P3).

    8-bit images come back as uint8; 16-bit (maxval > 255) as uint16 (big-endian on disk).
    """
    data = pathlib.Path(path).read_bytes()
    magic = data[:2]
    if magic not in (b"P2", b"P3", b"P5", b"P6"):
        raise ValueError(f"read_pnm: {path} is not a PGM/PPM file (magic {magic!r})")
    (w, h, maxval), offset = _pnm_tokens(data, 3)
    channels = 3 if magic in (b"P3", b"P6") else 1
    dtype = np.uint8 if maxval < 256 else np.dtype(">u2")
    count = w * h * channels
    if magic in (b"P5", b"P6"):
        arr = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
    else:
        arr = np.array(data[offset - 1:].split()[:count], dtype=np.int64).astype(dtype)
    if arr.size != count:
        raise ValueError(f"read_pnm: {path} holds {arr.size} values, expected {count}")
    arr = arr.astype(np.uint8 if maxval < 256 else np.uint16)
    return arr.reshape((h, w, 3) if channels == 3 else (h, w))


def write_pnm(path, image: np.ndarray) -> None:
    """Write a uint8 ``(H, W)`` image as binary PGM or ``(H, W, 3)`` as binary PPM."""
    img = np.asarray(image)
    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise ValueError(f"write_pnm: expected a uint8 (H, W) or (H, W, 3) image, got "
                         f"{img.dtype} {img.shape}")
    magic = b"P5" if img.ndim == 2 else b"P6"
    header = magic + f"\n{img.shape[1]} {img.shape[0]}\n255\n".encode()
    pathlib.Path(path).write_bytes(header + np.ascontiguousarray(img).tobytes())


def read_image(path) -> np.ndarray:
    """Read one image file as a NumPy array (see the module docstring for formats)."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext == ".npy":
        return np.load(path, allow_pickle=False)
    if ext in (".pgm", ".ppm", ".pnm"):
        return read_pnm(path)
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(f"read_image: reading {ext} files needs Pillow (pip install pillow); "
                          f"without it use .npy or .pgm/.ppm images") from None
    with Image.open(path) as im:
        return np.array(im)


class ImageFolder(Dataset):
    """Images in ``root/<class_name>/<file>``; item ``i`` is ``(image, class_index)``.

    Args:
        root: the folder holding one sub-folder per class.
        transform: applied to each image (e.g. ``transforms.ToTensor()``).
        target_transform: applied to each class index.
        extensions: the file endings to load (default: all supported).
    """

    def __init__(self, root, transform=None, target_transform=None,
                 extensions=IMG_EXTENSIONS):
        self.root = pathlib.Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: {self.root} is not a directory")
        self.classes = sorted(d.name for d in self.root.iterdir() if d.is_dir())
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: couldn't find any class folder in {root}")
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        exts = tuple(e.lower() for e in extensions)
        self.samples = []
        for c in self.classes:
            for p in sorted((self.root / c).rglob("*")):
                if p.is_file() and p.suffix.lower() in exts:
                    self.samples.append((str(p), self.class_to_idx[c]))
        if not self.samples:
            raise FileNotFoundError(f"ImageFolder: found no files with extensions {exts} "
                                    f"under {root}")
        self.targets = [t for _, t in self.samples]
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        path, target = self.samples[index]
        img = read_image(path)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target
