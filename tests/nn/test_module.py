"""The Module system vs torch.nn.Module: registration, traversal order, state dicts, modes,
hooks, repr, containers, summary, error paths."""

import pickle
from collections import OrderedDict

import numpy as np
import pytest

import ember
from ember import nn
from tests.nn.harness import torch


def _np(t):
    return t.detach().numpy()


def build(lib):
    """The same nested model in ember and torch."""
    n = lib.nn

    class Block(n.Module):
        def __init__(self):
            super().__init__()
            self.fc = n.Linear(4, 8)
            self.norm = n.LayerNorm(8)
            self.register_buffer("scale", lib.ones(8))
            self.register_buffer("tmp", lib.zeros(2), persistent=False)

        def forward(self, x):
            return self.norm(self.fc(x)) * self.scale

    class Net(n.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.seq = n.Sequential(n.ReLU(), n.Dropout(0.1),
                                    n.Sequential(n.Linear(8, 3), n.Tanh()))
            self.head = n.ModuleDict({"a": n.Linear(3, 2), "b": n.Identity()})
            self.plist = n.ParameterList([n.Parameter(lib.ones(2)), n.Parameter(lib.zeros(3))])
            self.shared = self.block.fc  # the same module twice

        def forward(self, x):
            return self.head["a"](self.seq(self.block(x)))

    return Net()


@pytest.fixture
def pair():
    return build(ember), build(torch)


# ---------------------------------------------------------------------------- registration
def test_attribute_registration():
    m = nn.Module()
    m.w = nn.Parameter(ember.zeros(3))
    m.sub = nn.Linear(2, 2)
    m.register_buffer("buf", ember.ones(2))
    m.register_buffer("cache", ember.ones(2), persistent=False)
    m.plain = 5
    assert list(m._parameters) == ["w"] and list(m._modules) == ["sub"]
    assert list(m._buffers) == ["buf", "cache"]
    assert list(m.state_dict()) == ["w", "buf", "sub.weight", "sub.bias"]
    assert m.plain == 5 and "plain" not in m.state_dict()
    m.w = None
    assert m.w is None and [k for k, _ in m.named_parameters()] == ["sub.weight", "sub.bias"]
    with pytest.raises(TypeError, match="cannot assign Tensor to parameter 'w'"):
        m.w = ember.zeros(3)
    del m.sub
    assert "sub" not in m._modules
    with pytest.raises(AttributeError, match="'Module' object has no attribute 'nope'"):
        _ = m.nope
    m.b2 = nn.Buffer(ember.zeros(1), persistent=False)
    assert "b2" in dict(m.named_buffers()) and "b2" not in m.state_dict()

    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match="super"):
        Bad()


@pytest.mark.oracle
def test_traversal_order_equals_torch(pair):
    e, t = pair
    for fn in ("named_modules", "named_parameters", "named_buffers", "named_children"):
        assert [k for k, _ in getattr(e, fn)()] == [k for k, _ in getattr(t, fn)()], fn
    assert len(list(e.parameters())) == len(list(t.parameters()))  # shared counted once
    assert len(list(e.modules())) == len(list(t.modules()))
    assert len(list(e.children())) == len(list(t.children()))
    assert list(e.state_dict()) == list(t.state_dict())  # state dict repeats shared
    assert [k for k, _ in e.named_parameters(remove_duplicate=False)] == \
        [k for k, _ in t.named_parameters(remove_duplicate=False)]
    assert [k for k, _ in e.named_parameters(recurse=False)] == []
    assert [k for k, _ in e.block.named_parameters(prefix="blk")] == \
        [k for k, _ in t.block.named_parameters(prefix="blk")]


@pytest.mark.oracle
def test_load_torch_state_dict_gives_same_outputs(pair):
    e, t = pair
    e.eval(), t.eval()
    e.load_state_dict(t.state_dict())  # torch tensors directly
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(_np(e(ember.tensor(x))), _np(t(torch.tensor(x))), rtol=1e-5,
                               atol=1e-6)


