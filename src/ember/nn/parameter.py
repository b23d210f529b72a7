"""``Parameter``: a tensor that a Module registers as learnable.

Matches: ``torch.nn.Parameter`` (``requires_grad=True`` by default; shares the data's memory).
"""

from __future__ import annotations

from ..autograd import Tensor
from ..autograd.creation import _to_array


class Parameter(Tensor):
    """A learnable tensor: assigning one to a Module attribute registers it.

    Example:
        >>> import ember
        >>> p = ember.nn.Parameter(ember.zeros(2))
        >>> p.requires_grad
        True
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            arr = _to_array([], None).astype("float32")
        elif isinstance(data, Tensor):
            arr = data._data
        else:
            arr = _to_array(data)
        self._init(arr, False, None, 0, [0], None)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Buffer(Tensor):
    """Marks a tensor to be registered as a buffer when assigned to a Module attribute.

    Matches: ``torch.nn.Buffer`` (``persistent`` says whether it goes into the state dict).
    """

    __slots__ = ("persistent",)

    def __init__(self, data, *, persistent: bool = True):
        arr = data._data if isinstance(data, Tensor) else _to_array(data)
        self._init(arr, False, None, 0, [0], None)
        self.persistent = persistent
