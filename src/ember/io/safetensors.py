"""Read and write the safetensors format: named arrays, a JSON header, no code execution.

Matches: ``safetensors.numpy.save_file`` / ``load_file`` and ``safetensors.torch.save_file`` /
``load_file`` (files written by either side open with the other).

The layout of a file (all integers little-endian)::

    8 bytes    N, the header length (unsigned 64-bit)
    N bytes    UTF-8 JSON object, padded with spaces to a multiple of 8:
               {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
                "__metadata__": {"<str>": "<str>", ...}}        (``__metadata__`` optional)
    the rest   the byte buffer: every tensor in C order, offsets relative to the buffer's start,
               tensors back to back without gaps or overlaps, covering the whole buffer.

Reading never trusts the file: every header field is checked (and sizes computed with Python
ints) before anything is allocated, so a truncated, corrupted or hostile file raises
:class:`CheckpointError` naming the file and the problem instead of crashing, hanging or
allocating more memory than the file holds. Writing is atomic: the bytes go to a temporary
file in the target directory, which is fsynced and then renamed over the target, so a crash or
error never leaves a half-written checkpoint behind and the previous file stays intact.
"""

from __future__ import annotations

import json
import os
import secrets
import sys

import numpy as np

from ..autograd import Tensor

__all__ = ["CheckpointError", "save_safetensors", "load_safetensors", "read_safetensors",
           "MAX_HEADER_SIZE"]

#: The largest header accepted (the safetensors library's limit too): 100 MB.
MAX_HEADER_SIZE = 100_000_000
_MAX_NDIM = 64  # NumPy's limit on the number of dimensions

# safetensors dtype code -> little-endian NumPy dtype of the stored bytes.
_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # read as raw 16-bit patterns, widened to float32
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
# NumPy dtype kind + itemsize -> safetensors code, for writing.
_CODES = {("f", 8): "F64", ("f", 4): "F32", ("f", 2): "F16", ("i", 8): "I64", ("i", 4): "I32",
          ("i", 2): "I16", ("i", 1): "I8", ("u", 1): "U8", ("b", 1): "BOOL"}
# Codes valid in safetensors that ember has no dtype for (named as such in the error).
_KNOWN_UNSUPPORTED = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0", "F4", "F6_E2M3",
                      "F6_E3M2", "C64"}


class CheckpointError(ValueError):
    """A checkpoint file is truncated, corrupted, hostile or not a safetensors file.

    The message names the file and what was wrong with it.
    """


# ---------------------------------------------------------------------------------- writing

def _as_array(value, name: str, where: str) -> np.ndarray:
    """The C-contiguous little-endian array to store for ``value`` (a Tensor or ndarray)."""
    if isinstance(value, Tensor):
        arr = value._data
    elif isinstance(value, (np.ndarray, np.generic)):
        arr = np.asarray(value)
    else:
        raise TypeError(f"{where}: tensor {name!r} must be an ember Tensor or a NumPy array, "
                        f"got {type(value).__name__}")
    if (arr.dtype.kind, arr.dtype.itemsize) not in _CODES:
        raise TypeError(f"{where}: tensor {name!r} has dtype {arr.dtype}, which safetensors "
                        f"cannot store from ember; expected one of float16/32/64, "
                        f"int8/16/32/64, uint8 or bool")
    if not arr.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d into 1-d)
        arr = arr.copy(order="C")
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and sys.byteorder == "big"):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr


def encode_safetensors(tensors, metadata=None, where: str = "ember.io.save_safetensors"):
    """The header bytes and the ordered arrays of a safetensors file (nothing written yet).

    Args:
        tensors: mapping from name (str) to an ember Tensor or NumPy array.
        metadata: optional mapping of str to str, stored as ``__metadata__``.
        where: the API name used in error messages.

    Returns:
        ``(header, arrays)``: the 8-byte length prefix plus padded JSON header, and the arrays
        in buffer order (their bytes follow the header back to back).

    Raises:
        TypeError: a name, value or metadata entry of the wrong type.
        ValueError: a reserved or duplicate name.
    """
    if not hasattr(tensors, "items"):
        raise TypeError(f"{where}: expected a dict of name -> tensor, got "
                        f"{type(tensors).__name__}")
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: tensor names must be strings, got {name!r} "
                            f"({type(name).__name__})")
        if name == "__metadata__":
            raise ValueError(f"{where}: the name '__metadata__' is reserved by the safetensors "
                             f"format; rename that tensor")
        entries.append((name, _as_array(value, name, where)))
    if metadata is not None:
        if not hasattr(metadata, "items"):
            raise TypeError(f"{where}: metadata must be a dict of str -> str, got "
                            f"{type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError(f"{where}: metadata must map str to str, got {k!r}: "
                                f"{type(v).__name__}")
    # Buffer order: widest items first (stable), so every tensor is aligned to its item size
    # in the file (the buffer itself starts at a multiple of 8), as the safetensors library
    # does. The JSON header keeps the caller's order.
    order = sorted(range(len(entries)), key=lambda i: -entries[i][1].dtype.itemsize)
    offsets = {}
    pos = 0
    for i in order:
        nbytes = entries[i][1].nbytes
        offsets[i] = [pos, pos + nbytes]
        pos += nbytes
    header = {}
    if metadata:
        header["__metadata__"] = dict(metadata)
    for i, (name, arr) in enumerate(entries):
        header[name] = {"dtype": _CODES[(arr.dtype.kind, arr.dtype.itemsize)],
                        "shape": list(arr.shape), "data_offsets": offsets[i]}
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    prefix = len(text).to_bytes(8, "little")
    return prefix + text, [entries[i][1] for i in order]