def test_load_state_dict_sources_and_strictness():
    m = nn.Linear(3, 2)
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    m.load_state_dict({"weight": w, "bias": ember.tensor(np.array([1.0, 2.0], np.float32))})
    np.testing.assert_array_equal(_np(m.weight), w)
    np.testing.assert_array_equal(_np(m.bias), [1, 2])
    w[0, 0] = 100  # copied, not aliased
    assert _np(m.weight)[0, 0] == 0
    with pytest.raises(RuntimeError) as err:
        m.load_state_dict({"weight": w, "extra": w})
    msg = str(err.value)
    assert "Error(s) in loading state_dict for Linear" in msg
    assert 'Missing key(s) in state_dict: "bias"' in msg
    assert 'Unexpected key(s) in state_dict: "extra"' in msg
    with pytest.raises(RuntimeError, match=r"size mismatch for weight: copying a param with "
                                           r"shape \(3, 2\) from the state dict, the shape in "
                                           r"the current model is \(2, 3\)"):
        m.load_state_dict({"weight": w.T.copy(), "bias": np.zeros(2)})
    missing, unexpected = m.load_state_dict({"weight": w, "zzz": w}, strict=False)
    assert missing == ["bias"] and unexpected == ["zzz"]
    res = m.load_state_dict(m.state_dict())
    assert res.missing_keys == [] and res.unexpected_keys == []


def test_train_eval_recursion(pair):
    e, _ = pair
    assert all(m.training for m in e.modules())
    assert e.eval() is e
    assert not any(m.training for m in e.modules())
    e.seq.train()
    assert e.seq[2][1].training and not e.block.training and not e.training
    with pytest.raises(ValueError, match="bool"):
        e.train("yes")


def test_zero_grad_set_to_none():
    m = nn.Linear(3, 2)
    m(ember.ones(4, 3)).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(m.weight.grad.numpy(), np.zeros((2, 3)))
    m(ember.ones(4, 3)).sum().backward()
    np.testing.assert_array_equal(m.bias.grad.numpy(), [4, 4])  # accumulates from zero
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


@pytest.mark.oracle
def test_apply_order_equals_torch(pair):
    e, t = pair
    seen_e, seen_t = [], []
    e.apply(lambda m: seen_e.append(type(m).__name__))
    t.apply(lambda m: seen_t.append(type(m).__name__))
    assert seen_e == seen_t


def test_requires_grad_and_to_double(pair):
    e, _ = pair
    e.requires_grad_(False)
    assert not any(p.requires_grad for p in e.parameters())
    e.requires_grad_()
    w = e.block.fc.weight
    assert e.to(ember.float64) is e
    assert e.block.fc.weight is w and w.dtype == ember.float64  # same Parameter object
    assert all(p.dtype == ember.float64 for p in e.parameters())
    assert all(b.dtype == ember.float64 for b in e.buffers())
    y = e(ember.tensor(np.ones((2, 4))))
    assert y.dtype == ember.float64
    e.float()
    assert all(p.dtype == ember.float32 for p in e.parameters())
    with pytest.raises(TypeError, match="floating-point"):
        e.to(ember.int64)


# ---------------------------------------------------------------------------- hooks
def test_forward_pre_hook_and_forward_hook():
    m = nn.Linear(2, 2, bias=False)
    m.load_state_dict({"weight": np.eye(2, dtype=np.float32)})
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(_np(args[0])) or out + 1)
    x = ember.tensor(np.array([[1.0, 2.0]], np.float32))
    np.testing.assert_array_equal(_np(m(x)), [[3, 5]])
    np.testing.assert_array_equal(calls[0], [[2, 4]])  # forward hook sees the modified args
    h1.remove()
    np.testing.assert_array_equal(_np(m(x)), [[2, 3]])
    h2.remove()
    np.testing.assert_array_equal(_np(m(x)), [[1, 2]])
    assert len(calls) == 2


def _hook_run(lib, model, modify):
    rec = []

    def hook(mod, gin, gout):
        rec.append(([None if g is None else _np(g).copy() for g in gin],
                    [None if g is None else _np(g).copy() for g in gout]))
        if modify:
            return tuple(None if g is None else g * 3 for g in gin)

    handle = model.register_full_backward_hook(hook)
    x = lib.tensor(np.arange(6, dtype=np.float64).reshape(2, 3) / 5, requires_grad=True)
    y = model(x)
    w = lib.tensor(np.arange(np.prod(tuple(y.shape)), dtype=np.float64).reshape(tuple(y.shape)))
    (y * w).sum().backward()
    handle.remove()
    return rec, _np(x.grad)


