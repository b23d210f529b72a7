"""Fixtures shared by the test folders that use the session's quick recipe runs (imported by
their conftest.py files)."""

import pytest

from tests.recipes.runs import one_blas_thread, quick_run


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    with one_blas_thread():
        yield


@pytest.fixture(scope="session")
def run(tmp_path_factory):
    """``run(name) -> (run_dir, summary)``: the session's quick run of a recipe (one per
    recipe, shared by tests/recipes, tests/cli and tests/explain)."""
    return lambda name: quick_run(tmp_path_factory, name)
