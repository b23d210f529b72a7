"""Forward hooks with ``with_kwargs`` and ``prepend``, against torch's behaviour."""

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _scaled(m):
    class Scaled(m.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = m.nn.Linear(3, 2)

        def forward(self, x, scale=1.0):
            return self.fc(x) * scale

    return Scaled()


def _both():
    e, t = _scaled(ember), _scaled(torch)
    t.load_state_dict({k: torch.tensor(v.numpy()) for k, v in e.state_dict().items()})
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    return (e, ember.tensor(x)), (t, torch.tensor(x))


def _run(register):
    outs, calls = [], []
    for m, x in _both():
        log = []
        register(m, log)
        outs.append(m(x, scale=2.0).detach().numpy())
        calls.append(log)
    return outs, calls


def test_pre_hook_with_kwargs_sees_and_replaces_keyword_arguments():
    def register(m, log):
        def hook(mod, args, kwargs):
            log.append(("pre", len(args), dict(kwargs)))
            return args, {"scale": kwargs["scale"] * 3}
        m.register_forward_pre_hook(hook, with_kwargs=True)

    (eo, to), (el, tl) = _run(register)
    np.testing.assert_allclose(eo, to, rtol=1e-6)
    assert el == tl == [("pre", 1, {"scale": 2.0})]


def test_forward_hook_with_kwargs_and_prepend_order():
    def register(m, log):
        m.register_forward_hook(lambda mod, a, out: log.append("plain"))
        m.register_forward_hook(lambda mod, a, kw, out: log.append(("kw", kw["scale"])) or out + 1,
                                with_kwargs=True, prepend=True)
        m.register_forward_pre_hook(lambda mod, a: log.append("pre-last"))
        m.register_forward_pre_hook(lambda mod, a: log.append("pre-first"), prepend=True)

    (eo, to), (el, tl) = _run(register)
    np.testing.assert_allclose(eo, to, rtol=1e-6)
    assert el == tl == ["pre-first", "pre-last", ("kw", 2.0), "plain"]


def test_prepended_hook_handle_still_removes_it():
    m, x = _both()[0]
    log = []
    m.register_forward_hook(lambda mod, a, out: log.append("a"))
    h = m.register_forward_hook(lambda mod, a, out: log.append("b"), prepend=True)
    h.remove()
    m(x)
    assert log == ["a"]


def test_pre_hook_with_kwargs_must_return_a_pair():
    m, x = _both()[0]
    m.register_forward_pre_hook(lambda mod, a, kw: a, with_kwargs=True)
    with pytest.raises(RuntimeError, match="tuple \\(args, kwargs\\)"):
        m(x)
