"""ember.save / ember.load: nested state round trips, PyTorch interop through safetensors,
hostile ember trees, atomic writes, and the no-pickle rule for the whole source tree."""

from __future__ import annotations

import ast
import json
import math
import os
import pathlib
import re
import stat

import numpy as np
import pytest

import ember
from ember import nn
from ember.io import CheckpointError, save_safetensors
from ember.io import safetensors as st_mod

SRC = pathlib.Path(__file__).resolve().parents[2] / "src" / "ember"


def make_model():
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.LayerNorm(8), nn.Linear(8, 3))


def optimizer_like_state():
    return {
        "state": {
            0: {"step": 7, "exp_avg": ember.randn(3, 2), "exp_avg_sq": ember.zeros(3, 2),
                "max": ember.tensor(1.5, dtype=ember.float64)},
            1: {"step": ember.tensor(3.0), "mask": ember.tensor([True, False, True]),
                "counts": ember.tensor([1, 2, 3]), "empty": ember.zeros(0, 4),
                "grid": ember.zeros(2, 0, dtype=ember.int64)},
        },
        "param_groups": [
            {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
             "amsgrad": False, "maximize": None, "params": [0, 1], "name": "body ✓"},
            {"lr": float("inf"), "betas": (float("nan"), -float("inf")), "params": [],
             "nested": {"a": [1, [2, [3, {}]]], 10: {"x": ()}, -3: "neg"}},
        ],
        "rng": np.arange(5, dtype=np.uint8),
        "f64": np.linspace(0, 1, 4),
        "big": 2**70,
        "epoch": 12,
        "done": True,
        "": "empty key",
    }


def assert_same(a, b, path="obj"):
    """Deep equality that also checks types (int vs float vs bool, Tensor vs array, tuple)."""
    assert type(a) is type(b), f"{path}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, ember.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=path)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        np.testing.assert_array_equal(a, b, err_msg=path)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b), path
    else:
        assert a == b, path


# ---------------------------------------------------------------------------------- round trips

def test_module_state_dict_round_trip(tmp_path):
    model = make_model()
    path = tmp_path / "model.safetensors"
    ember.save(model.state_dict(), path)
    loaded = ember.load(path)
    assert list(loaded) == list(model.state_dict())
    fresh = make_model()
    fresh.load_state_dict(loaded)
    x = ember.randn(4, 5)
    np.testing.assert_array_equal(fresh(x).detach().numpy(), model(x).detach().numpy())


def test_optimizer_like_state_round_trip(tmp_path):
    state = optimizer_like_state()
    path = tmp_path / "opt.safetensors"
    ember.save(state, path)
    loaded = ember.load(path)
    assert_same(state, loaded)
    assert loaded["state"][0]["max"].shape == ()
    assert isinstance(loaded["rng"], np.ndarray) and not isinstance(loaded["rng"], ember.Tensor)


