"""Activation layers: ``ReLU``, ``LeakyReLU``, ``PReLU``, ``ELU``, ``GELU``, ``SiLU``,
``Sigmoid``, ``Tanh``, ``Softplus``, ``Softmax``, ``LogSoftmax``, ``Hardtanh`` and more.

Matches: the ``torch.nn`` classes of the same names and arguments. Each calls the function of
the same name in :mod:`ember.ops.activation` (``ember.nn.functional``).
"""

from __future__ import annotations

from ... import ops
from ...autograd import creation
from ..module import Module
from ..parameter import Parameter

__all__ = ["PReLU", "ReLU", "ReLU6", "LeakyReLU", "ELU", "SELU", "CELU", "GELU", "SiLU",
           "Mish", "Sigmoid", "Tanh", "Softplus", "Softsign", "Tanhshrink",
           "LogSigmoid", "Hardtanh", "Hardsigmoid", "Hardswish", "Hardshrink",
           "Softshrink", "Threshold", "Softmax", "LogSoftmax", "Softmin", "GLU"]


class _Activation(Module):
    """An activation with fixed keyword settings, forwarded to ``ops.<fn>``."""

    fn: str = ""
    settings: tuple = ()
    _kw_names: tuple = ()  # the settings passed to the function (all but inplace)
    _positional = False  # repr shows bare values (Hardshrink(0.5))
    _hide_inplace = False  # repr never shows inplace (Hardswish, Hardsigmoid)

    def __init__(self, *args, **kwargs):
        super().__init__()
        names = [n for n, _ in self.settings]
        values = dict(self.settings)
        for n, v in zip(names, args):
            values[n] = v
        for n, v in kwargs.items():
            if n not in values:
                raise TypeError(f"{type(self).__name__}: unexpected argument {n!r}; "
                                f"expected {names}")
            values[n] = v
        for n, v in values.items():
            setattr(self, n, v)

    def forward(self, input):
        names = self._kw_names
        if not names:  # ReLU, Sigmoid, Tanh ...: no setting reaches the function
            return getattr(ops, self.fn)(input)
        d = self.__dict__
        return getattr(ops, self.fn)(input, **{n: d[n] for n in names})

    def extra_repr(self) -> str:
        # PyTorch's format: every setting but inplace, which is shown only when True
        parts = []
        for n, _ in self.settings:
            v = getattr(self, n)
            if n == "inplace":
                if v and not self._hide_inplace:
                    parts.append("inplace=True")
            elif self._positional:
                parts.append(f"{v}")
            else:
                parts.append(f"{n}={v!r}" if isinstance(v, str) else f"{n}={v}")
        return ", ".join(parts)


def _act(name: str, fn: str, settings=(), doc: str = "", **attrs):
    attrs.update({"fn": fn, "settings": tuple(settings),
                  "_kw_names": tuple(n for n, _ in settings if n != "inplace"),
                  "__doc__": (doc or f"Applies ``{fn}`` elementwise.") +
                  f" Matches ``torch.nn.{name}``."})
    return type(name, (_Activation,), attrs)


ReLU = _act("ReLU", "relu", [("inplace", False)], "max(0, x).")
ReLU6 = _act("ReLU6", "relu6", [("inplace", False)])
LeakyReLU = _act("LeakyReLU", "leaky_relu", [("negative_slope", 0.01), ("inplace", False)],
                 "x if x > 0 else negative_slope * x.")
ELU = _act("ELU", "elu", [("alpha", 1.0), ("inplace", False)])
SELU = _act("SELU", "selu", [("inplace", False)])
CELU = _act("CELU", "celu", [("alpha", 1.0), ("inplace", False)])
GELU = _act("GELU", "gelu", [("approximate", "none")],
            "x * Phi(x), Phi the standard normal CDF (``approximate='tanh'`` for the tanh form).")
SiLU = _act("SiLU", "silu", [("inplace", False)], "x * sigmoid(x) (swish).")
Mish = _act("Mish", "mish", [("inplace", False)])
Sigmoid = _act("Sigmoid", "sigmoid")
Tanh = _act("Tanh", "tanh")
Softplus = _act("Softplus", "softplus", [("beta", 1.0), ("threshold", 20.0)])
Softsign = _act("Softsign", "softsign")
Tanhshrink = _act("Tanhshrink", "tanhshrink")
LogSigmoid = _act("LogSigmoid", "logsigmoid")
Hardtanh = _act("Hardtanh", "hardtanh", [("min_val", -1.0), ("max_val", 1.0),
                                         ("inplace", False)])
Hardsigmoid = _act("Hardsigmoid", "hardsigmoid", [("inplace", False)], _hide_inplace=True)
Hardswish = _act("Hardswish", "hardswish", [("inplace", False)], _hide_inplace=True)
Hardshrink = _act("Hardshrink", "hardshrink", [("lambd", 0.5)], _positional=True)
Softshrink = _act("Softshrink", "softshrink", [("lambd", 0.5)], _positional=True)
Threshold = _act("Threshold", "threshold", [("threshold", 0.0), ("value", 0.0),
                                            ("inplace", False)])
Softmax = _act("Softmax", "softmax", [("dim", None)], "exp(x) / sum(exp(x)) along ``dim``.")
LogSoftmax = _act("LogSoftmax", "log_softmax", [("dim", None)])
Softmin = _act("Softmin", "softmin", [("dim", None)])
GLU = _act("GLU", "glu", [("dim", -1)])


class PReLU(Module):
    """Leaky ReLU with a learned slope: ``weight`` of shape (num_parameters,), init 0.25.

    With ``num_parameters`` > 1 the slope is per channel (dim 1 of the input).
    """

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters = num_parameters
        self.init = init
        self.weight = Parameter(creation.full((num_parameters,), init, dtype=dtype or "float32"))

    def reset_parameters(self) -> None:
        from .. import init as _init

        _init.constant_(self.weight, self.init)

    def forward(self, input):
        w = self.weight
        if self.num_parameters > 1:
            if input.dim() < 2 or input.shape[1] != self.num_parameters:
                raise self._error(f"expected input with {self.num_parameters} channels in dim "
                                  f"1, got shape {tuple(input.shape)}")
            w = w.reshape((-1,) + (1,) * (input.dim() - 2))
        return ops.where(input > 0, input, input * w)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