@pytest.mark.oracle
@pytest.mark.parametrize("kind", ["linear", "sequential"])
@pytest.mark.parametrize("modify", [False, True])
def test_full_backward_hook_equals_torch(kind, modify):
    def mk(lib):
        n = lib.nn
        if kind == "linear":
            return n.Linear(3, 4).double()
        return n.Sequential(n.Linear(3, 4), n.Tanh(), n.Linear(4, 2)).double()

    t, e = mk(torch), mk(ember)
    e.load_state_dict(t.state_dict())
    er, eg = _hook_run(ember, e, modify)
    tr, tg = _hook_run(torch, t, modify)
    assert len(er) == len(tr) == 1
    for a, b in zip(er[0][0] + er[0][1], tr[0][0] + tr[0][1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(eg, tg, rtol=1e-12)  # modified grad_input reaches upstream
    if modify:
        _, plain = _hook_run(ember, e, False)
        np.testing.assert_allclose(eg, 3 * plain, rtol=1e-12)


# ---------------------------------------------------------------------------- repr / summary
@pytest.mark.oracle
def test_repr_equals_torch():
    def mk(lib):
        n = lib.nn
        return n.Sequential(
            n.Linear(4, 8), n.ReLU(), n.LayerNorm(8), n.Dropout(0.2),
            n.Sequential(OrderedDict([("fc", n.Linear(8, 2, bias=False)),
                                      ("act", n.LeakyReLU(0.1))])),
            n.Flatten(), n.GELU(approximate="tanh"), n.Softmax(dim=1),
            n.ModuleList([n.Identity(), n.Tanh()]), n.BatchNorm1d(2))

    assert repr(mk(ember)) == repr(mk(torch))


def test_parameter_list_repr():
    r = repr(nn.ParameterList([nn.Parameter(ember.ones(2, 3))]))
    assert r == "ParameterList(  (0): Parameter containing: [ember.float32 of size 2x3])" or \
        r == "ParameterList(\n    (0): Parameter containing: [ember.float32 of size 2x3]\n)"


def test_summary_counts():
    from ember.nn.utils import summary

    m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 3), nn.LayerNorm(3)))
    s = summary(m, ember.zeros(2, 4))
    rows = {line.split()[0]: line.split() for line in s.splitlines()[2:-2]}
    assert rows["0"][1:] == ["Linear", "(2,", "8)", "40", "40"]
    assert rows["1"][-2:] == ["0", "0"]
    assert rows["2"][-2:] == ["0", "33"]
    assert rows["2.0"][-2:] == ["27", "27"] and rows["2.1"][-2:] == ["6", "6"]
    assert s.splitlines()[-1] == "total parameters: 73 (trainable 73)"
    m[0].requires_grad_(False)
    assert summary(m).splitlines()[-1] == "total parameters: 73 (trainable 33)"


# ---------------------------------------------------------------------------- containers
def test_sequential_ops():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)]
    s = nn.Sequential(*layers)
    assert len(s) == 3 and s[0] is layers[0] and s[-1] is layers[2]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and sub[0] is layers[1]
    assert list(s) == layers
    s.append(nn.Tanh())
    assert len(s) == 4 and [k for k, _ in s.named_children()] == ["0", "1", "2", "3"]
    del s[1]
    assert [type(m).__name__ for m in s] == ["Linear", "Linear", "Tanh"]
    with pytest.raises(IndexError, match="out of range"):
        s[5]
    y = s(ember.ones(4, 2))
    assert y.shape == (4, 1)


def test_module_list_dict_parameter_list():
    ml = nn.ModuleList([nn.Linear(1, 1), nn.ReLU()])
    ml.append(nn.Tanh())
    assert len(ml) == 3 and isinstance(ml[-1], nn.Tanh) and len(list(ml.parameters())) == 2
    assert [k for k, _ in ml.named_modules()] == ["", "0", "1", "2"]
    md = nn.ModuleDict({"x": nn.Linear(2, 2)})
    md["y"] = nn.ReLU()
    assert list(md.keys()) == ["x", "y"] and "y" in md and len(md) == 2
    assert [k for k, _ in md.named_parameters()] == ["x.weight", "x.bias"]
    pl = nn.ParameterList([nn.Parameter(ember.ones(2)), ember.zeros(3)])
    assert len(pl) == 2 and isinstance(pl[1], nn.Parameter) and pl[1].requires_grad
    assert list(pl.state_dict()) == ["0", "1"]
    outer = nn.Module()
    outer.pl = pl
    assert [k for k, _ in outer.named_parameters()] == ["pl.0", "pl.1"]


