import pytest

from tests.recipes.runs import one_blas_thread


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    with one_blas_thread():
        yield
