"""Optimizers: 100 training steps against PyTorch, state dicts, zero_grad, closures, errors."""

from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import optim

from .helpers import (
    data,
    ember_params,
    groups_of,
    init_weights,
    make_ember_net,
    make_torch_net,
    torch,
    torch_params,
    train_ember,
    train_torch,
)

pytestmark = pytest.mark.usefixtures("kernels")  # the compiled and the NumPy update kernels

# (optimizer name, keyword arguments, "list" or "groups")
CASES = [
    ("SGD", dict(lr=0.1), "list"),
    ("SGD", dict(lr=0.05, momentum=0.9), "list"),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), "list"),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01), "list"),
    ("SGD", dict(lr=0.01, momentum=0.5, maximize=True, weight_decay=0.1), "list"),
    ("SGD", dict(lr=0.1, momentum=0.9), "groups"),
    ("Adam", dict(lr=0.01), "list"),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05), "list"),
    ("Adam", dict(lr=0.01, amsgrad=True), "list"),
    ("Adam", dict(lr=0.01, maximize=True), "list"),
    ("Adam", dict(lr=0.02), "groups"),
    ("AdamW", dict(lr=0.01), "list"),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True), "list"),
    ("Adamax", dict(), "list"),
    ("Adamax", dict(lr=0.01, weight_decay=0.01, maximize=True), "list"),
    ("NAdam", dict(lr=0.01), "list"),
    ("NAdam", dict(lr=0.01, weight_decay=0.05, momentum_decay=0.01), "list"),
    ("NAdam", dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True), "list"),
    ("RAdam", dict(lr=0.01), "list"),
    ("RAdam", dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True), "list"),
    ("RAdam", dict(lr=0.01, weight_decay=0.05, maximize=True), "list"),
    ("RMSprop", dict(lr=0.01), "list"),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01), "list"),
    ("RMSprop", dict(lr=0.002, alpha=0.9, momentum=0.5, eps=1e-6), "list"),
    ("RMSprop", dict(lr=0.005, centered=True, maximize=True), "groups"),
    ("Adagrad", dict(lr=0.1), "list"),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1),
     "list"),
    ("Adagrad", dict(lr=0.05, maximize=True), "groups"),
    ("Adadelta", dict(), "list"),
    ("Adadelta", dict(lr=0.5, rho=0.95, weight_decay=0.01, maximize=True), "list"),
]


def _ids(case):
    name, kw, spec = case
    return name + "-" + ",".join(f"{k}={v}" for k, v in kw.items()) + ("-groups" if
                                                                       spec == "groups" else "")


def _run_both(name, kw, spec, dtype, steps=100):
    w = init_weights(dtype)
    x, y = data(dtype)
    en, tn = make_ember_net(w), make_torch_net(w)
    eo = getattr(optim, name)(groups_of(en, spec, 0.003), **kw)
    to = getattr(torch.optim, name)(groups_of(tn, spec, 0.003), **kw)
    train_ember(en, eo, x, y, steps)
    train_torch(tn, to, x, y, steps)
    return en, tn, eo, to


@pytest.mark.oracle
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_training_matches_torch_float32(case):
    name, kw, spec = case
    en, tn, eo, to = _run_both(name, kw, spec, np.float32)
    w0 = init_weights(np.float32)
    moved = False
    for k, (e, t) in enumerate(zip(ember_params(en), torch_params(tn))):
        assert e.dtype == np.float32
        np.testing.assert_allclose(e, t, rtol=1e-4, atol=1e-5, err_msg=f"parameter {k}")
        moved |= not np.allclose(t, w0[k])
    assert moved, "the test did not move the parameters"
    # the state has PyTorch's layout: same keys, same values
    es, ts = eo.state_dict(), to.state_dict()
    assert sorted(es["state"]) == sorted(ts["state"])
    for i in ts["state"]:
        assert sorted(es["state"][i]) == sorted(ts["state"][i])
        for key, tv in ts["state"][i].items():
            ev = es["state"][i][key]
            assert isinstance(ev, ember.Tensor)
            assert tuple(ev.shape) == tuple(tv.shape), key
            np.testing.assert_allclose(ev.numpy(), tv.numpy(), rtol=2e-3, atol=1e-5,
                                       err_msg=key)
    for eg, tg in zip(es["param_groups"], ts["param_groups"]):
        assert eg == tg


FLOAT64_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), "list"),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.01), "groups"),
    ("AdamW", dict(lr=0.01), "list"),
    ("NAdam", dict(lr=0.01), "list"),
    ("RAdam", dict(lr=0.01), "list"),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True), "list"),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01), "list"),
    ("Adadelta", dict(lr=1.0), "list"),
    ("Adamax", dict(lr=0.01), "list"),
]


