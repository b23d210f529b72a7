"""no_grad / enable_grad / set_grad_enabled as context managers and decorators."""

import pytest

import ember

torch = pytest.importorskip("torch")


def _rg(lib, x):
    return (x * 2).requires_grad


@pytest.mark.parametrize("lib", [ember, torch], ids=["ember", "torch"])
def test_context_managers_nested(lib):
    x = lib.ones(2, requires_grad=True)
    seen = []
    with lib.no_grad():
        seen.append(_rg(lib, x))
        with lib.enable_grad():
            seen.append(_rg(lib, x))
            with lib.set_grad_enabled(False):
                seen.append(_rg(lib, x))
            seen.append(_rg(lib, x))
        seen.append(_rg(lib, x))
        seen.append(lib.is_grad_enabled())
    seen.append(_rg(lib, x))
    seen.append(lib.is_grad_enabled())
    assert seen == [False, True, False, True, False, False, True, True]


@pytest.mark.parametrize("lib", [ember, torch], ids=["ember", "torch"])
def test_decorators(lib):
    x = lib.ones(2, requires_grad=True)

    @lib.no_grad()
    def f(a):
        return a * 2

    @lib.no_grad
    def f_bare(a):
        return a * 2

    @lib.enable_grad()
    def g(a):
        return a * 2

    @lib.set_grad_enabled(False)
    def h(a):
        return a * 2

    assert lib.is_grad_enabled()  # decorating does not switch the mode
    assert not f(x).requires_grad and not f_bare(x).requires_grad and not h(x).requires_grad
    assert f.__name__ == "f"
    with lib.no_grad():
        assert g(x).requires_grad
        assert not lib.is_grad_enabled()
    assert lib.is_grad_enabled()
    assert (x * 2).requires_grad


@pytest.mark.parametrize("lib", [ember, torch], ids=["ember", "torch"])
def test_set_grad_enabled_as_function_and_restored_on_error(lib):
    x = lib.ones(2, requires_grad=True)
    lib.set_grad_enabled(False)
    try:
        assert not (x * 2).requires_grad
    finally:
        lib.set_grad_enabled(True)
    assert (x * 2).requires_grad
    with pytest.raises(ZeroDivisionError):
        with lib.no_grad():
            raise ZeroDivisionError
    assert lib.is_grad_enabled()

    @lib.no_grad()
    def boom():
        raise ValueError("x")

    with pytest.raises(ValueError):
        boom()
    assert lib.is_grad_enabled()


def test_no_grad_results_are_leaves_and_backward_ignores_them():
    x = ember.tensor([1.0, 2.0], requires_grad=True)
    with ember.no_grad():
        y = x * 3
    assert y.grad_fn is None and y.is_leaf and not y.requires_grad
    z = (x * y).sum()
    z.backward()
    assert x.grad.tolist() == [3.0, 6.0]
    with pytest.raises(RuntimeError, match="backward: element 0 of the outputs does not require "
                                           "grad"):
        y.sum().backward()


def test_ember_autograd_namespace_exports():
    assert ember.autograd.no_grad is ember.no_grad
    assert ember.autograd.is_grad_enabled() is True
