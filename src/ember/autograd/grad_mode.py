"""Gradient recording on or off: ``no_grad``, ``enable_grad``, ``set_grad_enabled``.

Matches: ``torch.no_grad``, ``torch.enable_grad``, ``torch.set_grad_enabled``,
``torch.is_grad_enabled``. Each works as a context manager and as a decorator.

The switch is one process-wide flag (the common single-threaded training case stays cheap);
ember's data-loading threads never record graphs.
"""

from __future__ import annotations

import functools


class _State:
    enabled = True
    anomaly = False


STATE = _State()


def is_grad_enabled() -> bool:
    return STATE.enabled


class _GradMode:
    """Base of the grad-mode switches: a context manager that also decorates functions."""

    _mode: bool

    def __new__(cls, *args):
        self = super().__new__(cls)
        if len(args) == 1 and callable(args[0]) and cls is not set_grad_enabled:
            return self(args[0])  # used as a bare decorator: @ember.no_grad
        return self

    def __enter__(self):
        self._prev = STATE.enabled
        STATE.enabled = self._mode
        return self

    def __exit__(self, *exc) -> None:
        STATE.enabled = self._prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__(*self._ctor_args()):
                return fn(*args, **kwargs)

        return wrapper

    def _ctor_args(self) -> tuple:
        return ()


class no_grad(_GradMode):  # noqa: N801 - PyTorch's name
    """Disable gradient recording: results of ops never require grad.

    Example:
        >>> import ember
        >>> x = ember.ones(2, requires_grad=True)
        >>> with ember.no_grad():
        ...     y = x * 2
        >>> y.requires_grad
        False
    """

    _mode = False


class enable_grad(_GradMode):  # noqa: N801
    """Re-enable gradient recording inside a ``no_grad`` block."""

    _mode = True


class set_grad_enabled(_GradMode):  # noqa: N801
    """Turn recording on or off; takes effect immediately, and as a context manager restores."""

    def __init__(self, mode: bool):
        self._mode = bool(mode)
        self._prev = STATE.enabled
        STATE.enabled = self._mode

    def __enter__(self):
        return self

    def __call__(self, fn):
        STATE.enabled = self._prev  # used as a decorator: do not leave the mode switched
        return super().__call__(fn)

    def _ctor_args(self) -> tuple:
        return (self._mode,)
