"""ember.data: datasets, samplers, the DataLoader, transforms, text tokenization and loaders
for users' files and built-in datasets.

Matches: ``torch.utils.data`` (``Dataset``, ``TensorDataset``, ``Subset``, ``ConcatDataset``,
``random_split``, samplers, ``DataLoader``, ``default_collate``), plus image ``transforms``
(torchvision's names), ``Tokenizer``/``Vocabulary``, ``load_csv``/``ImageFolder`` and
``datasets.load_dataset``. Data code handles NumPy arrays and builds ember tensors when
batching; it never records autograd history.
"""

from . import datasets, transforms
from .collate import default_collate, default_convert
from .dataloader import DataLoader
from .dataset import (
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from .datasets import list_datasets, load_dataset
from .files import ImageFolder, from_numpy_arrays, load_csv, read_image
from .sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from .text import SequenceDataset, Tokenizer, Vocabulary

__all__ = ["Dataset", "IterableDataset", "TensorDataset", "Subset", "ConcatDataset",
           "random_split", "Sampler", "SequentialSampler", "RandomSampler",
           "SubsetRandomSampler", "WeightedRandomSampler", "BatchSampler", "DataLoader",
           "default_collate", "default_convert", "transforms", "datasets", "load_dataset",
           "list_datasets", "Tokenizer", "Vocabulary", "SequenceDataset", "load_csv",
           "from_numpy_arrays", "ImageFolder", "read_image"]