def _open_for_writing(path: str):
    """Create and open (binary, exclusive) the temporary file next to ``path``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    return os.fdopen(fd, "wb")


def _fsync_dir(directory: str) -> None:
    """Flush a directory entry to disk where the platform allows it (best effort)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, chunks, where: str) -> None:
    """Write ``chunks`` (bytes or C-contiguous arrays) to ``path`` atomically.

    The data goes to a temporary file in the same directory, is flushed and fsynced, then
    ``os.replace``-d onto ``path``; the directory is fsynced where possible. On any failure the
    temporary file is removed and the previous ``path`` is left untouched.

    Args:
        path: the target file (str or os.PathLike).
        chunks: iterable of bytes / NumPy arrays, written in order.
        where: the API name used in error messages.

    Raises:
        OSError: (of the original subclass and errno) ``"<where>: cannot write '<path>': ..."``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    tmp = None
    try:
        for _ in range(100):
            candidate = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
            try:
                f = _open_for_writing(candidate)
            except FileExistsError:
                continue
            tmp = candidate
            break
        else:
            raise FileExistsError(17, "could not create a unique temporary file")
        with f:
            for chunk in chunks:
                if isinstance(chunk, np.ndarray):
                    if chunk.size == 0:
                        continue
                    chunk = chunk.reshape(-1).view(np.uint8)
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(directory)
    except OSError as e:
        _remove_quietly(tmp)
        reason = e.strerror or str(e) or type(e).__name__
        err = type(e)(f"{where}: cannot write '{path}': {reason}")
        err.errno = e.errno
        raise err from e
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(tmp) -> None:
    if tmp is None:
        return
    try:
        os.unlink(tmp)
    except OSError:
        pass


def save_safetensors(tensors, path, metadata=None) -> None:
    """Save a dict of named tensors as a safetensors file (atomically).

    Matches: ``safetensors.numpy.save_file(tensors, filename, metadata)`` (and produces files
    that ``safetensors.torch.load_file`` reads).

    Args:
        tensors: ``dict[str, Tensor | np.ndarray]``; dtypes float16/32/64, int8/16/32/64,
            uint8 or bool. Gradients are not saved.
        path: the file to write (str or os.PathLike); replaced atomically if it exists.
        metadata: optional ``dict[str, str]`` stored in the header's ``__metadata__``.

    Returns:
        None.

    Raises:
        TypeError / ValueError: bad names, values or metadata (nothing is written).
        OSError: the file cannot be written; the message names the path.
    """
    where = "ember.io.save_safetensors"
    header, arrays = encode_safetensors(tensors, metadata, where)
    atomic_write(path, [header, *arrays], where)


# ---------------------------------------------------------------------------------- reading

def _sniff(head: bytes) -> str | None:
    """Name a well-known non-safetensors format from the first bytes, else None."""
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return ("this looks like a PyTorch pickle checkpoint; ember only loads safetensors "
                "files (this is a zip archive, as torch.save writes; convert it in PyTorch with "
                "safetensors.torch.save_file(state_dict, path))")
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return ("this looks like a PyTorch pickle checkpoint; ember only loads safetensors "
                "files (this is a pickle stream; convert it in PyTorch with "
                "safetensors.torch.save_file(state_dict, path))")
    if head[:6] == b"\x93NUMPY":
        return "this looks like a NumPy .npy file; ember only loads safetensors files"
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return "this looks like an HDF5 file; ember only loads safetensors files"
    return None


def _parse_json(text: bytes, what: str):
    """Decode UTF-8 JSON strictly: no NaN/Infinity literals, no duplicate keys."""
    def no_constants(name):
        raise ValueError(f"invalid JSON constant {name}")

    def pairs(items):
        out = dict(items)
        if len(out) != len(items):
            seen = set()
            dup = next(k for k, _ in items if k in seen or seen.add(k))
            raise ValueError(f"duplicate key {dup!r}")
        return out

    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _Bad(f"{what} is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        return json.loads(text, parse_constant=no_constants, object_pairs_hook=pairs)
    except RecursionError:
        raise _Bad(f"{what} is nested too deeply") from None
    except ValueError as e:
        raise _Bad(f"{what} is not valid JSON ({e})") from None


class _Bad(Exception):
    """Internal: a problem with the file, turned into CheckpointError with the file's name."""


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check_entry(name: str, info, buffer_len: int):
    """Validate one header entry; returns (storage dtype, shape, begin, end)."""
    label = f"tensor {name!r}"
    if not isinstance(info, dict):
        raise _Bad(f"{label}: header entry must be an object with dtype, shape and "
                   f"data_offsets, got {type(info).__name__}")
    for field in ("dtype", "shape", "data_offsets"):
        if field not in info:
            raise _Bad(f"{label}: header entry has no {field!r}")
    code = info["dtype"]
    if not isinstance(code, str):
        raise _Bad(f"{label}: dtype must be a string, got {code!r}")
    if code not in _DTYPES:
        if code in _KNOWN_UNSUPPORTED:
            raise _Bad(f"{label}: dtype {code} is not supported by ember; expected one of "
                       f"{', '.join(_DTYPES)}")
        raise _Bad(f"{label}: unknown dtype {code[:40]!r}; expected one of "
                   f"{', '.join(_DTYPES)}")
    shape = info["shape"]
    if not isinstance(shape, list):
        raise _Bad(f"{label}: shape must be a list of non-negative integers, got "
                   f"{type(shape).__name__}")
    if len(shape) > _MAX_NDIM:
        raise _Bad(f"{label}: shape has {len(shape)} dimensions; at most {_MAX_NDIM} are "
                   f"supported")
    for d in shape:
        if not _is_int(d) or d < 0:
            raise _Bad(f"{label}: shape must be a list of non-negative integers, got "
                       f"{str(shape)[:200]}")
    offs = info["data_offsets"]
    if not isinstance(offs, list) or len(offs) != 2 or not all(_is_int(o) for o in offs):
        raise _Bad(f"{label}: data_offsets must be a list of two integers [begin, end], got "
                   f"{str(offs)[:200]}")
    begin, end = offs
    if begin < 0 or end < 0:
        raise _Bad(f"{label}: data_offsets {offs} are negative")
    if end < begin:
        raise _Bad(f"{label}: data_offsets {offs} are out of order (end before begin)")
    if end > buffer_len:
        raise _Bad(f"{label}: data_offsets {offs} run past the end of the file (the data "
                   f"buffer holds {buffer_len} bytes); the file may be truncated")
    dt = _DTYPES[code]
    numel = 1
    alloc = dt.itemsize  # what NumPy would compute (zeros counted as 1)
    for d in shape:
        numel *= d
        alloc *= max(d, 1)
    if alloc > sys.maxsize:
        raise _Bad(f"{label}: shape {str(shape)[:200]} is too large to allocate")
    nbytes = numel * dt.itemsize
    if nbytes != end - begin:
        raise _Bad(f"{label}: shape {shape} of dtype {code} needs {nbytes} bytes but "
                   f"data_offsets {offs} span {end - begin}")
    return code, dt, tuple(shape), begin, end