@pytest.mark.oracle
@pytest.mark.parametrize("case", FLOAT64_CASES, ids=_ids)
def test_training_matches_torch_float64(case):
    name, kw, spec = case
    en, tn, _, _ = _run_both(name, kw, spec, np.float64)
    for k, (e, t) in enumerate(zip(ember_params(en), torch_params(tn))):
        assert e.dtype == np.float64
        np.testing.assert_allclose(e, t, rtol=1e-9, atol=1e-11, err_msg=f"parameter {k}")


@pytest.mark.parametrize("case", [c for c in CASES if c[2] == "list"][::2] + [CASES[5]],
                         ids=_ids)
def test_state_dict_round_trip(case):
    name, kw, spec = case
    w = init_weights()
    x, y = data()
    full = make_ember_net(w)
    train_ember(full, getattr(optim, name)(groups_of(full, spec, 0.003), **kw), x, y, 100)

    first = make_ember_net(w)
    opt1 = getattr(optim, name)(groups_of(first, spec, 0.003), **kw)
    train_ember(first, opt1, x, y, 50)
    sd = opt1.state_dict()
    second = make_ember_net(ember_params(first))
    opt2 = getattr(optim, name)(groups_of(second, spec, 0.003), **kw)
    opt2.load_state_dict(sd)
    train_ember(first, opt1, x, y, 3)  # the loaded state must be a copy, not shared
    train_ember(second, opt2, x, y, 50)
    for a, b in zip(ember_params(second), ember_params(full)):
        np.testing.assert_array_equal(a, b)


def test_state_dict_layout():
    net = make_ember_net(init_weights())
    opt = optim.Adam(groups_of(net, "groups", 0.1), lr=0.01)
    train_ember(net, opt, *data(), 2)
    sd = opt.state_dict()
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][0]["lr"] == 0.1 and sd["param_groups"][1]["lr"] == 0.01
    assert set(sd["state"]) == {0, 1, 2, 3}
    st = sd["state"][2]
    assert set(st) == {"step", "exp_avg", "exp_avg_sq"}
    assert st["step"].item() == 2.0 and st["step"].dtype == ember.float32
    assert st["exp_avg"].shape == (3, 8)


def test_load_state_dict_casts_to_param_dtype_and_keeps_step():
    net = make_ember_net(init_weights())
    opt = optim.Adam(net.parameters(), lr=0.01)
    train_ember(net, opt, *data(), 2)
    sd = opt.state_dict()
    net64 = make_ember_net(init_weights(np.float64))
    opt64 = optim.Adam(net64.parameters(), lr=0.01)
    opt64.load_state_dict(sd)
    p = list(net64.parameters())[0]
    assert opt64.state[p]["exp_avg"].dtype == ember.float64
    assert opt64.state[p]["step"].dtype == ember.float32


@pytest.mark.oracle
def test_torch_state_dict_loads_into_ember():
    w = init_weights()
    x, y = data()
    tn = make_torch_net(w)
    to = torch.optim.RMSprop(tn.parameters(), lr=0.01, momentum=0.9, centered=True)
    train_torch(tn, to, x, y, 20)
    tsd = to.state_dict()
    sd = {"state": {i: {k: ember.tensor(v.numpy()) for k, v in s.items()}
                    for i, s in tsd["state"].items()},
          "param_groups": tsd["param_groups"]}
    en = make_ember_net(torch_params(tn))
    eo = optim.RMSprop(en.parameters(), lr=0.01, momentum=0.9, centered=True)
    eo.load_state_dict(sd)
    train_torch(tn, to, x, y, 30)
    train_ember(en, eo, x, y, 30)
    for e, t in zip(ember_params(en), torch_params(tn)):
        np.testing.assert_allclose(e, t, rtol=1e-4, atol=1e-5)


def test_zero_grad():
    w = ember.nn.Parameter(ember.ones(3))
    opt = optim.SGD([w], lr=0.1)
    (w * 2).sum().backward()
    g = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is g and not w.grad.numpy().any()
    (w * 2).sum().backward()
    opt.zero_grad()
    assert w.grad is None
    opt.step()  # no gradient: nothing happens
    assert w.detach().numpy().tolist() == [1.0, 1.0, 1.0]


def test_params_without_grad_are_skipped_and_updates_are_in_place():
    a = ember.nn.Parameter(ember.ones(2))
    b = ember.nn.Parameter(ember.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    arr = a._data
    v = a._version[0]
    (a * a).sum().backward()
    opt.step()
    assert a._data is arr and a._version[0] == v + 1
    assert b not in opt.state and b.detach().numpy().tolist() == [1.0, 1.0]
    assert opt.state[a]["step"].item() == 1


def test_closure_runs_with_grad_enabled_and_returns_loss():
    w = ember.nn.Parameter(ember.tensor([1.0, -2.0]))
    opt = optim.SGD([w], lr=0.5)
    calls = []

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        calls.append(ember.is_grad_enabled())
        return loss

    with ember.no_grad():
        loss = opt.step(closure)
    assert calls == [True]
    assert loss.item() == 5.0
    assert w.detach().numpy().tolist() == [0.0, 0.0]


def test_add_param_group_and_defaults():
    a = ember.nn.Parameter(ember.ones(2))
    b = ember.nn.Parameter(ember.ones(2))
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    opt.add_param_group({"params": b, "lr": 0.01})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.01
    assert opt.param_groups[1]["params"] == [b] or opt.param_groups[1]["params"][0] is b
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})


