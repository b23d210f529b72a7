"""Training loops keep memory flat and graphs are freed by reference counting (no cycles)."""

import gc
import os
import weakref

import pytest

import ember


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _mlp_params():
    ember.manual_seed(0)
    w1 = ember.randn(20, 64, requires_grad=True)
    b1 = ember.zeros(64, requires_grad=True)
    w2 = ember.randn(64, 1, requires_grad=True)
    return w1, b1, w2


@pytest.fixture
def gc_disabled():
    was = gc.isenabled()
    gc.disable()
    yield
    if was:
        gc.enable()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc (Linux)")
def test_training_loop_memory_flat(gc_disabled):
    w1, b1, w2 = _mlp_params()
    x = ember.randn(32, 20)
    t = ember.randn(32, 1)

    def step():
        h = (x @ w1 + b1).tanh()
        loss = ((h @ w2 - t) ** 2).mean()
        loss.backward()
        with ember.no_grad():
            for p in (w1, b1, w2):
                p.sub_(p.grad, alpha=1e-4)
                p.grad.zero_()
        return loss

    gc.collect()
    for _ in range(1000):
        step()
    before = _rss()
    for _ in range(9000):
        step()
    growth = _rss() - before
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MB over 9000 iterations"
    # no per-iteration garbage cycles (10,000 iterations would leave thousands)
    assert gc.collect() < 50


def test_graph_freed_after_backward_without_gc(gc_disabled):
    w1, b1, w2 = _mlp_params()
    x = ember.randn(32, 20)
    h = (x @ w1 + b1).tanh()
    out = (h @ w2).sum()
    refs = [weakref.ref(h.grad_fn), weakref.ref(out.grad_fn),
            weakref.ref(h.grad_fn.next_functions[0][0])]
    out.backward()
    assert all(r() is not None for r in refs)
    del h, out
    assert all(r() is None for r in refs), "graph nodes kept alive by a reference cycle"


def test_graph_freed_without_backward_and_with_hooks(gc_disabled):
    x = ember.randn(4, 3, requires_grad=True)
    y = x.exp()
    y.retain_grad()
    y.register_hook(lambda g: g * 2)
    z = (y * y).sum()
    r = weakref.ref(z.grad_fn)
    ry = weakref.ref(y.grad_fn)
    del z
    assert r() is None
    (y * 1.0).sum().backward()
    del y
    assert ry() is None


def test_graph_freed_create_graph_and_function(gc_disabled):
    class Sq(ember.autograd.Function):
        @staticmethod
        def forward(ctx, a):
            out = a * a
            ctx.save_for_backward(a, out)
            return out

        @staticmethod
        def backward(ctx, g):
            a, _ = ctx.saved_tensors
            return g * 2 * a

    x = ember.randn(5, dtype=ember.float64, requires_grad=True)
    y = Sq.apply(x.sin())
    (g,) = ember.autograd.grad(y.sum(), x, create_graph=True)
    refs = [weakref.ref(y.grad_fn), weakref.ref(g.grad_fn)]
    (g2,) = ember.autograd.grad(g.sum(), x)
    del y, g, g2
    assert all(r() is None for r in refs)


def test_retained_graph_freed_when_unreferenced(gc_disabled):
    x = ember.randn(3, requires_grad=True)
    y = (x.exp() * x).sum()
    r = weakref.ref(y.grad_fn)
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    del y
    assert r() is None
