"""Tokenizer and Vocabulary: splitting, building, encode/decode, batches, JSON round trips."""

import json

import numpy as np
import pytest

from ember.data import SequenceDataset, Tokenizer, Vocabulary

TEXTS = ["The cat sat on the mat.", "The dog didn't sit!", "A cat, a dog."]


def test_word_tokenizer_splits_and_lowercases():
    tok = Tokenizer("word")
    assert tok.tokenize("The dog didn't sit!") == ["the", "dog", "didn't", "sit", "!"]
    assert Tokenizer("word", lower=False).tokenize("Hi, Bob") == ["Hi", ",", "Bob"]
    assert Tokenizer("char").tokenize("Ab c") == ["a", "b", " ", "c"]
    with pytest.raises(ValueError):
        Tokenizer("bpe")


def test_vocabulary_order_min_freq_max_size():
    v = Vocabulary.build([["b", "a", "b", "c"], ["a", "b", "d"]])
    assert v.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert v.itos[4:] == ["b", "a", "c", "d"]  # by count, ties alphabetical
    assert (v.pad_id, v.unk_id, v.bos_id, v.eos_id) == (0, 1, 2, 3)
    assert v["zzz"] == 1 and "a" in v and "zzz" not in v
    assert Vocabulary.build([["b", "a", "b", "c"], ["a", "b", "d"]], min_freq=2).itos[4:] == \
        ["b", "a"]
    assert len(Vocabulary.build([list("abcdef")], max_size=6)) == 6
    # the same tokens in another order give the same ids
    assert Vocabulary.build([["d", "b", "a"], ["c", "b", "a", "b"]]).itos == v.itos
    no_unk = Vocabulary.build([["x"]], specials=["<pad>"])
    with pytest.raises(KeyError):
        no_unk["y"]


def test_encode_decode_round_trip():
    tok = Tokenizer("word").fit(TEXTS)
    ids = tok.encode("the cat sat on the mat .", add_bos=True, add_eos=True)
    assert ids[0] == tok.vocab.bos_id and ids[-1] == tok.vocab.eos_id
    assert tok.decode(ids) == "the cat sat on the mat ."
    assert "<bos>" in tok.decode(ids, skip_special=False)
    assert tok.encode("the zebra")[1] == tok.vocab.unk_id
    chars = Tokenizer("char").fit(TEXTS)
    assert chars.decode(chars.encode("a cat, a dog.")) == "a cat, a dog."
    with pytest.raises(RuntimeError, match="fit"):
        Tokenizer().encode("x")


def test_encode_batch_pads_and_truncates():
    tok = Tokenizer("word").fit(TEXTS)
    ids, lengths = tok.encode_batch(["the cat", "a dog sat on the mat", "cat"])
    assert ids.shape == (3, 6) and lengths.tolist() == [2, 6, 1]
    a = ids.numpy()
    assert (a[0, 2:] == tok.vocab.pad_id).all() and (a[2, 1:] == tok.vocab.pad_id).all()
    assert tok.decode(a[1]) == "a dog sat on the mat"
    ids, lengths = tok.encode_batch(["the cat", "a dog sat on the mat"], max_length=4,
                                    add_bos=True, add_eos=True)
    assert ids.shape == (2, 4) and lengths.tolist() == [4, 4]
    assert ids.numpy()[0].tolist()[0] == tok.vocab.bos_id
    with pytest.raises(ValueError, match="max_length"):
        tok.encode_batch(["a dog sat on the mat"], max_length=2, truncation=False)
    arr, _ = tok.encode_batch(["cat"], as_tensors=False)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.int64


def test_save_load_json(tmp_path):
    tok = Tokenizer("char", lower=False).fit(["Héllo wörld", "ça va"], min_freq=1)
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["mode"] == "char" and "é" in data["vocab"]["tokens"]
    back = Tokenizer.load(path)
    assert back.vocab == tok.vocab and back.mode == "char" and back.lower is False
    assert back.encode("Hé ça") == tok.encode("Hé ça")
    with pytest.raises(ValueError):
        Tokenizer.from_dict({"mode": "word"})


def test_sequence_dataset_windows():
    ds = SequenceDataset(np.arange(11), block_size=4)
    assert len(ds) == 2
    x, y = ds[1]
    assert x.tolist() == [4, 5, 6, 7] and y.tolist() == [5, 6, 7, 8]
    xb, yb = ds.get_batch([1, 0])
    assert xb.tolist() == [[4, 5, 6, 7], [0, 1, 2, 3]] and yb.tolist()[1] == [1, 2, 3, 4]
    assert len(SequenceDataset(np.arange(11), block_size=4, stride=1)) == 7
    with pytest.raises(IndexError):
        ds[2]