def test_error_messages_have_module_paths():
    m = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Sequential(nn.Linear(8, 2)))
    with pytest.raises(ValueError) as err:
        m(ember.zeros(3, 4))
    assert str(err.value) == "Linear '2.0': expected input of shape (*, 8), got (3, 5)"
    outer = nn.Module()
    outer.features = m  # re-attached: paths follow
    with pytest.raises(ValueError, match=r"Linear 'features.2.0'"):
        m(ember.zeros(3, 4))


def test_modules_cannot_be_pickled():
    with pytest.raises(TypeError, match="cannot be pickled.*state_dict"):
        pickle.dumps(nn.Linear(2, 2))


def test_get_submodule_and_parameter(pair):
    e, _ = pair
    assert e.get_submodule("seq.2.0") is e.seq[2][0]
    assert e.get_parameter("block.fc.bias") is e.block.fc.bias
    with pytest.raises(AttributeError, match="no submodule 'zz'"):
        e.get_submodule("seq.zz")


# ---------------------------------------------------------------------------- member lookup
def test_members_are_plain_attributes_and_follow_every_edit_of_the_dicts():
    # parameters, buffers and submodules are mirrored into the instance dict (fast lookup);
    # every way of editing _parameters/_buffers/_modules keeps the attribute in step
    m = nn.Linear(3, 2)
    assert m.__dict__["weight"] is m._parameters["weight"] is m.weight
    p = nn.Parameter(ember.zeros(2))
    m._parameters["bias"] = p  # as PyTorch code sometimes does
    assert m.bias is p
    del m._parameters["bias"]
    with pytest.raises(AttributeError, match="'Linear' object has no attribute 'bias'"):
        getattr(m, "bias")  # noqa: B009
    m._parameters.update(bias=p)
    assert m.bias is p
    assert m._parameters.pop("bias") is p and "bias" not in m.__dict__
    assert m._parameters.pop("bias", None) is None
    with pytest.raises(KeyError):
        m._parameters.pop("bias")
    m._parameters.setdefault("bias", p)
    assert m.bias is p
    m._parameters.popitem()
    assert "bias" not in m.__dict__ and m.weight is m._parameters["weight"]
    m._buffers["stat"] = ember.ones(2)
    assert m.stat is m._buffers["stat"]
    m._buffers.clear()
    assert not hasattr(m, "stat")
    m.bias = None  # a registered name set to None stays registered
    m.register_parameter("bias", p)
    m.bias = None
    assert m._parameters["bias"] is None and m.bias is None
    del m.weight
    assert "weight" not in m._parameters and not hasattr(m, "weight")
    copy = m._parameters.copy()
    assert type(copy) is OrderedDict
    seq = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    seq._modules = OrderedDict(head=nn.Linear(2, 1))  # a whole registry replaced
    assert not hasattr(seq, "0") and seq.head is seq._modules["head"]
    assert [n for n, _ in seq.named_parameters()] == ["head.weight", "head.bias"]


def test_member_names_never_hide_methods_or_bookkeeping():
    # a ModuleDict key that is also a method name stays reachable by indexing and does not
    # replace the method (as in PyTorch), nor can a member replace `training`
    heads = nn.ModuleDict({"train": nn.Linear(2, 2), "training": nn.Linear(2, 3),
                           "enc": nn.Linear(2, 4)})
    assert heads.train(False) is heads and heads.training is False
    assert isinstance(heads["train"], nn.Linear) and heads["training"].out_features == 3
    assert heads.enc.out_features == 4
    assert list(heads.keys()) == ["train", "training", "enc"]


def test_cloned_layers_have_their_own_members():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0)
    enc = nn.TransformerEncoder(layer, 2)
    a, b = enc.layers[0], enc.layers[1]
    assert a.linear1 is a._modules["linear1"] and a.linear1 is not b.linear1
    assert a.linear1.weight is a.linear1._parameters["weight"]
    assert a.linear1.weight is not layer.linear1.weight
    np.testing.assert_array_equal(_np(a.linear1.weight), _np(layer.linear1.weight))
    b.linear1.weight = nn.Parameter(ember.zeros(16, 8))
    assert b._modules["linear1"]._parameters["weight"] is b.linear1.weight
    assert float(a.linear1.weight.abs().sum()) > 0
