"""Text: a ``Tokenizer`` (word or character level), a ``Vocabulary``, and
``SequenceDataset`` (fixed-length windows over a long id sequence, for language models).

A tokenizer is fitted on training text (``fit``), turns text into ids (``encode``,
``encode_batch`` with padding and truncation) and back (``decode``), and is saved as JSON
(``save``/``load``) next to the model: never pickle.

Vocabulary order (stable, so ids do not depend on the order of the training data): the special
tokens first, in the order given (default ``<pad>`` = 0, ``<unk>`` = 1, ``<bos>`` = 2,
``<eos>`` = 3), then the tokens by decreasing count, ties broken alphabetically.
Plays the role of torchtext's ``get_tokenizer``/``build_vocab_from_iterator``.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from ..autograd.creation import from_numpy
from .dataset import Dataset

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
# Words (letters, digits, underscores, with inner apostrophes: "don't") or single punctuation.
WORD_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"


class Vocabulary:
    """Tokens <-> ids. Unknown tokens map to ``<unk>`` (when it is among the specials).

    Example:
        >>> v = Vocabulary.build([["a", "b", "a"]])
        >>> v["a"], v["zzz"], v.lookup_token(4), len(v)
        (4, 1, 'a', 6)
    """

    def __init__(self, tokens: Sequence[str], specials: Sequence[str] = SPECIALS):
        self.itos = list(tokens)
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("Vocabulary: tokens must be unique")
        self.specials = [s for s in specials if s in self.stoi]

    @classmethod
    def build(cls, token_lists: Iterable[Iterable[str]], min_freq: int = 1,
              max_size: int | None = None, specials: Sequence[str] = SPECIALS) -> Vocabulary:
        """Count tokens and keep those seen at least ``min_freq`` times.

        ``max_size`` caps the whole vocabulary, specials included.
        """
        counts = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        specials = list(dict.fromkeys(specials))
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in specials),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            if max_size < len(specials):
                raise ValueError(f"Vocabulary.build: max_size={max_size} is smaller than the "
                                 f"{len(specials)} special tokens")
            kept = kept[:max_size - len(specials)]
        return cls(specials + kept, specials)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        i = self.stoi.get(token)
        if i is None:
            if "<unk>" not in self.stoi:
                raise KeyError(f"Vocabulary: token {token!r} is unknown and there is no <unk>")
            return self.stoi["<unk>"]
        return i

    def lookup_token(self, index: int) -> str:
        return self.itos[index]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self[t] for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.itos[int(i)] for i in ids]

    def _special_id(self, name: str) -> int | None:
        return self.stoi.get(name)

    pad_id = property(lambda self: self._special_id("<pad>"))
    unk_id = property(lambda self: self._special_id("<unk>"))
    bos_id = property(lambda self: self._special_id("<bos>"))
    eos_id = property(lambda self: self._special_id("<eos>"))

    def to_dict(self) -> dict:
        return {"tokens": self.itos, "specials": self.specials}

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        return cls(d["tokens"], d.get("specials", SPECIALS))

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)}, specials={self.specials})"


class Tokenizer:
    """Split text into words or characters and map them to ids with a fitted vocabulary.

    Args:
        mode: ``"word"`` (regex ``pattern``) or ``"char"`` (every character).
        lower: lowercase the text first.
        pattern: the regex whose matches are the word tokens.

    Example:
        >>> tok = Tokenizer("word").fit(["The cat sat.", "the dog sat"])
        >>> tok.tokenize("The dog!")
        ['the', 'dog', '!']
        >>> tok.decode(tok.encode("the cat sat", add_bos=True))
        'the cat sat'
    """

    def __init__(self, mode: str = "word", lower: bool = True, pattern: str = WORD_PATTERN,
                 vocab: Vocabulary | None = None):
        if mode not in ("word", "char"):
            raise ValueError(f"Tokenizer: mode must be 'word' or 'char', got {mode!r}")
        self.mode, self.lower, self.pattern, self.vocab = mode, lower, pattern, vocab
        self._regex = re.compile(pattern)

    def tokenize(self, text: str) -> list[str]:
        if self.lower:
            text = text.lower()
        return list(text) if self.mode == "char" else self._regex.findall(text)

    def fit(self, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None,
            specials: Sequence[str] = SPECIALS) -> Tokenizer:
        """Build the vocabulary from training texts; returns ``self``."""
        self.vocab = Vocabulary.build((self.tokenize(t) for t in texts), min_freq, max_size,
                                      specials)
        return self

    def _need_vocab(self) -> Vocabulary:
        if self.vocab is None:
            raise RuntimeError("Tokenizer: no vocabulary yet; call fit(texts) or load(path)")
        return self.vocab

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        vocab = self._need_vocab()
        ids = vocab.encode(self.tokenize(text))
        for flag, tid, name in ((add_bos, vocab.bos_id, "<bos>"), (add_eos, vocab.eos_id, "<eos>")):
            if flag and tid is None:
                raise ValueError(f"Tokenizer.encode: the vocabulary has no {name} token")
        return ([vocab.bos_id] if add_bos else []) + ids + ([vocab.eos_id] if add_eos else [])

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Ids -> text (tokens joined by spaces in word mode, directly in char mode)."""
        vocab = self._need_vocab()
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        tokens = vocab.decode(ids)
        if skip_special:
            tokens = [t for t in tokens if t not in vocab.specials]
        return ("" if self.mode == "char" else " ").join(tokens)

    def encode_batch(self, texts: Sequence[str], max_length: int | None = None,
                     add_bos: bool = False, add_eos: bool = False, truncation: bool = True,
                     as_tensors: bool = True):
        """Encode several texts into one padded ``(B, L)`` int64 batch and their lengths.

        ``L`` is the longest encoding, capped at ``max_length`` when given (longer ones are
        truncated at the end; with ``truncation=False`` they raise instead). Padding uses
        ``<pad>``. Returns ``(ids, lengths)``: ember tensors, or NumPy arrays with
        ``as_tensors=False``.
        """
        vocab = self._need_vocab()
        if vocab.pad_id is None:
            raise ValueError("Tokenizer.encode_batch: the vocabulary has no <pad> token")
        encoded = [self.encode(t, add_bos, add_eos) for t in texts]
        if max_length is not None:
            too_long = [i for i, e in enumerate(encoded) if len(e) > max_length]
            if too_long and not truncation:
                raise ValueError(f"Tokenizer.encode_batch: text {too_long[0]} encodes to "
                                 f"{len(encoded[too_long[0]])} ids > max_length={max_length}")
            encoded = [e[:max_length] for e in encoded]
        width = max((len(e) for e in encoded), default=0)
        ids = np.full((len(encoded), width), vocab.pad_id, dtype=np.int64)
        for row, e in enumerate(encoded):
            ids[row, :len(e)] = e
        lengths = np.array([len(e) for e in encoded], dtype=np.int64)
        return (from_numpy(ids), from_numpy(lengths)) if as_tensors else (ids, lengths)

    def to_dict(self) -> dict:
        return {"format": "ember.Tokenizer", "version": 1, "mode": self.mode,
                "lower": self.lower, "pattern": self.pattern,
                "vocab": self.vocab.to_dict() if self.vocab is not None else None}

    @classmethod
    def from_dict(cls, d: dict) -> Tokenizer:
        if d.get("format") != "ember.Tokenizer":
            raise ValueError("Tokenizer.from_dict: not an ember tokenizer description")
        vocab = Vocabulary.from_dict(d["vocab"]) if d.get("vocab") is not None else None
        return cls(d["mode"], d["lower"], d["pattern"], vocab)

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer (settings and vocabulary) as UTF-8 JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, ensure_ascii=False, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Tokenizer:
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def __repr__(self) -> str:
        size = len(self.vocab) if self.vocab is not None else None
        return f"Tokenizer(mode={self.mode!r}, lower={self.lower}, vocab_size={size})"


