# the session's quick recipe runs and one BLAS thread (tests/recipes/fixtures.py)
from tests.recipes.fixtures import _one_blas_thread, run  # noqa: F401