def test_real_optimizer_state_dict_round_trip(tmp_path):
    optim = pytest.importorskip("ember.optim")
    if not hasattr(optim, "Adam"):
        pytest.skip("ember.optim.Adam is not available yet")
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    model(ember.randn(4, 5)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    path = tmp_path / "adam.safetensors"
    ember.save({"model": model.state_dict(), "optimizer": sd, "epoch": 1}, path)
    loaded = ember.load(path)
    assert_same(sd, loaded["optimizer"])
    fresh = optim.Adam(make_model().parameters(), lr=1e-3)
    fresh.load_state_dict(loaded["optimizer"])
    assert_same(fresh.state_dict(), sd)


def test_loaded_tensors_are_independent(tmp_path):
    t = ember.ones(3)
    path = tmp_path / "a.safetensors"
    ember.save({"a": t, "b": [t, t]}, path)
    out = ember.load(path)
    out["a"].numpy()[0] = 5.0
    assert t.numpy()[0] == 1.0 and out["b"][0].numpy()[0] == 1.0
    assert out["b"][0] is not out["b"][1]


def test_requires_grad_tensors_save_their_data(tmp_path):
    w = ember.randn(2, 2, requires_grad=True)
    path = tmp_path / "w.safetensors"
    ember.save({"w": w, "y": w * 2}, path)
    out = ember.load(path)
    np.testing.assert_array_equal(out["y"].numpy(), (w * 2).detach().numpy())
    assert not out["w"].requires_grad


@pytest.mark.parametrize("obj", [
    ember.arange(4), [ember.zeros(2), 3], (1, 2.5, None), 5, 2.5, float("nan"), None, "text",
    True, {}, [], {0: {1: {2: ember.ones(1)}}}, {"__metadata__": ember.ones(2)},
    {1: ember.ones(1), "1": ember.zeros(1)},
])
def test_other_roots_round_trip(tmp_path, obj):
    path = tmp_path / "x.safetensors"
    ember.save(obj, path)
    assert_same(obj, ember.load(path))


def test_numpy_scalars_become_python_numbers(tmp_path):
    path = tmp_path / "x.safetensors"
    ember.save({"i": np.int32(3), "f": np.float32(0.5), "b": np.bool_(True)}, path)
    assert_same(ember.load(path), {"i": 3, "f": 0.5, "b": True})


def test_plain_state_dict_stored_under_its_own_keys(tmp_path):
    path = tmp_path / "m.safetensors"
    model = make_model()
    ember.save(model.state_dict(), path, metadata={"epoch": "3"})
    arrays, meta = ember.io.read_safetensors(path)
    assert list(arrays) == list(model.state_dict())
    assert meta["epoch"] == "3" and meta["ember.format"] == "1"


def test_nested_tensors_named_by_path(tmp_path):
    path = tmp_path / "o.safetensors"
    ember.save(optimizer_like_state(), path)
    arrays, _ = ember.io.read_safetensors(path)
    assert "state.0.exp_avg" in arrays and "rng" in arrays


def test_plain_safetensors_file_loads_as_dict_of_tensors(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_safetensors({"a": np.ones(2, np.float32), "b": np.arange(3)}, path)
    out = ember.load(path)
    assert list(out) == ["a", "b"] and all(isinstance(v, ember.Tensor) for v in out.values())


# ---------------------------------------------------------------------------------- save errors

class Thing:
    pass


@pytest.mark.parametrize("obj, exc, fragment", [
    ({"a": Thing()}, TypeError, "obj['a'] of type Thing"),
    ({"a": {1, 2}}, TypeError, "of type set"),
    ([lambda: 0], TypeError, "of type function"),
    ({1.5: 1}, TypeError, "dict keys must be str or int"),
    ({True: 1}, TypeError, "dict keys must be str or int"),
    ({(1, 2): 1}, TypeError, "dict keys must be str or int"),
    ({"a": np.zeros(2, np.complex64)}, TypeError, "complex64"),
    ({"a": np.array(["x"])}, TypeError, "<U1"),
    ({"a": 1j}, TypeError, "of type complex"),
])
def test_save_rejects_unsupported_objects(tmp_path, obj, exc, fragment):
    path = tmp_path / "x.safetensors"
    with pytest.raises(exc, match="ember.save") as info:
        ember.save(obj, path)
    assert fragment in str(info.value)
    assert os.listdir(tmp_path) == []


def test_save_rejects_cycles_and_deep_nesting(tmp_path):
    path = tmp_path / "x.safetensors"
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="circular"):
        ember.save({"a": loop}, path)
    deep = []
    for _ in range(ember.io.MAX_DEPTH + 1):
        deep = [deep]
    with pytest.raises(ValueError, match="nested more than"):
        ember.save(deep, path)
    shared = [1]
    ember.save([shared, shared], path)  # shared (not circular) references are fine
    assert ember.load(path) == [[1], [1]]


def test_save_rejects_reserved_metadata(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        ember.save({}, tmp_path / "x.safetensors", metadata={"ember.tree": "{}"})
    with pytest.raises(TypeError, match="str to str"):
        ember.save({}, tmp_path / "x.safetensors", metadata={"a": 1})


# ---------------------------------------------------------------------------------- oracle

@pytest.mark.oracle
def test_torch_safetensors_state_dict_loads_into_ember(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    t_model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.LayerNorm(8),
                                  torch.nn.Linear(8, 3))
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        t_model[2].weight.uniform_(0.5, 1.5)
        t_model[2].bias.uniform_(-0.5, 0.5)
    path = tmp_path / "torch.safetensors"
    st.save_file(t_model.state_dict(), str(path))
    e_model = make_model()
    e_model.load_state_dict(ember.load(path))
    x = np.random.default_rng(0).standard_normal((6, 5)).astype(np.float32)
    expect = t_model(torch.from_numpy(x)).detach().numpy()
    got = e_model(ember.tensor(x)).detach().numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6)


@pytest.mark.oracle
def test_ember_state_dict_loads_into_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    e_model = make_model()
    with ember.no_grad():
        e_model[2].weight.detach().numpy()[:] = np.linspace(0.5, 1.5, 8, dtype=np.float32)
        e_model[2].bias.detach().numpy()[:] = np.linspace(-0.5, 0.5, 8, dtype=np.float32)
    path = tmp_path / "ember.safetensors"
    ember.save(e_model.state_dict(), path)
    t_model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.LayerNorm(8),
                                  torch.nn.Linear(8, 3))
    t_model.load_state_dict(st.load_file(str(path)))  # strict: same keys, shapes, dtypes
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    expect = e_model(ember.tensor(x)).detach().numpy()
    got = t_model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(got, expect, rtol=1e-6, atol=1e-6)