def _read_file(path, where: str):
    """Validate the file and read every tensor into an owned array.

    Returns ``(arrays, metadata)``; raises CheckpointError for a bad file.
    """
    path = os.fspath(path)

    def bad(msg):
        return CheckpointError(f"{where}: cannot load '{path}': {msg}")

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(9)
        try:
            if len(head) == 0:
                raise _Bad("the file is empty")
            if len(head) < 9 or head[8:9] != b"{":
                known = _sniff(head + f.read(7))
                if known:
                    raise _Bad(known)
            if len(head) < 8:
                raise _Bad(f"the file is {len(head)} bytes long, too short for a safetensors "
                           f"header (8-byte length + JSON)")
            n = int.from_bytes(head[:8], "little")
            if n > MAX_HEADER_SIZE:
                raise _Bad(f"header length {n} exceeds the {MAX_HEADER_SIZE}-byte limit; this "
                           f"is not a safetensors file or it is corrupted")
            if n > size - 8:
                raise _Bad(f"header length {n} is larger than the rest of the file "
                           f"({size - 8} bytes); the file is truncated or not a safetensors "
                           f"file")
            if n < 2:
                raise _Bad(f"header length {n} is too small for a JSON object")
            f.seek(8)
            text = f.read(n)
            if len(text) != n:
                raise _Bad("the file is truncated (it shrank while being read)")
            if text[:1] != b"{":
                raise _Bad("the header is not a JSON object (it does not start with '{'); "
                           "not a safetensors file")
            header = _parse_json(text, "the header")
            if not isinstance(header, dict):
                raise _Bad(f"the header must be a JSON object, got {type(header).__name__}")
            buffer_len = size - 8 - n
            metadata = header.pop("__metadata__", {})
            if not isinstance(metadata, dict) or not all(
                    isinstance(v, str) for v in metadata.values()):
                raise _Bad("__metadata__ must be an object mapping strings to strings")
            plan = [(name, *_check_entry(name, info, buffer_len))
                    for name, info in header.items()]
            _check_layout(plan, buffer_len)
            arrays = {}
            base = 8 + n
            for name, code, dt, shape, begin, end in plan:
                arr = np.empty(shape, dtype=dt)
                if end > begin:
                    f.seek(base + begin)
                    got = f.readinto(memoryview(arr.reshape(-1).view(np.uint8)))
                    if got != end - begin:
                        raise _Bad(f"tensor {name!r}: the file is truncated (it shrank while "
                                   f"being read)")
                arrays[name] = _to_native(arr, code)
        except _Bad as e:
            raise bad(str(e)) from None
    return arrays, metadata


