"""Argument types of the ``ember`` command: numbers with a lower bound, whose parse errors
argparse turns into one-line usage errors."""

from __future__ import annotations

import argparse

__all__ = ["int_at_least", "number_at_least", "positive_number"]


def _parse(text: str, convert, ok, expected: str):
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def int_at_least(low: int):
    """An integer ``>= low`` (``low`` 1 reads as "a positive integer")."""
    expected = "a positive integer" if low == 1 else f"an integer >= {low}"
    return lambda text: _parse(text, int, lambda v: v >= low, expected)


def number_at_least(low: float):
    """A number ``>= low``."""
    return lambda text: _parse(text, float, lambda v: v >= low, f"a number >= {low:g}")


def positive_number(text: str) -> float:
    """A number ``> 0``."""
    return _parse(text, float, lambda v: v > 0, "a positive number")
