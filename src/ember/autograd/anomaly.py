"""Anomaly detection: stop at the first operation that produces NaN or Inf.

Matches: ``torch.autograd.detect_anomaly`` and ``torch.autograd.set_detect_anomaly`` (both a
context manager; ``detect_anomaly`` also decorates functions). ember goes further than
PyTorch, which checks only the backward pass: in this mode *every* op is checked, forward and
backward, and the error names

- the operation (``log``, ``DivBackward`` ...) and the pass (forward or backward),
- the module it ran in (``Linear 'features.3'``: the innermost ``Module`` on the call stack),
- the shapes of its inputs,
- where the forward op was created in *your* code (file:line of the first stack frame outside
  ember, with the source line).

An op is blamed only for what it *produces*: a NaN out of NaN-free inputs, an Inf out of
Inf-free inputs. So values that are infinite on purpose (the ``-inf`` of an attention mask, a
``masked_fill(mask, -inf)``) pass through the ops that propagate them, and the first op that
turns them into NaN (a softmax over a row that is entirely ``-inf``) is the one reported.

    >>> import ember
    >>> x = ember.tensor([1.0, -1.0], requires_grad=True)
    >>> with ember.autograd.detect_anomaly():
    ...     y = ember.log(x)                                   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ember.autograd.anomaly.AnomalyError: detect_anomaly: 'log' produced NaN in the forward pass...

Cost: when the mode is off, a single flag test per op (the op hot path already tested it);
when on, every op's output is scanned for non-finite values and every recorded op remembers
where it was created, which makes training several times slower: use it to find a bug, then
turn it off.
"""

from __future__ import annotations

import functools
import linecache
import math
import os
import sys

from .. import ops
from .grad_mode import STATE

