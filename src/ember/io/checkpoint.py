"""``ember.save`` / ``ember.load``: checkpoints of nested state as safetensors files, no pickle.

Matches: ``torch.save(obj, f)`` / ``torch.load(f, weights_only=True)`` for the objects a
training loop saves (module and optimizer state dicts, epoch counters, configs), written in the
safetensors format instead of pickle, so loading can never execute code.

What can be saved: dicts (str or int keys; int keys come back as ints), lists, tuples, ember
Tensors, NumPy arrays (loaded back as arrays), ints, floats (including inf and nan), bools,
None and strings, nested up to :data:`MAX_DEPTH` levels. NumPy scalars are saved as the
equivalent Python number.

How it is stored: every tensor/array goes into the safetensors buffer, named by its path in the
object (``"state.0.exp_avg"``; a name already taken gets a ``#n`` suffix); the structure goes
into ``__metadata__`` as JSON (``"ember.format"`` = ``"1"``, ``"ember.tree"`` = the tree). In
the tree, containers and special values are one-key objects, plain JSON values stand for
themselves::

    {"dict": [[key, value], ...]}   {"list": [...]}   {"tuple": [...]}
    {"tensor": "<name>"}   {"ndarray": "<name>"}   {"float": "nan" | "inf" | "-inf"}

A dict of tensors with string keys (a module's ``state_dict()``) is thus stored under its own
keys: the file is an ordinary safetensors state dict that ``safetensors.torch.load_file`` reads.
``ember.load`` of a safetensors file without ember metadata returns ``dict[str, Tensor]``.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from ..autograd import Tensor
from .safetensors import CheckpointError, _Bad, _parse_json, atomic_write, encode_safetensors
from .safetensors import read_safetensors as _read

__all__ = ["save", "load", "FORMAT_VERSION", "MAX_DEPTH"]

FORMAT_VERSION = "1"
#: How deeply containers may nest in a checkpoint (checked when saving and loading).
MAX_DEPTH = 100
_FORMAT_KEY = "ember.format"
_TREE_KEY = "ember.tree"
_TAGS = ("dict", "list", "tuple", "tensor", "ndarray", "float")


def _describe_path(path) -> str:
    return "obj" + "".join(f"[{k!r}]" for k in path)


class _Encoder:
    """Turn an object into a JSON tree, collecting its tensors under unique names."""

    def __init__(self):
        self.tensors = {}
        self.active = set()  # ids of the containers on the current path (cycle check)

    def name_for(self, path) -> str:
        base = ".".join(str(k) for k in path) or "tensor"
        name, n = base, 0
        while name in self.tensors or name == "__metadata__":
            n += 1
            name = f"{base}#{n}"
        return name

    def encode(self, obj, path):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            if math.isfinite(obj):
                return float(obj)
            return {"float": "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")}
        if isinstance(obj, Tensor):
            name = self.name_for(path)
            self.tensors[name] = obj
            return {"tensor": name}
        if isinstance(obj, np.ndarray):
            name = self.name_for(path)
            self.tensors[name] = obj
            return {"ndarray": name}
        if isinstance(obj, np.generic) and obj.dtype.kind in "biuf":
            return self.encode(obj.item(), path)
        if isinstance(obj, (dict, list, tuple)):
            if len(path) >= MAX_DEPTH:
                raise ValueError(f"ember.save: {_describe_path(path)} is nested more than "
                                 f"{MAX_DEPTH} levels deep")
            if id(obj) in self.active:
                raise ValueError(f"ember.save: {_describe_path(path)} contains itself (a "
                                 f"circular reference)")
            self.active.add(id(obj))
            try:
                if isinstance(obj, dict):
                    items = []
                    for k, v in obj.items():
                        if not isinstance(k, (str, int)) or isinstance(k, bool):
                            raise TypeError(f"ember.save: dict keys must be str or int, got "
                                            f"{k!r} ({type(k).__name__}) in "
                                            f"{_describe_path(path)}")
                        items.append([k if isinstance(k, str) else int(k),
                                      self.encode(v, (*path, k))])
                    return {"dict": items}
                tag = "list" if isinstance(obj, list) else "tuple"
                return {tag: [self.encode(v, (*path, i)) for i, v in enumerate(obj)]}
            finally:
                self.active.discard(id(obj))
        raise TypeError(f"ember.save: cannot save {_describe_path(path)} of type "
                        f"{type(obj).__name__}; supported are dict, list, tuple, Tensor, "
                        f"numpy.ndarray, int, float, bool, None and str (ember.save never "
                        f"pickles arbitrary objects)")


def save(obj, path, metadata=None) -> None:
    """Save ``obj`` (a state dict or nested state) to ``path`` as a safetensors file.

    Matches: ``torch.save(obj, f)``, without pickle. The write is atomic (temporary file,
    fsync, rename): on failure the previous file at ``path`` stays intact.

    Args:
        obj: dicts (str/int keys), lists, tuples, Tensors, NumPy arrays, ints, floats, bools,
            None, strings, nested. A ``dict[str, Tensor]`` is stored under its own keys, so a
            module state dict opens with ``safetensors.torch.load_file``.
        path: the file to write (str or os.PathLike); ``.safetensors`` is the usual suffix.
        metadata: optional ``dict[str, str]`` of extra header metadata (keys starting with
            ``"ember."`` are reserved).

    Returns:
        None.

    Raises:
        TypeError / ValueError: ``obj`` holds something that cannot be saved (nothing is
            written).
        OSError: the file cannot be written; the message names the path.
    """
    enc = _Encoder()
    tree = enc.encode(obj, ())
    meta = {}
    if metadata is not None:
        if not hasattr(metadata, "items"):
            raise TypeError(f"ember.save: metadata must be a dict of str -> str, got "
                            f"{type(metadata).__name__}")
        for k in metadata:
            if isinstance(k, str) and k.startswith("ember."):
                raise ValueError(f"ember.save: metadata key {k!r} is reserved (keys starting "
                                 f"with 'ember.' belong to the checkpoint format)")
        meta.update(metadata)
    meta[_FORMAT_KEY] = FORMAT_VERSION
    meta[_TREE_KEY] = json.dumps(tree, ensure_ascii=False, separators=(",", ":"),
                                 allow_nan=False)
    header, arrays = encode_safetensors(enc.tensors, meta, "ember.save")
    atomic_write(path, [header, *arrays], "ember.save")


class _Decoder:
    """Rebuild an object from a JSON tree, checking every node (never trusting the file)."""

    def __init__(self, arrays):
        self.arrays = arrays

    def decode(self, node, depth):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            raise _Bad("malformed ember.tree: a bare JSON list (containers must be tagged "
                       "objects)")
        if not isinstance(node, dict) or len(node) != 1:
            raise _Bad("malformed ember.tree: expected a one-key object like {\"list\": [...]}"
                       f", got {_short(node)}")
        (tag, value), = node.items()
        if tag in ("tensor", "ndarray"):
            if not isinstance(value, str):
                raise _Bad(f"malformed ember.tree: a {tag} reference must be a name, got "
                           f"{_short(value)}")
            if value not in self.arrays:
                raise _Bad(f"ember.tree refers to tensor {value[:200]!r}, which is not in the "
                           f"file")
            arr = self.arrays[value].copy()  # each reference gets its own array
            return Tensor._make(arr) if tag == "tensor" else arr
        if tag == "float":
            special = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
            if not isinstance(value, str) or value not in special:
                raise _Bad(f"malformed ember.tree: {{\"float\": ...}} must be \"nan\", \"inf\" "
                           f"or \"-inf\", got {_short(value)}")
            return special[value]
        if tag not in ("dict", "list", "tuple"):
            raise _Bad(f"malformed ember.tree: unknown node type {tag[:50]!r}; expected one of "
                       f"{', '.join(_TAGS)}")
        if not isinstance(value, list):
            raise _Bad(f"malformed ember.tree: {{\"{tag}\": ...}} must hold a list, got "
                       f"{_short(value)}")
        if depth >= MAX_DEPTH:
            raise _Bad(f"ember.tree is nested more than {MAX_DEPTH} levels deep")
        if tag == "list":
            return [self.decode(v, depth + 1) for v in value]
        if tag == "tuple":
            return tuple(self.decode(v, depth + 1) for v in value)
        out = {}
        for item in value:
            if not isinstance(item, list) or len(item) != 2:
                raise _Bad(f"malformed ember.tree: dict items must be [key, value] pairs, got "
                           f"{_short(item)}")
            key = item[0]
            if not isinstance(key, (str, int)) or isinstance(key, bool):
                raise _Bad(f"malformed ember.tree: dict keys must be strings or integers, got "
                           f"{_short(key)}")
            if key in out:
                raise _Bad(f"malformed ember.tree: duplicate dict key {_short(key)}")
            out[key] = self.decode(item[1], depth + 1)
        return out


def _short(x) -> str:
    s = repr(x)
    return s if len(s) <= 80 else s[:77] + "..."


def load(path):
    """Load an object saved by :func:`save`, or any safetensors file.

    Matches: ``torch.load(f, weights_only=True)``; reads only data (JSON and raw arrays), never
    code, so untrusted files are safe to open.

    Args:
        path: the file to read (str or os.PathLike).

    Returns:
        The saved object: Tensors come back as ember Tensors, NumPy arrays as arrays, int dict
        keys as ints, tuples as tuples. A safetensors file written by another library (e.g.
        ``safetensors.torch.save_file``) gives ``dict[str, Tensor]`` (BF16 as float32).

    Raises:
        CheckpointError: the file is truncated, corrupted, hostile or not a safetensors file
            (a PyTorch pickle ``.pt`` file is recognised and named as such).
        OSError: the file cannot be opened (e.g. FileNotFoundError).
    """
    arrays, metadata = _read(path, where="ember.load")
    if _FORMAT_KEY not in metadata:
        return {k: Tensor._make(v) for k, v in arrays.items()}
    try:
        version = metadata[_FORMAT_KEY]
        if version != FORMAT_VERSION:
            raise _Bad(f"unsupported ember checkpoint format {version[:20]!r} (this ember "
                       f"reads format {FORMAT_VERSION}); it may come from a newer ember")
        if _TREE_KEY not in metadata:
            raise _Bad(f"metadata has {_FORMAT_KEY!r} but no {_TREE_KEY!r}")
        tree = _parse_json(metadata[_TREE_KEY], "ember.tree")
        return _Decoder(arrays).decode(tree, 0)
    except _Bad as e:
        raise CheckpointError(f"ember.load: cannot load '{os.fspath(path)}': {e}") from None
