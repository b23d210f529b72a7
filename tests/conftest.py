"""Shared pytest setup: the PyTorch oracle is optional and imported lazily."""

import numpy as np
import pytest

import ember


@pytest.fixture(autouse=True)
def _seed():
    ember.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture(params=["native", "numpy"])
def kernels(request):
    """Run a test on the compiled kernels (``ember.ops._native``) and on the plain NumPy ones.

    Modules whose ops have a compiled twin use it through
    ``pytestmark = pytest.mark.usefixtures("kernels")``. Without the extension the "native"
    case is skipped; ``tests/ops/test_native.py`` fails then, unless ``EMBER_NATIVE=0``.
    """
    from ember.ops import native

    if request.param == "native" and not native.available():
        pytest.skip("the compiled kernels are not built")
    before = native.enabled()
    native.set_enabled(request.param == "native")
    try:
        yield request.param
    finally:
        native.set_enabled(before)