def test_repr_matches_torch_format():
    w = ember.nn.Parameter(ember.ones(2))
    text = repr(optim.SGD([w], lr=0.1))
    assert text.startswith("SGD (\nParameter Group 0\n    dampening: 0\n")
    assert "    lr: 0.1\n" in text and text.endswith(")")


@pytest.mark.oracle
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "Adamax", "NAdam", "RAdam",
                                  "RMSprop", "Adagrad", "Adadelta"])
def test_defaults_match_torch(name):
    w = ember.nn.Parameter(ember.ones(2))
    tw = torch.nn.Parameter(torch.ones(2))
    eg = {k: v for k, v in getattr(optim, name)([w]).param_groups[0].items() if k != "params"}
    tg = {k: v for k, v in getattr(torch.optim, name)([tw]).param_groups[0].items()
          if k != "params"}
    assert eg == tg


@pytest.mark.parametrize("make, match", [
    (lambda p: optim.Adam(p, lr=-0.1), r"Adam: invalid learning rate -0.1 \(expected lr >= 0\)"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "beta parameter at index 0"),
    (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), "AdamW: invalid beta parameter at index 1"),
    (lambda p: optim.Adam(p, eps=-1e-8), "epsilon"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "momentum"),
    (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), "weight_decay"),
    (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    (lambda p: optim.RMSprop(p, alpha=-0.1), "alpha"),
    (lambda p: optim.Adagrad(p, lr_decay=-1), "lr_decay"),
    (lambda p: optim.Adadelta(p, rho=1.5), "rho"),
    (lambda p: optim.NAdam(p, momentum_decay=-1), "momentum_decay"),
    (lambda p: optim.Adam([{"params": p, "lr": -1}]), "learning rate"),
    (lambda p: optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda p: optim.Adam(p, differentiable=True), "differentiable"),
])
def test_invalid_hyperparameters(make, match):
    p = [ember.nn.Parameter(ember.ones(2))]
    with pytest.raises(ValueError, match=match):
        make(p)


def test_invalid_params():
    w = ember.nn.Parameter(ember.ones(2))
    with pytest.raises(TypeError, match="single tensor"):
        optim.SGD(w, lr=0.1)
    with pytest.raises(TypeError, match="set"):
        optim.SGD({w}, lr=0.1)
    with pytest.raises(TypeError, match="can only optimize tensors"):
        optim.SGD([w, 3.0], lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([w * 2], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)


def _trained_adam():
    net = make_ember_net(init_weights())
    opt = optim.Adam(net.parameters(), lr=0.01)
    train_ember(net, opt, *data(), 2)
    return net, opt


def test_malformed_state_dicts():
    net, opt = _trained_adam()
    sd = opt.state_dict()
    fresh = optim.Adam(make_ember_net(init_weights()).parameters(), lr=0.01)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        fresh.load_state_dict({"state": {}})
    with pytest.raises(ValueError, match="different number of parameter groups"):
        fresh.load_state_dict({"state": {}, "param_groups": sd["param_groups"] * 2})
    bad = [dict(sd["param_groups"][0], params=[0, 1, 2])]
    with pytest.raises(ValueError, match="has 3 parameters but the optimizer's group has 4"):
        fresh.load_state_dict({"state": {}, "param_groups": bad})
    wrong = {i: dict(s) for i, s in sd["state"].items()}
    wrong[0]["exp_avg"] = ember.zeros(2, 2)
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(2, 2\)"):
        fresh.load_state_dict({"state": wrong, "param_groups": sd["param_groups"]})
    with pytest.raises(ValueError, match="parameter index 7"):
        fresh.load_state_dict({"state": {7: {}}, "param_groups": sd["param_groups"]})
    # a failed load leaves the optimizer untouched
    assert not fresh.state and fresh.param_groups[0]["lr"] == 0.01


def test_grad_shape_mismatch_is_a_clear_error():
    w = ember.nn.Parameter(ember.ones(2))
    w.grad = ember.ones(3)
    with pytest.raises(RuntimeError, match="gradient of shape"):
        optim.SGD([w], lr=0.1).step()


def test_lr_changes_between_steps_are_used():
    w = ember.nn.Parameter(ember.tensor([1.0]))
    opt = optim.SGD([w], lr=0.1)
    w.grad = ember.tensor([1.0])
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    np.testing.assert_allclose(w.detach().numpy(), [0.4], rtol=1e-6)