@pytest.mark.oracle
def test_nested_checkpoint_opens_with_safetensors_torch(tmp_path):
    pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    path = tmp_path / "opt.safetensors"
    state = optimizer_like_state()
    ember.save(state, path)
    got = st.load_file(str(path))
    np.testing.assert_array_equal(got["state.0.exp_avg"].numpy(),
                                  state["state"][0]["exp_avg"].numpy())
    assert tuple(got["state.1.empty"].shape) == (0, 4)


# ---------------------------------------------------------------------------------- bad trees

def _tree_file(path, tree, tensors=None, *, version="1", raw=False):
    meta = {"ember.format": version}
    if tree is not None:
        meta["ember.tree"] = tree if raw else json.dumps(tree)
    save_safetensors(tensors or {}, path, metadata=meta)
    return path


def _nested(depth):
    node = 1
    for _ in range(depth):
        node = {"list": [node]}
    return node


BAD_TREES = {
    "not json": (dict(tree='{"dict": [', raw=True), "not valid JSON"),
    "nan literal": (dict(tree='{"float": NaN}', raw=True), "not valid JSON"),
    "json nested too deeply": (dict(tree="[" * 100_000 + "]" * 100_000, raw=True),
                               "nested too deeply"),
    "tree nested past the limit": (dict(tree=_nested(ember.io.MAX_DEPTH + 1)), "nested more"),
    "bare list": (dict(tree=[1, 2]), "bare JSON list"),
    "unknown tag": (dict(tree={"set": [1]}), "unknown node type 'set'"),
    "two-key node": (dict(tree={"list": [], "tuple": []}), "one-key object"),
    "empty node": (dict(tree={}), "one-key object"),
    "container holding a non-list": (dict(tree={"list": 5}), "must hold a list"),
    "missing tensor": (dict(tree={"tensor": "nope"}), "refers to tensor 'nope'"),
    "missing ndarray": (dict(tree={"dict": [["a", {"ndarray": "x"}]]}), "refers to tensor 'x'"),
    "tensor ref not a string": (dict(tree={"tensor": 3}), "must be a name"),
    "bad float": (dict(tree={"float": "1e999"}), "must be \"nan\""),
    "dict item not a pair": (dict(tree={"dict": [["a", 1, 2]]}), "[key, value] pairs"),
    "dict item not a list": (dict(tree={"dict": [{"a": 1}]}), "[key, value] pairs"),
    "dict key float": (dict(tree={"dict": [[1.5, 1]]}), "keys must be strings or integers"),
    "dict key bool": (dict(tree={"dict": [[True, 1]]}), "keys must be strings or integers"),
    "dict key null": (dict(tree={"dict": [[None, 1]]}), "keys must be strings or integers"),
    "duplicate dict key": (dict(tree={"dict": [["a", 1], ["a", 2]]}), "duplicate dict key"),
    "huge integer": (dict(tree="1" * 10_000, raw=True), "not valid JSON"),
    "newer format": (dict(tree=1, version="99"), "unsupported ember checkpoint format"),
    "no tree": (dict(tree=None), "no 'ember.tree'"),
    "tree not a string": (None, "__metadata__"),
}


@pytest.mark.parametrize("case", list(BAD_TREES))
def test_bad_tree_raises_checkpoint_error(tmp_path, case):
    kwargs, fragment = BAD_TREES[case]
    path = tmp_path / "bad tree.safetensors"
    if kwargs is None:  # crafted by hand: metadata values must be strings
        header = json.dumps({"__metadata__": {"ember.format": "1", "ember.tree": {"list": []}}})
        header = header.encode() + b" " * (-len(header) % 8)
        path.write_bytes(len(header).to_bytes(8, "little") + header)
    else:
        _tree_file(path, **kwargs)
    with pytest.raises(CheckpointError) as info:
        ember.load(path)
    msg = str(info.value)
    assert msg.startswith(f"ember.load: cannot load '{path}': "), msg
    assert fragment in msg, msg


def test_good_hand_written_tree_loads(tmp_path):
    # the crafting helper also makes valid files: each bad tree above breaks one rule only
    path = _tree_file(tmp_path / "ok.safetensors",
                      {"dict": [["a", {"tensor": "t"}], [3, {"tuple": [{"float": "-inf"}]}]]},
                      {"t": np.ones(2, np.float32), "unused": np.zeros(1, np.float32)})
    out = ember.load(path)
    assert out[3] == (-math.inf,) and out["a"].shape == (2,)


