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
KERNELS = ("lstm_fwd", "lstm_bwd", "xent_fwd", "xent_bwd", "softmax_rows",
           "softmax_rows_bwd", "layernorm_fwd", "layernorm_bwd", "relu_fwd", "relu_bwd",
           "scatter_add", "maxpool_fwd", "maxpool_bwd",
           "index_add_rows", "conv2d_small",
           "gather", "lstm_seq", "swap01",
           "adam_many", "sgd_many")

_on = _lib is not None and os.environ.get("EMBER_NATIVE", "1") != "0"


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
