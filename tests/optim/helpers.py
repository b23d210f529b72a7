"""Twin networks (ember and PyTorch with the same weights) trained on the same fixed data."""

from __future__ import annotations

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

N_IN, N_HID, N_OUT = 5, 8, 3


def data(dtype=np.float32, n=16, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, N_IN)).astype(dtype)
    y = rng.standard_normal((n, N_OUT)).astype(dtype)
    return x, y


def make_ember_net(weights):
    net = ember.nn.Sequential(ember.nn.Linear(N_IN, N_HID), ember.nn.Tanh(),
                              ember.nn.Linear(N_HID, N_OUT))
    for p, w in zip(net.parameters(), weights):
        p.data = ember.from_numpy(np.array(w, copy=True))
    return net


def make_torch_net(weights):
    net = torch.nn.Sequential(torch.nn.Linear(N_IN, N_HID), torch.nn.Tanh(),
                              torch.nn.Linear(N_HID, N_OUT))
    with torch.no_grad():
        for p, w in zip(net.parameters(), weights):
            p.data = torch.from_numpy(np.array(w, copy=True))
    return net


def init_weights(dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(N_HID, N_IN), (N_HID,), (N_OUT, N_HID), (N_OUT,)]
    return [rng.uniform(-0.5, 0.5, s).astype(dtype) for s in shapes]


def groups_of(net, spec, lr_of_second=None):
    """``net``'s parameters as given to an optimizer: one list, or two groups by layer."""
    params = list(net.parameters())
    if spec == "groups":
        return [{"params": params[:2], "lr": lr_of_second}, {"params": params[2:]}]
    return params


def ember_loss(net, x, y):
    out = net(x)
    return ((out - y) ** 2).mean()


def torch_loss(net, x, y):
    out = net(x)
    return ((out - y) ** 2).mean()


def train_ember(net, opt, x, y, steps):
    xe, ye = ember.from_numpy(x), ember.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad()
        loss = ember_loss(net, xe, ye)
        loss.backward()
        opt.step()
    return net


def train_torch(net, opt, x, y, steps):
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch_loss(net, xt, yt)
        loss.backward()
        opt.step()
    return net


def ember_params(net):
    return [p.detach().numpy().copy() for p in net.parameters()]


def torch_params(net):
    return [p.detach().numpy().copy() for p in net.parameters()]
