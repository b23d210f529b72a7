"""The optional compiled kernels: ``ember.ops._native``, built from ``csrc/*.c`` at install.

ember's ops are NumPy code. A few hot spots do a dozen NumPy passes over memory where one
would do (an LSTM cell step, an Adam update): for those, ``csrc/`` holds a fused C kernel,
vectorized by the compiler. The op that owns the math calls
``kernel("name")`` and, when that returns ``None``, runs its NumPy path, which stays the
reference: every kernel is tested against it and against PyTorch.

The extension is built by ``pip install`` when a C compiler is present (see ``setup.py``); it
is never required. ``EMBER_NATIVE=0`` in the environment switches it off for a process, and
:func:`disabled` for a block of code (tests run both paths this way).

Example::

    >>> from ember.ops import native
    >>> with native.disabled():
    ...     native.kernel("adam_many") is None
    True
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

try:  # built by setup.py when a C compiler was found at install time
    from . import _native as _lib
except ImportError:  # pragma: no cover - depends on the install
    _lib = None

# the kernels csrc/ defines (module.c lists them; each family's file names the op that calls it)
KERNELS = ("dense_rows", "lstm_fwd", "lstm_bwd", "xent_fwd", "xent_bwd", "softmax_rows",
           "softmax_rows_bwd", "layernorm_fwd", "layernorm_bwd", "relu_fwd", "relu_bwd",
           "scatter_add", "maxpool_fwd", "maxpool_bwd",
           "index_add_rows", "conv2d_small", "conv2d_direct", "conv2d_direct_wgrad",
           "conv2d_chan", "conv2d_chan_wgrad",
           "gather", "lstm_seq", "swap01",
           "adam_many", "sgd_many", "set_threads", "get_threads")

_on = _lib is not None and os.environ.get("EMBER_NATIVE", "1") != "0"


def _default_threads() -> int:
    """``EMBER_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs this process may use."""
    for var in ("EMBER_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


_threads = _default_threads()
if _lib is not None:
    _lib.set_threads(_threads)


def set_num_threads(n: int) -> None:
    """Threads ember's own compiled kernels may use. Matches ``torch.set_num_threads``.

    Today one kernel splits its work: the dense layer at batch 1-4 (``dense_rows``), whose
    two halves run on the calling thread and one helper thread, so any ``n >= 2`` means two.
    ``n = 1`` keeps every kernel on the calling thread. The default comes from
    ``EMBER_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the CPUs the process may use. NumPy's
    BLAS has its own setting (``OPENBLAS_NUM_THREADS`` at start-up).
    """
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    _threads = n
    if _lib is not None:
        _lib.set_threads(n)


def get_num_threads() -> int:
    """The count set by :func:`set_num_threads` (or its default). Matches
    ``torch.get_num_threads``."""
    return _threads


def available() -> bool:
    """Whether the compiled extension was built and imports."""
    return _lib is not None


def enabled() -> bool:
    """Whether ops use the compiled kernels now."""
    return _on


def kernel(name: str):
    """The compiled kernel ``name``, or ``None`` when the NumPy path must run."""
    return getattr(_lib, name, None) if _on else None


def set_enabled(flag: bool) -> None:
    """Use the compiled kernels (when built) or not, from now on."""
    global _on
    _on = bool(flag) and _lib is not None


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Run the block on the plain NumPy kernels."""
    global _on
    before = _on
    _on = False
    try:
        yield
    finally:
        _on = before
