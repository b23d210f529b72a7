"""The safetensors reader/writer: round trips, byte layout, interop with the `safetensors`
library, and a crafted bad file for every check the reader makes (each must raise
CheckpointError naming the file, never another exception)."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ember
from ember.io import CheckpointError, load_safetensors, read_safetensors, save_safetensors
from ember.io.safetensors import encode_safetensors

ALL_DTYPES = [np.float16, np.float32, np.float64, np.int8, np.uint8, np.int16, np.int32,
              np.int64, np.bool_]


def _sample(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "b":
        return np.asarray(rng.random(shape) > 0.5)
    if np.dtype(dtype).kind == "f":
        return np.asarray(rng.standard_normal(shape).astype(dtype))
    info = np.iinfo(dtype)
    return np.asarray(rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True))


def craft(path, header, buffer=b"", *, length=None, pad=True):
    """Write a file with a given header (dict or raw bytes) and buffer; returns the path."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    n = len(text) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + text + buffer)
    return path


# ---------------------------------------------------------------------------------- round trips

@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 3), (2, 0, 4), (1, 2, 3, 2)])
def test_round_trip_every_dtype_and_shape(tmp_path, dtype, shape):
    arr = _sample(dtype, shape)
    path = tmp_path / "t.safetensors"
    save_safetensors({"a": ember.tensor(arr), "b": arr}, path)
    out = load_safetensors(path)
    assert list(out) == ["a", "b"]
    for v in out.values():
        assert isinstance(v, ember.Tensor)
        assert v.shape == shape and v.numpy().dtype == np.dtype(dtype)
        np.testing.assert_array_equal(v.numpy(), arr)


def test_loaded_arrays_are_owned_and_writable(tmp_path):
    path = tmp_path / "t.safetensors"
    save_safetensors({"a": np.arange(6.0).reshape(2, 3)}, path)
    arrays, meta = read_safetensors(path)
    a = arrays["a"]
    assert a.flags.owndata or a.base is not None and a.base.flags.owndata
    a[0, 0] = 42.0  # writable
    assert meta == {}