__all__ = ["detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "AnomalyError"]

# frames from files under this directory are ember's own; the first other frame is the user's
_EMBER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_MAX_USER_FRAMES = 4


class AnomalyError(RuntimeError):
    """Raised in anomaly mode by the first op that produces NaN or Inf.

    Attributes: ``op`` (the op's name), ``phase`` (``"forward"`` or ``"backward"``),
    ``module`` (label of the innermost module, or None), ``input_shapes``, ``location``
    (``"file:line"`` of the first frame outside ember, or None) and ``produced``
    (``"NaN"``, ``"Inf"`` or ``"NaN and Inf"``).
    """

    def __init__(self, message: str, *, op: str, phase: str, module, input_shapes,
                 location, produced: str):
        super().__init__(message)
        self.op, self.phase, self.module = op, phase, module
        self.input_shapes, self.location, self.produced = input_shapes, location, produced


def is_anomaly_enabled() -> bool:
    """Whether anomaly detection is on. Matches ``torch.is_anomaly_enabled``."""
    return STATE.anomaly


class detect_anomaly:  # noqa: N801 - PyTorch's name
    """Turn anomaly detection on inside a ``with`` block (or a decorated function).

    Args:
        check_nan: accepted for PyTorch compatibility; ``False`` turns detection off.

    Example:
        >>> import ember
        >>> with ember.autograd.detect_anomaly():
        ...     ember.autograd.is_anomaly_enabled()
        True
    """

    def __init__(self, check_nan: bool = True):
        self.mode = bool(check_nan)

    def __enter__(self):
        self._prev = STATE.anomaly
        STATE.anomaly = self.mode
        return self

    def __exit__(self, *exc) -> None:
        STATE.anomaly = self._prev

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(self.mode):
                return fn(*args, **kwargs)

        return wrapper


class set_detect_anomaly:  # noqa: N801 - PyTorch's name
    """Turn anomaly detection on or off now; as a context manager, restore it on exit.

    Example:
        >>> import ember
        >>> _ = ember.autograd.set_detect_anomaly(True)
        >>> ember.autograd.is_anomaly_enabled()
        True
        >>> _ = ember.autograd.set_detect_anomaly(False)
    """

    def __init__(self, mode: bool):
        self._prev = STATE.anomaly
        STATE.anomaly = bool(mode)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        STATE.anomaly = self._prev


# ---------------------------------------------------------------------------- creation sites
class Origin:
    """Where a recorded op was created: the innermost module and the user's frames."""

    __slots__ = ("module", "frames")

    def __init__(self, module, frames):
        self.module = module  # "Linear 'features.3'" or None
        self.frames = frames  # ((filename, lineno, function), ...), innermost first

    @property
    def location(self):
        if not self.frames:
            return None
        filename, lineno, _ = self.frames[0]
        return f"{filename}:{lineno}"

    def format_frames(self) -> str:
        lines = []
        for filename, lineno, name in self.frames:
            lines.append(f'  File "{filename}", line {lineno}, in {name}')
            code = linecache.getline(filename, lineno).strip()
            if code:
                lines.append(f"    {code}")
        return "\n".join(lines)

    def __str__(self) -> str:  # what engine error messages show as "created at"
        return self.format_frames()


def _module_of(frame):
    """The Module that ``frame`` is a method of (duck-typed: autograd cannot import nn)."""
    code = frame.f_code
    if not code.co_argcount or code.co_varnames[0] != "self":
        return None
    obj = frame.f_locals.get("self")
    d = getattr(obj, "__dict__", None)
    if d is not None and "_modules" in d and "_path" in d:
        return obj
    return None


def capture_origin(skip: int = 1) -> Origin:
    """The current op's :class:`Origin`, read from the Python stack (anomaly mode only)."""
    frame = sys._getframe(skip)
    module = None
    frames = []
    while frame is not None and len(frames) < _MAX_USER_FRAMES:
        filename = frame.f_code.co_filename
        if module is None:
            module = _module_of(frame)
        if not filename.startswith(_EMBER_DIR):
            frames.append((filename, frame.f_lineno, frame.f_code.co_name))
        frame = frame.f_back
    label = None
    if module is not None:
        label = module._label() if module._path else f"{type(module).__name__} (root module)"
    return Origin(label, tuple(frames))


# ---------------------------------------------------------------------------- the checks
def _nonfinite_kinds(value, kinds: set) -> None:
    """Add "NaN" and/or "Inf" to ``kinds`` for what ``value`` (array, tensor, scalar,
    sequence of them) holds."""
    data = getattr(value, "_data", value)
    if isinstance(data, float):
        if math.isnan(data):
            kinds.add("NaN")
        elif math.isinf(data):
            kinds.add("Inf")
    elif isinstance(data, (list, tuple)):
        for v in data:
            _nonfinite_kinds(v, kinds)
    elif hasattr(data, "dtype") and data.dtype.kind in "fc" and not ops.all_finite(data):
        if bool(ops.isnan(data).any()):
            kinds.add("NaN")
        if bool(ops.isinf(data).any()):
            kinds.add("Inf")


def _shapes(values) -> list:
    out = []
    for v in values:
        data = getattr(v, "_data", v)
        if hasattr(data, "shape"):
            out.append(tuple(data.shape))
    return out


def _raise(op: str, phase: str, produced: set, shapes, origin: Origin | None,
           headline: str | None = None):
    what = " and ".join(sorted(produced))
    lines = [headline or f"detect_anomaly: '{op}' produced {what} in the {phase} pass",
             f"  input shapes: {', '.join(str(s) for s in shapes) or 'none'}"]
    if origin is not None and origin.module:
        lines.append(f"  module: {origin.module}")
    if origin is not None and origin.frames:
        lines.append(f"  the forward op was created at {origin.location} (the first frame "
                     f"outside ember):")
        lines.append(origin.format_frames())
    raise AnomalyError("\n".join(lines), op=op, phase=phase,
                       module=origin.module if origin else None, input_shapes=shapes,
                       location=origin.location if origin else None, produced=what)


def check_forward(prim, args, attrs, outs, origin: Origin | None = None) -> None:
    """Raise :class:`AnomalyError` if ``prim`` made NaN/Inf out of inputs that had none."""
    for o in outs:
        if not ops.all_finite(o):
            break
    else:
        return
    produced: set = set()
    for o in outs:
        _nonfinite_kinds(o, produced)
    had: set = set()
    _nonfinite_kinds(list(args), had)
    _nonfinite_kinds(list(attrs.values()), had)
    if "NaN" in produced and "NaN" in had:
        _check_leaf_nan(prim, args, origin)
    produced -= had
    if produced:
        _raise(prim.op_name(), "forward", produced, _shapes(args),
               origin if origin is not None else capture_origin(3))


def _check_leaf_nan(prim, args, origin) -> None:
    """NaN reaching an op through a *leaf* input (a parameter, a buffer, data) was made outside
    the checked ops (by an optimizer step, a data batch, an in-place write): report it here.
    Inf in a leaf is left alone, as it can be deliberate (an attention mask)."""
    for i, a in enumerate(args):
        if getattr(a, "grad_fn", None) is not None:
            continue
        kinds: set = set()
        _nonfinite_kinds(a, kinds)
        if "NaN" in kinds:
            op = prim.op_name()
            _raise(op, "forward", kinds, _shapes(args),
                   origin if origin is not None else capture_origin(4),
                   f"detect_anomaly: input {i} of '{op}' holds NaN and is a leaf tensor (a "
                   f"parameter, a buffer or data): the NaN was made outside the checked ops, "
                   f"e.g. by an optimizer step, in a data batch or by an in-place change")


def check_backward(node, grads_in, grads_out) -> None:
    """Raise if ``node``'s backward returned NaN/Inf from finite incoming gradients (or if a
    gradient arriving at ``node``, from the root or a hook, is already non-finite)."""
    arrived: set = set()
    _nonfinite_kinds([g for g in grads_in if g is not None], arrived)
    origin = node.trace if isinstance(node.trace, Origin) else None
    shapes = [m[0] for m in node.in_meta if m is not None]
    if arrived:
        what = " and ".join(sorted(arrived))
        _raise(node.name(), "backward", arrived, shapes, origin,
               f"detect_anomaly: the gradient arriving at '{node.name()}' in the backward "
               f"pass holds {what} (it comes from the gradient given to backward() or from a "
               f"tensor hook)")
    produced: set = set()
    _nonfinite_kinds([g for g in grads_out if g is not None], produced)
    if produced:
        _raise(node.name(), "backward", produced, shapes, origin)