def _check_layout(plan, buffer_len: int) -> None:
    """Tensors must tile the buffer exactly: no gaps, no overlaps, nothing left over."""
    pos = 0
    for name, _, _, _, begin, end in sorted(plan, key=lambda p: (p[4], p[5])):
        if begin < pos:
            raise _Bad(f"tensor {name!r}: data_offsets [{begin}, {end}] overlap the previous "
                       f"tensor (which ends at {pos})")
        if begin > pos:
            raise _Bad(f"tensor {name!r}: data_offsets [{begin}, {end}] leave a gap of "
                       f"{begin - pos} bytes after the previous tensor (ending at {pos})")
        pos = end
    if pos != buffer_len:
        raise _Bad(f"the tensors cover {pos} bytes but the data buffer holds {buffer_len}; "
                   f"the file has {buffer_len - pos} unaccounted bytes at the end")


def _to_native(arr: np.ndarray, code: str) -> np.ndarray:
    if code == "BF16":  # bfloat16 is the top half of a float32
        return (arr.astype(np.uint32) << 16).view(np.float32)
    if code == "BOOL":  # any nonzero byte is True (NumPy must only ever see 0 or 1)
        return arr.view(np.uint8) != 0
    if arr.dtype.byteorder == "<" and sys.byteorder == "big":
        return arr.astype(arr.dtype.newbyteorder("="))
    return arr


def read_safetensors(path, *, where: str = "ember.io.read_safetensors"):
    """Read a safetensors file into NumPy arrays, plus its metadata.

    Matches: ``safetensors.numpy.load_file`` (plus ``safe_open(...).metadata()``); BF16 is
    returned as float32.

    Args:
        path: the file to read (str or os.PathLike).
        where: the API name used in error messages.

    Returns:
        ``(arrays, metadata)``: ``dict[str, np.ndarray]`` in header order (owned, writable,
        native byte order) and the ``__metadata__`` ``dict[str, str]`` (empty if none).

    Raises:
        CheckpointError: the file is truncated, corrupted, or not a safetensors file.
        OSError: the file cannot be opened (e.g. FileNotFoundError).
    """
    return _read_file(path, where)


def load_safetensors(path) -> dict:
    """Load a safetensors file as a dict of ember tensors.

    Matches: ``safetensors.torch.load_file(filename)``; BF16 tensors come back as float32.

    Args:
        path: the file to read (str or os.PathLike).

    Returns:
        ``dict[str, Tensor]`` in the order of the file's header.

    Raises:
        CheckpointError: the file is truncated, corrupted, or not a safetensors file.
        OSError: the file cannot be opened.
    """
    arrays, _ = _read_file(path, "ember.io.load_safetensors")
    return {k: Tensor._make(v) for k, v in arrays.items()}