def test_noncontiguous_and_big_endian_inputs(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    nc = base[::2, 1::2]
    be = np.arange(5, dtype=">i4")
    path = tmp_path / "t.safetensors"
    save_safetensors({"nc": nc, "be": be, "t": ember.t(ember.tensor(base))}, path)
    out = load_safetensors(path)
    np.testing.assert_array_equal(out["nc"].numpy(), nc)
    np.testing.assert_array_equal(out["be"].numpy(), be)
    assert out["be"].numpy().dtype == np.int32
    np.testing.assert_array_equal(out["t"].numpy(), base.T)


def test_metadata_round_trip(tmp_path):
    path = tmp_path / "t.safetensors"
    meta = {"format": "np", "note": "héllo ✓", "empty": ""}
    save_safetensors({"x": np.zeros(2, np.float32)}, path, metadata=meta)
    _, got = read_safetensors(path)
    assert got == meta


def test_empty_dict_round_trip(tmp_path):
    path = tmp_path / "t.safetensors"
    save_safetensors({}, path)
    assert load_safetensors(path) == {}


def test_byte_layout(tmp_path):
    path = tmp_path / "t.safetensors"
    tensors = {"flag": np.array([True, False, True]), "w": np.ones((2, 2), np.float32),
               "d": np.arange(3, dtype=np.float64), "h": np.ones(3, np.float16)}
    save_safetensors(tensors, path)
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0 and raw[8:9] == b"{"
    header = json.loads(raw[8:8 + n])
    assert list(header) == list(tensors)  # the header keeps the caller's order
    spans = sorted(tuple(v["data_offsets"]) for v in header.values())
    pos = 0
    for begin, end in spans:  # contiguous, no gaps, covering the buffer
        assert begin == pos
        pos = end
    assert pos == len(raw) - 8 - n
    for name, info in header.items():  # every tensor aligned to its item size in the file
        itemsize = tensors[name].dtype.itemsize
        assert (8 + n + info["data_offsets"][0]) % itemsize == 0
        begin, end = info["data_offsets"]
        got = np.frombuffer(raw[8 + n + begin: 8 + n + end], tensors[name].dtype.newbyteorder("<"))
        np.testing.assert_array_equal(got.reshape(tensors[name].shape), tensors[name])
    assert header["w"] == {"dtype": "F32", "shape": [2, 2], "data_offsets": header["w"]
                           ["data_offsets"]}


# ---------------------------------------------------------------------------------- save errors

def test_save_rejects_bad_inputs(tmp_path):
    path = tmp_path / "t.safetensors"
    with pytest.raises(TypeError, match="names must be strings"):
        save_safetensors({1: np.zeros(1)}, path)
    with pytest.raises(ValueError, match="reserved"):
        save_safetensors({"__metadata__": np.zeros(1)}, path)
    with pytest.raises(TypeError, match="complex128"):
        save_safetensors({"c": np.zeros(2, np.complex128)}, path)
    with pytest.raises(TypeError, match="uint16"):
        save_safetensors({"u": np.zeros(2, np.uint16)}, path)
    with pytest.raises(TypeError, match="'x' must be an ember Tensor or a NumPy array"):
        save_safetensors({"x": [1.0, 2.0]}, path)
    with pytest.raises(TypeError, match="metadata must map str to str"):
        save_safetensors({"x": np.zeros(1)}, path, metadata={"a": 1})
    with pytest.raises(TypeError, match="expected a dict"):
        save_safetensors([np.zeros(1)], path)
    assert not path.exists() and os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------- interop

def test_files_open_with_safetensors_numpy(tmp_path):
    sn = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    tensors = {f"t{i}": _sample(dt, (2, 3), i) for i, dt in enumerate(ALL_DTYPES)}
    tensors["scalar"] = np.array(1.5)
    tensors["empty"] = np.zeros((0, 2), np.int64)
    path = tmp_path / "t.safetensors"
    save_safetensors(tensors, path, metadata={"k": "v"})
    got = sn.load_file(str(path))
    assert set(got) == set(tensors)
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        np.testing.assert_array_equal(got[k], v)
    with safe_open(str(path), framework="numpy") as f:
        assert f.metadata() == {"k": "v"}


def test_files_from_safetensors_numpy_load(tmp_path):
    sn = pytest.importorskip("safetensors.numpy")
    tensors = {f"t{i}": _sample(dt, (3, 2), i) for i, dt in enumerate(ALL_DTYPES)}
    tensors["scalar"] = np.array(7, np.int32)
    tensors["empty"] = np.zeros((2, 0), np.float32)
    path = tmp_path / "lib.safetensors"
    sn.save_file(tensors, str(path), metadata={"who": "safetensors"})
    arrays, meta = read_safetensors(path)
    assert meta == {"who": "safetensors"}
    assert set(arrays) == set(tensors)
    for k, v in tensors.items():
        assert arrays[k].dtype == v.dtype and arrays[k].shape == v.shape
        np.testing.assert_array_equal(arrays[k], v)


@pytest.mark.oracle
def test_files_from_safetensors_torch_load_including_bf16(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    g = torch.Generator().manual_seed(0)
    tensors = {
        "f32": torch.randn(3, 4, generator=g),
        "f64": torch.randn(2, dtype=torch.float64, generator=g),
        "f16": torch.randn(5, generator=g).half(),
        "bf16": torch.randn(2, 3, generator=g).bfloat16(),
        "i64": torch.arange(6).reshape(2, 3), "i32": torch.arange(3, dtype=torch.int32),
        "i16": torch.arange(3, dtype=torch.int16), "i8": torch.arange(-2, 2, dtype=torch.int8),
        "u8": torch.arange(250, 256, dtype=torch.uint8), "b": torch.tensor([True, False]),
        "zero_d": torch.tensor(3.25), "empty": torch.zeros(0, 3),
    }
    path = tmp_path / "torch.safetensors"
    st.save_file(tensors, str(path))
    out = load_safetensors(path)
    assert set(out) == set(tensors)
    for k, v in tensors.items():
        expect = v.float() if v.dtype == torch.bfloat16 else v
        got = out[k].numpy()
        assert got.shape == tuple(v.shape)
        assert got.dtype == expect.numpy().dtype, k
        np.testing.assert_array_equal(got, expect.numpy())


@pytest.mark.oracle
def test_files_open_with_safetensors_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    tensors = {f"t{i}": _sample(dt, (4, 3), i) for i, dt in enumerate(ALL_DTYPES)}
    tensors["zero_d"] = np.array(2.0, np.float64)
    tensors["empty"] = np.zeros((0,), np.int8)
    path = tmp_path / "t.safetensors"
    save_safetensors({k: ember.tensor(v) for k, v in tensors.items()}, path)
    got = st.load_file(str(path))
    for k, v in tensors.items():
        assert tuple(got[k].shape) == v.shape
        np.testing.assert_array_equal(got[k].numpy(), v)
    assert got["t0"].dtype == torch.float16 and got["t8"].dtype == torch.bool


# ---------------------------------------------------------------------------------- bad files

F32_4 = np.arange(4, dtype="<f4").tobytes()


def _entry(dtype="F32", shape=(4,), offsets=(0, 16)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


BAD_FILES = {
    # name: (writer(path), fragment expected in the message)
    "empty file": (lambda p: p.write_bytes(b""), "empty"),
    "shorter than the length prefix": (lambda p: p.write_bytes(b"\x10\x00\x00"), "too short"),
    "header length larger than file": (
        lambda p: craft(p, {"a": _entry()}, F32_4, length=4096), "larger than the rest"),
    "header length over the cap": (
        lambda p: craft(p, {"a": _entry()}, F32_4, length=2**40), "exceeds"),
    "header length 2**64-1": (
        lambda p: craft(p, {"a": _entry()}, F32_4, length=2**64 - 1), "exceeds"),
    "header length too small": (lambda p: craft(p, b"{}", b"", length=1, pad=False), "too small"),
    "non-utf8 header": (lambda p: craft(p, b'{"a\xff\xfe": 1}'), "UTF-8"),
    "non-json header": (lambda p: craft(p, b'{"a": [1, 2'), "not valid JSON"),
    "header not an object": (lambda p: craft(p, b"[1, 2, 3]"), "not a JSON object"),
    "header json object then garbage": (lambda p: craft(p, b'{} {}'), "not valid JSON"),
    "header NaN literal": (lambda p: craft(p, b'{"a": NaN}'), "not valid JSON"),
    "duplicate tensor names": (
        lambda p: craft(p, b'{"a": %s, "a": %s}' % (json.dumps(_entry()).encode(),
                                                    json.dumps(_entry()).encode()), F32_4),
        "duplicate key"),
    "deeply nested header": (
        lambda p: craft(p, b'{"a": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"),
        "nested too deeply"),
    "entry not an object": (lambda p: craft(p, {"a": 5}), "must be an object"),
    "entry missing dtype": (
        lambda p: craft(p, {"a": {"shape": [4], "data_offsets": [0, 16]}}, F32_4), "'dtype'"),
    "entry missing shape": (
        lambda p: craft(p, {"a": {"dtype": "F32", "data_offsets": [0, 16]}}, F32_4), "'shape'"),
    "entry missing offsets": (
        lambda p: craft(p, {"a": {"dtype": "F32", "shape": [4]}}, F32_4), "'data_offsets'"),
    "unknown dtype": (lambda p: craft(p, {"a": _entry(dtype="F128")}, F32_4), "unknown dtype"),
    "dtype not a string": (lambda p: craft(p, {"a": _entry(dtype=4)}, F32_4), "must be a string"),
    "dtype unsupported by ember": (
        lambda p: craft(p, {"a": _entry(dtype="U32")}, F32_4), "not supported by ember"),
    "negative shape": (
        lambda p: craft(p, {"a": _entry(shape=(-4,))}, F32_4), "non-negative integers"),
    "float shape": (
        lambda p: craft(p, {"a": _entry(shape=(4.0,))}, F32_4), "non-negative integers"),
    "bool shape": (
        lambda p: craft(p, {"a": _entry(shape=(True,), offsets=(0, 4))}, F32_4[:4]),
        "non-negative integers"),
    "string shape": (
        lambda p: craft(p, {"a": {"dtype": "F32", "shape": "4", "data_offsets": [0, 16]}}, F32_4),
        "shape must be a list"),
    "too many dims": (
        lambda p: craft(p, {"a": _entry(shape=(1,) * 65, offsets=(0, 4))}, F32_4[:4]),
        "dimensions"),
    "offsets not integers": (
        lambda p: craft(p, {"a": _entry(offsets=(0.0, 16.0))}, F32_4), "two integers"),
    "offsets strings": (
        lambda p: craft(p, {"a": _entry(offsets=("0", "16"))}, F32_4), "two integers"),
    "offsets wrong length": (
        lambda p: craft(p, {"a": _entry(offsets=(0, 8, 16))}, F32_4), "two integers"),
    "offsets negative": (
        lambda p: craft(p, {"a": _entry(offsets=(-16, 0))}, F32_4), "negative"),
    "offsets reversed": (
        lambda p: craft(p, {"a": _entry(offsets=(16, 0))}, F32_4), "out of order"),
    "offsets past the end": (
        lambda p: craft(p, {"a": _entry(shape=(8,), offsets=(0, 32))}, F32_4), "past the end"),
    "truncated data": (
        lambda p: craft(p, {"a": _entry()}, F32_4[:10]), "past the end"),
    "offsets overlapping": (
        lambda p: craft(p, {"a": _entry(shape=(3,), offsets=(0, 12)),
                            "b": _entry(shape=(3,), offsets=(4, 16))}, F32_4), "overlap"),
    "offsets with a gap": (
        lambda p: craft(p, {"a": _entry(shape=(1,), offsets=(0, 4)),
                            "b": _entry(shape=(2,), offsets=(8, 16))}, F32_4), "gap"),
    "offsets not starting at zero": (
        lambda p: craft(p, {"a": _entry(shape=(2,), offsets=(8, 16))}, F32_4), "gap"),
    "trailing bytes after the tensors": (
        lambda p: craft(p, {"a": _entry(shape=(2,), offsets=(0, 8))}, F32_4), "unaccounted"),
    "byte size mismatch": (
        lambda p: craft(p, {"a": _entry(shape=(2, 3))}, F32_4), "needs 24 bytes"),
    "dtype size mismatch": (
        lambda p: craft(p, {"a": _entry(dtype="F64")}, F32_4), "needs 32 bytes"),
    "huge shape product": (
        lambda p: craft(p, {"a": _entry(shape=(2**40, 2**40, 2**40))}, F32_4), "too large"),
    "large shape product": (
        lambda p: craft(p, {"a": _entry(shape=(2**20, 2**20))}, F32_4), "needs 4398046511104"),
    "huge shape with a zero dim": (
        lambda p: craft(p, {"a": _entry(shape=(0, 2**62, 2**62), offsets=(0, 0))}),
        "too large"),
    "metadata not an object": (
        lambda p: craft(p, {"__metadata__": [1], "a": _entry()}, F32_4), "__metadata__"),
    "metadata value not a string": (
        lambda p: craft(p, {"__metadata__": {"k": 1}, "a": _entry()}, F32_4), "__metadata__"),
    "pytorch zip checkpoint": (
        lambda p: p.write_bytes(b"PK\x03\x04" + b"\x00" * 60), "PyTorch pickle checkpoint"),
    "pytorch legacy pickle": (
        lambda p: p.write_bytes(b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19." + b"\x00" * 40),
        "PyTorch pickle checkpoint"),
    "tiny pickle": (lambda p: p.write_bytes(b"\x80\x04N."), "PyTorch pickle checkpoint"),
    "numpy npy file": (lambda p: _write_npy(p), "NumPy .npy"),
    "text file": (lambda p: p.write_bytes(b"hello world, this is text\n"), "exceeds"),
}


def _write_npy(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


@pytest.fixture(params=["load_safetensors", "read_safetensors", "ember.load"])
def loader(request):
    return {"load_safetensors": load_safetensors, "read_safetensors": read_safetensors,
            "ember.load": ember.load}[request.param]


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_file_raises_checkpoint_error(tmp_path, loader, case):
    write, fragment = BAD_FILES[case]
    path = tmp_path / "bad file.safetensors"
    write(path)
    with pytest.raises(CheckpointError) as info:
        loader(path)
    msg = str(info.value)
    assert f"'{path}'" in msg, msg
    assert fragment in msg, msg
    assert isinstance(info.value, ValueError)


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_safetensors(tmp_path / "nope.safetensors")


def test_good_crafted_file_loads(tmp_path):
    # the same crafting helper makes a valid file: the bad cases above differ in one thing only
    path = craft(tmp_path / "ok.safetensors",
                 {"a": _entry(shape=(2,), offsets=(0, 8)), "b": _entry(shape=(2,),
                                                                        offsets=(8, 16)),
                  "e": _entry(shape=(0, 5), offsets=(16, 16))}, F32_4)
    out = load_safetensors(path)
    np.testing.assert_array_equal(out["b"].numpy(), [2.0, 3.0])
    assert out["e"].shape == (0, 5)


@pytest.mark.oracle
def test_real_torch_save_file_is_named(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, str(path))
    expected = "this looks like a PyTorch pickle checkpoint; ember only loads safetensors files"
    with pytest.raises(CheckpointError, match=expected) as info:
        ember.load(path)
    assert str(path) in str(info.value)
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, str(legacy), _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match=expected):
        ember.load(legacy)


# ---------------------------------------------------------------------------------- fuzzing

_VALID = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.arange(3, dtype=np.int64),
          "m": np.array([[True, False]]), "s": np.array(2.5, np.float64)}
_SHAPES = [v.shape for v in _VALID.values()]


def _valid_bytes():
    header, arrays = encode_safetensors(_VALID, {"k": "v"})
    return header + b"".join(a.tobytes() for a in arrays)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_corrupted_or_truncated_file_never_crashes(tmp_path, data):
    raw = bytearray(_valid_bytes())
    kind = data.draw(st.sampled_from(["flip", "truncate", "both"]))
    flips = data.draw(st.integers(1, 3)) if kind != "truncate" else 0
    if flips:
        for _ in range(flips):
            pos = data.draw(st.integers(0, len(raw) - 1))
            raw[pos] = data.draw(st.integers(0, 255))
    if kind in ("truncate", "both"):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    path = tmp_path / "fuzz.safetensors"
    path.write_bytes(bytes(raw))
    try:
        out = load_safetensors(path)
    except CheckpointError as e:
        assert str(path) in str(e)
        return
    assert all(isinstance(v, ember.Tensor) for v in out.values())
    if flips <= 1:
        # one changed byte that keeps the file valid can only change values, a name, or a
        # dtype to one of equal item size: never a shape
        assert [v.shape for v in out.values()] == _SHAPES
    else:  # several could swap dims ([3, 4] -> [4, 3]), but the tensors still tile the data
        assert len(out) == len(_VALID)
        assert sum(v.numpy().nbytes for v in out.values()) == sum(
            v.nbytes for v in _VALID.values())


def test_bool_bytes_other_than_0_and_1_read_as_true(tmp_path):
    header = {"m": {"dtype": "BOOL", "shape": [4], "data_offsets": [0, 4]}}
    path = craft(tmp_path / "b.safetensors", header, b"\x00\x01\x02\xff")
    m = load_safetensors(path)["m"].numpy()
    assert m.dtype == np.bool_ and m.tolist() == [False, True, True, True]
    assert m.view(np.uint8).tolist() == [0, 1, 1, 1]