def test_truncated_checkpoint_raises(tmp_path):
    path = tmp_path / "opt.safetensors"
    ember.save(optimizer_like_state(), path)
    raw = path.read_bytes()
    for cut in (0, 7, 8, 100, len(raw) // 2, len(raw) - 1):
        path.write_bytes(raw[:cut])
        with pytest.raises(CheckpointError, match="opt.safetensors"):
            ember.load(path)


# ---------------------------------------------------------------------------------- atomicity

class _FailingFile:
    """A file wrapper whose write fails once ``limit`` bytes have been written."""

    def __init__(self, f, limit):
        self.f, self.limit, self.written = f, limit, 0

    def write(self, data):
        n = memoryview(data).nbytes
        if self.written + n > self.limit:
            self.f.write(memoryview(data).cast("B")[: self.limit - self.written])
            raise OSError(28, "No space left on device")
        self.written += n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def _previous(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    ember.save({"w": ember.ones(64)}, path)
    return path, path.read_bytes()


def test_write_failing_half_way_keeps_previous_file(tmp_path, monkeypatch):
    path, before = _previous(tmp_path)
    real_open = st_mod._open_for_writing
    monkeypatch.setattr(st_mod, "_open_for_writing", lambda p: _FailingFile(real_open(p), 100))
    with pytest.raises(OSError) as info:
        ember.save({"w": ember.zeros(1000)}, path)
    assert str(info.value) == f"ember.save: cannot write '{path}': No space left on device"
    assert info.value.errno == 28
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_replace_failing_keeps_previous_file(tmp_path, monkeypatch):
    path, before = _previous(tmp_path)

    def fail(src, dst):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(PermissionError, match="cannot write .*Permission denied"):
        ember.save({"w": ember.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_interrupt_during_write_removes_temp_file(tmp_path, monkeypatch):
    path, before = _previous(tmp_path)

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        ember.save({"w": ember.zeros(1000)}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == [path.name]


def test_save_replaces_existing_file_and_respects_umask(tmp_path):
    path, _ = _previous(tmp_path)
    ember.save({"w": ember.zeros(3)}, path)
    np.testing.assert_array_equal(ember.load(path)["w"].numpy(), np.zeros(3))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert os.listdir(tmp_path) == [path.name]


def test_missing_directory_gives_clear_error(tmp_path):
    path = tmp_path / "runs" / "x" / "ckpt.safetensors"
    with pytest.raises(FileNotFoundError) as info:
        ember.save({"a": ember.ones(1)}, path)
    assert str(info.value) == f"ember.save: cannot write '{path}': No such file or directory"


def test_parent_is_a_file_gives_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    path = tmp_path / "file" / "ckpt.safetensors"
    pattern = r"ember.io.save_safetensors: cannot write '.*ckpt.safetensors': Not a directory"
    with pytest.raises(NotADirectoryError, match=pattern):
        save_safetensors({"a": np.ones(1)}, path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_unwritable_directory_gives_clear_error(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    try:
        with pytest.raises(PermissionError) as info:
            ember.save({"a": ember.ones(1)}, d / "ckpt.safetensors")
        assert str(info.value) == (f"ember.save: cannot write '{d / 'ckpt.safetensors'}': "
                                   f"Permission denied")
    finally:
        d.chmod(0o755)


def test_unwritable_directory_simulated(tmp_path, monkeypatch):
    def deny(p):
        raise PermissionError(13, "Permission denied", p)

    monkeypatch.setattr(st_mod, "_open_for_writing", deny)
    with pytest.raises(PermissionError) as info:
        ember.save({"a": ember.ones(1)}, "runs/x/ckpt.safetensors")
    assert str(info.value) == "ember.save: cannot write 'runs/x/ckpt.safetensors': " \
                              "Permission denied"


# ---------------------------------------------------------------------------------- no pickle

FORBIDDEN_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal",
                     "joblib"}


def test_no_pickle_anywhere_in_the_source_tree():
    offenders = []
    suspects = re.compile("|".join([*FORBIDDEN_MODULES, "__import__"]))
    for f in sorted(SRC.rglob("*.py")):
        text = f.read_text(encoding="utf-8")
        if not suspects.search(text):  # only parse the files that mention a suspect name
            continue
        for node in ast.walk(ast.parse(text)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "__import__"):
                names = [getattr(a, "value", "") for a in node.args[:1]]
            bad = [n for n in names if str(n).split(".")[0] in FORBIDDEN_MODULES]
            if bad:
                offenders.append(f"{f.relative_to(SRC)}:{node.lineno} imports {bad}")
    assert not offenders, "\n".join(offenders)


def test_io_never_evaluates_code():
    for f in sorted((SRC / "io").rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"eval", "exec", "compile", "__import__"}, \
                    f"{f.name}:{node.lineno} calls {node.func.id}"
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                mods = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert "importlib" not in mods, f"{f.name}:{node.lineno} imports importlib"
