"""Quick runs of the recipes, shared by tests/recipes and tests/cli: each recipe is trained
once per test session (``quick=True``) into the session's temporary directory."""

from __future__ import annotations

import contextlib

from ember import recipes

_CACHE: dict = {}


def quick_run(tmp_path_factory, name: str):
    """``(run_dir, summary)`` of the quick run of recipe ``name`` (trained on first use)."""
    if name not in _CACHE:
        run_dir = tmp_path_factory.getbasetemp() / "quick-runs" / name
        summary = recipes.train(name, run_dir, quick=True)
        _CACHE[name] = (run_dir, summary)
    return _CACHE[name]


def one_blas_thread():
    """BLAS threads fight over the 2 shared cores (a quick run slows down 4x): use one."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