class SequenceDataset(Dataset):
    """Windows over one long id sequence for next-token prediction.

    Item ``i`` is ``(ids[s:s+L], ids[s+1:s+L+1])`` with ``s = i * stride`` (``stride``
    defaults to ``L = block_size``: non-overlapping windows), as int64 tensors.
    """

    def __init__(self, ids, block_size: int, stride: int | None = None):
        self.ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        self.block_size, self.stride = int(block_size), int(stride or block_size)
        if self.block_size <= 0 or self.stride <= 0:
            raise ValueError("SequenceDataset: block_size and stride must be positive")

    def __len__(self) -> int:
        return max(0, (len(self.ids) - self.block_size - 1) // self.stride + 1)

    def _starts(self, indices) -> np.ndarray:
        idx = np.asarray(indices, dtype=np.int64)
        n = len(self)
        if ((idx < -n) | (idx >= n)).any():
            raise IndexError(f"SequenceDataset: index out of range for length {n}")
        return (idx % n) * self.stride

    def __getitem__(self, index: int):
        s = int(self._starts(index))
        return (from_numpy(self.ids[s:s + self.block_size]),
                from_numpy(self.ids[s + 1:s + self.block_size + 1]))

    def get_batch(self, indices) -> list:
        starts = self._starts(indices)[:, None] + np.arange(self.block_size)
        return [from_numpy(self.ids[starts]), from_numpy(self.ids[starts + 1])]
