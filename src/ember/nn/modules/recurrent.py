"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and the single-step ``RNNCell``, ``LSTMCell``,
``GRUCell``.

Matches: the ``torch.nn`` classes of the same names: constructor arguments and defaults,
parameter names (``weight_ih_l{k}[_reverse]``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}``, ``weight_hr_l{k}`` for LSTM projections), shapes, gate orders (LSTM i, f, g, o;
GRU r, z, n), initialization U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), unbatched inputs and
:class:`~ember.nn.utils.rnn.PackedSequence` inputs.

Each layer/direction projects its whole input sequence through ``W_ih`` with one matmul and then
runs the recurrence as one primitive (:func:`ember.ops.rnn_sequence`; the two directions of a
bidirectional layer together, :func:`ember.ops.rnn_bidirectional`, which halves the per-step
work).
"""

from __future__ import annotations

import math

from ... import ops
from ...autograd import Tensor, creation, is_grad_enabled
from .. import init
from ..functional import basic as F
from ..module import Module
from ..parameter import Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _check_int(owner: str, name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} should be of type int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be at least {minimum}, got {value}")
    return value


def _packed_type():
    from ..utils.rnn import PackedSequence

    return PackedSequence


class RNNBase(Module):
    """Shared machinery of :class:`RNN`, :class:`LSTM` and :class:`GRU` (see those)."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = _check_int(name, "input_size", input_size, 0)
        self.hidden_size = _check_int(name, "hidden_size", hidden_size, 1)
        self.num_layers = _check_int(name, "num_layers", num_layers, 1)
        self.proj_size = _check_int(name, "proj_size", proj_size, 0)
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or \
                not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout should be a number in range [0, 1] representing "
                             f"the probability of an element being zeroed, got {dropout!r}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size is only supported for LSTM")
        if proj_size >= hidden_size:
            raise ValueError(f"{name}: proj_size ({proj_size}) has to be smaller than "
                             f"hidden_size ({hidden_size})")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = float(dropout)
        self.bidirectional = bool(bidirectional)
        num_dirs = 2 if bidirectional else 1
        gate = _GATES[mode] * hidden_size
        real_hidden = proj_size if proj_size > 0 else hidden_size
        self._names = []
        for layer in range(num_layers):
            for d in range(num_dirs):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                in_size = input_size if layer == 0 else real_hidden * num_dirs
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                shapes = [(gate, in_size), (gate, real_hidden)]
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    shapes += [(gate,), (gate,)]
                if proj_size > 0:
                    names.append(f"weight_hr{sfx}")
                    shapes.append((proj_size, hidden_size))
                for n, s in zip(names, shapes):
                    self.register_parameter(n, Parameter(creation.empty(*s, dtype=dtype,
                                                                         device=device)))
                self._names.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def flatten_parameters(self) -> None:
        """No-op (PyTorch compacts cuDNN weights here)."""

    @property
    def all_weights(self) -> list:
        return [[getattr(self, n) for n in names] for names in self._names]

    # ------------------------------------------------------------------ forward
    def _layer_params(self, k: int):
        ps = self._parameters
        names = self._names[k]
        sfx = names[0][len("weight_ih"):]
        return (ps[names[0]], ps[names[1]], ps.get("bias_ih" + sfx), ps.get("bias_hh" + sfx),
                ps.get("weight_hr" + sfx))

    def _expected(self) -> str:
        return f"(N, L, {self.input_size})" if self.batch_first else \
            f"(L, N, {self.input_size})"

    def forward(self, input, hx=None):
        is_lstm = self.mode == "LSTM"
        D = 2 if self.bidirectional else 1
        h_out = self.proj_size if self.proj_size > 0 else self.hidden_size
        packed_cls = _packed_type()
        packed = isinstance(input, packed_cls)
        unbatched = False
        if packed:
            data = input.data
            batch_sizes = tuple(int(b) for b in ops.as_array(input.batch_sizes))
            sorted_idx, unsorted_idx = input.sorted_indices, input.unsorted_indices
            if not isinstance(data, Tensor) or data.ndim != 2 or \
                    data.shape[1] != self.input_size:
                raise self._error(f"expected packed data of shape (*, {self.input_size}), got "
                                  f"{tuple(ops.shape_of(data))}")
            B = batch_sizes[0]
        else:
            if not isinstance(input, Tensor):
                raise self._error(f"expected a Tensor or PackedSequence input, got "
                                  f"{type(input).__name__}", TypeError)
            shape = tuple(input.shape)
            if len(shape) not in (2, 3) or shape[-1] != self.input_size:
                raise self._error(f"expected input of shape {self._expected()} (or unbatched "
                                  f"(L, {self.input_size})), got {shape}")
            x = input
            if len(shape) == 2:
                unbatched = True
                x = ops.unsqueeze(x, 1)
            elif self.batch_first:
                x = ops.transpose(x, 0, 1)
            L, B = x.shape[0], x.shape[1]
            data = ops.reshape(x, (L * B, self.input_size))
            batch_sizes = (B,) * L
            sorted_idx = unsorted_idx = None
        dtype = data.dtype
        w0 = self._parameters[self._names[0][0]]
        if w0.dtype != dtype:
            raise self._error(f"input dtype {dtype} does not match the parameters' dtype "
                              f"{w0.dtype}; convert one with .to(...)", TypeError)
        if len(batch_sizes) == 0 or B == 0:
            raise self._error(f"expected a non-empty input sequence and batch, got input of "
                              f"shape {tuple(ops.shape_of(data))}")

        # initial states, one (B, H) array per layer/direction
        n_states = self.num_layers * D
        h0s = c0s = None
        if hx is not None:
            if is_lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise self._error("expected hx to be a tuple (h_0, c_0)", TypeError)
                h0, c0 = hx
            else:
                if isinstance(hx, (tuple, list)):
                    raise self._error("expected hx to be a Tensor, got a tuple", TypeError)
                h0, c0 = hx, None
            h0 = self._prepare_state(h0, "h_0", (n_states, B, h_out), unbatched, dtype)
            if is_lstm:
                c0 = self._prepare_state(c0, "c_0", (n_states, B, self.hidden_size),
                                         unbatched, dtype)
            if sorted_idx is not None:
                h0 = ops.index_select(h0, 1, sorted_idx)
                if is_lstm:
                    c0 = ops.index_select(c0, 1, sorted_idx)
            h0s = ops.unbind(h0, 0)
            c0s = ops.unbind(c0, 0) if is_lstm else None
        zeros_h = zeros_c = None
        if h0s is None:
            zeros_h = ops.zeros_array((B, h_out), dtype.np)
            zeros_c = ops.zeros_array((B, self.hidden_size), dtype.np) if is_lstm else None

        layer_in = data
        hns, cns = [], []
        drop = self.dropout if self.training else 0.0
        # an LSTM inference at batch <= 4: each direction in one compiled call that also makes
        # the input projection (ops.lstm_small_inference; None when it cannot run)
        small = is_lstm and not packed and self.proj_size == 0 and drop == 0 and B <= 4 and \
            not self._grad_needed(input, hx)
        for layer in range(self.num_layers):
            if small:
                res = []
                for d in range(D):
                    k = layer * D + d
                    w_ih, w_hh, b_ih, b_hh, _ = self._layer_params(k)
                    b = b_ih + b_hh if b_ih is not None and b_hh is not None else \
                        (b_ih if b_ih is not None else b_hh)
                    r = ops.lstm_small_inference(
                        layer_in, w_ih, w_hh, b, h0s[k] if h0s is not None else zeros_h,
                        c0s[k] if c0s is not None else zeros_c, L, d == 1)
                    if r is None:
                        small = False
                        break
                    res += r
            if not small:
                res = self._layer_sequences(layer, layer_in, D, h0s, c0s, zeros_h, zeros_c,
                                            batch_sizes, is_lstm)
            per = 3 if is_lstm else 2
            outs = list(res[::per])
            hns.extend(res[1::per])
            if is_lstm:
                cns.extend(res[2::per])
            layer_in = outs[0] if D == 1 else ops.cat(outs, 1)
            if drop > 0 and layer < self.num_layers - 1:
                layer_in = F.dropout(layer_in, drop, True)

        h_n = ops.stack(hns, 0)
        c_n = ops.stack(cns, 0) if is_lstm else None
        if unsorted_idx is not None:
            h_n = ops.index_select(h_n, 1, unsorted_idx)
            if is_lstm:
                c_n = ops.index_select(c_n, 1, unsorted_idx)
        if packed:
            output = packed_cls(layer_in, input.batch_sizes, sorted_idx, unsorted_idx)
        else:
            output = ops.reshape(layer_in, (L, B, D * h_out))
            if unbatched:
                output = ops.squeeze(output, 1)
                h_n = ops.squeeze(h_n, 1)
                c_n = ops.squeeze(c_n, 1) if is_lstm else None
            elif self.batch_first:
                output = ops.transpose(output, 0, 1)
        return (output, (h_n, c_n)) if is_lstm else (output, h_n)

    def _layer_sequences(self, layer, layer_in, D, h0s, c0s, zeros_h, zeros_c, batch_sizes,
                         is_lstm):
        """The recurrence primitives of one layer: (out, h_n[, c_n]) of each direction."""
        args = []
        for d in range(D):
            k = layer * D + d
            w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(k)
            if b_ih is not None and b_hh is not None and self.mode != "GRU":
                # both biases enter the gates as one sum: added once per step inside the
                # recurrence instead of over the whole input projection (GRU's b_hn sits
                # inside its reset gate, so it keeps them apart)
                xp, b_hh = ops.linear(layer_in, w_ih), b_ih + b_hh
            else:
                xp = ops.linear(layer_in, w_ih, b_ih)
            args.append((xp, h0s[k] if h0s is not None else zeros_h, w_hh, b_hh,
                         (c0s[k] if c0s is not None else zeros_c) if is_lstm else None, w_hr))
        if D == 1:
            return ops.rnn_sequence(self.mode, *args[0], batch_sizes=batch_sizes)
        # both directions stepped together
        return ops.rnn_bidirectional(self.mode, args[0], args[1], batch_sizes)

    def _grad_needed(self, input, hx) -> bool:
        """Whether this call records a graph (grad mode on and something requires grad)."""
        if not is_grad_enabled():
            return False
        states = hx if isinstance(hx, (tuple, list)) else (hx,)
        return any(isinstance(t, Tensor) and t.requires_grad
                   for t in (input, *states, *self._parameters.values()))

    def _prepare_state(self, h, name: str, shape: tuple, unbatched: bool, dtype):
        if not isinstance(h, Tensor):
            raise self._error(f"expected {name} to be a Tensor, got {type(h).__name__}",
                              TypeError)
        if unbatched:
            want = (shape[0], shape[2])
            if tuple(h.shape) != want:
                raise self._error(f"expected {name} of shape {want} for unbatched input, got "
                                  f"{tuple(h.shape)}", RuntimeError)
            h = ops.unsqueeze(h, 1)
        elif tuple(h.shape) != shape:
            raise self._error(f"expected {name} of shape {shape} (num_layers * num_directions, "
                              f"batch, hidden), got {tuple(h.shape)}", RuntimeError)
        if h.dtype != dtype:
            raise self._error(f"{name} dtype {h.dtype} does not match the input dtype {dtype}",
                              TypeError)
        return h

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size != 0:
            s += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.batch_first is not False:
            s += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            s += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            s += f", bidirectional={self.bidirectional}"
        return s


_RNN_ARGS = """
    Args:
        input_size: features of each input step.
        hidden_size: features of the hidden state.
        num_layers: stacked recurrent layers (default 1).
        bias: learn ``bias_ih`` and ``bias_hh`` (default True).
        batch_first: input/output as (N, L, *) instead of (L, N, *) (default False).
        dropout: dropout probability on the outputs of every layer but the last, in training
            mode only (default 0).
        bidirectional: add a reverse-direction recurrence (default False)."""


class RNN(RNNBase):
    """Elman RNN: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``. Matches
    ``torch.nn.RNN``.
    {args}
        nonlinearity: ``'tanh'`` (default) or ``'relu'``.

    Shape: input (L, N, H_in) / (N, L, H_in) if batch_first / (L, H_in) unbatched / a
    PackedSequence; h_0 (D * num_layers, N, H) (zeros if omitted). Returns (output, h_n) with
    output (L, N, D * H) and h_n (D * num_layers, N, H).

    Example:
        >>> import ember
        >>> out, h = ember.nn.RNN(10, 20, 2)(ember.randn(5, 3, 10))
        >>> out.shape, h.shape
        ((5, 3, 20), (2, 3, 20))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: unknown nonlinearity {nonlinearity!r} (expected 'tanh' or "
                             f"'relu')")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory: gates i, f, g, o; ``c_t = f c_{t-1} + i g``,
    ``h_t = o tanh(c_t)`` (times ``W_hr^T`` if proj_size > 0). Matches ``torch.nn.LSTM``.
    {args}
        proj_size: if > 0, project h_t to this size with ``weight_hr_l{{k}}`` (default 0).

    Shape: input as :class:`RNN`; hx = (h_0 (D * num_layers, N, H_out), c_0 (D * num_layers,
    N, H)). Returns (output, (h_n, c_n)); H_out = proj_size or hidden_size.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit: gates r, z, n; ``n = tanh(W_in x + b_in + r (W_hn h + b_hn))``,
    ``h_t = (1 - z) n + z h_{t-1}``. Matches ``torch.nn.GRU``.
    {args}

    Shape: as :class:`RNN`.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device=device, dtype=dtype)


for _cls in (RNN, LSTM, GRU):
    _cls.__doc__ = _cls.__doc__.replace("{args}", _RNN_ARGS.strip("\n")[4:]).replace(
        "{{k}}", "{k}")


# ============================================================================ cells
class RNNCellBase(Module):
    """Shared machinery of the single-step cells."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        self.mode = mode
        self.input_size = _check_int(name, "input_size", input_size, 0)
        self.hidden_size = _check_int(name, "hidden_size", hidden_size, 1)
        self.bias = bool(bias)
        gate = _GATES[mode] * hidden_size
        self.weight_ih = Parameter(creation.empty(gate, input_size, dtype=dtype, device=device))
        self.weight_hh = Parameter(creation.empty(gate, hidden_size, dtype=dtype,
                                                  device=device))
        if bias:
            self.bias_ih = Parameter(creation.empty(gate, dtype=dtype, device=device))
            self.bias_hh = Parameter(creation.empty(gate, dtype=dtype, device=device))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Every weight and bias U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as PyTorch."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def _state(self, h, name: str, batch: int, unbatched: bool, dtype):
        if not isinstance(h, Tensor):
            raise self._error(f"expected {name} to be a Tensor, got {type(h).__name__}",
                              TypeError)
        want = (self.hidden_size,) if unbatched else (batch, self.hidden_size)
        if tuple(h.shape) != want:
            raise self._error(f"expected {name} of shape {want}, got {tuple(h.shape)}",
                              RuntimeError)
        if h.dtype != dtype:
            raise self._error(f"{name} dtype {h.dtype} does not match the input dtype {dtype}",
                              TypeError)
        return ops.unsqueeze(h, 0) if unbatched else h

    def _step(self, input, hx):
        is_lstm = self.mode == "LSTM"
        if not isinstance(input, Tensor):
            raise self._error(f"expected a Tensor input, got {type(input).__name__}", TypeError)
        shape = tuple(input.shape)
        if len(shape) not in (1, 2) or shape[-1] != self.input_size:
            raise self._error(f"expected input of shape (N, {self.input_size}) or "
                              f"({self.input_size},), got {shape}")
        if input.dtype != self.weight_ih.dtype:
            raise self._error(f"input dtype {input.dtype} does not match the parameters' dtype "
                              f"{self.weight_ih.dtype}; convert one with .to(...)", TypeError)
        unbatched = len(shape) == 1
        x = ops.unsqueeze(input, 0) if unbatched else input
        B = x.shape[0]
        if hx is None:
            h0 = ops.zeros_array((B, self.hidden_size), input.dtype.np)
            c0 = h0 if is_lstm else None
        elif is_lstm:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise self._error("expected hx to be a tuple (h_0, c_0)", TypeError)
            h0 = self._state(hx[0], "h_0", B, unbatched, input.dtype)
            c0 = self._state(hx[1], "c_0", B, unbatched, input.dtype)
        else:
            h0, c0 = self._state(hx, "hx", B, unbatched, input.dtype), None
        xp = ops.linear(x, self.weight_ih, self.bias_ih)
        res = ops.rnn_sequence(self.mode, xp, h0, self.weight_hh, self.bias_hh, c0=c0,
                               batch_sizes=(B,))
        h = res[1]
        if is_lstm:
            c = res[2]
            return (ops.squeeze(h, 0), ops.squeeze(c, 0)) if unbatched else (h, c)
        return ops.squeeze(h, 0) if unbatched else h

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if self.mode == "RNN_RELU":
            s += ", nonlinearity='relu'"
        return s


class RNNCell(RNNCellBase):
    """One Elman RNN step ``h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh)``. Matches
    ``torch.nn.RNNCell``.

    Args:
        input_size, hidden_size: feature sizes; bias: learn biases (default True);
        nonlinearity: ``'tanh'`` (default) or ``'relu'``.

    Shape: input (N, H_in) or (H_in,); hx (N, H) or (H,) (zeros if omitted); returns h'.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: unknown nonlinearity {nonlinearity!r} (expected "
                             f"'tanh' or 'relu')")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, bias, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        return self._step(input, hx)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o). Matches ``torch.nn.LSTMCell``.

    Args:
        input_size, hidden_size: feature sizes; bias: learn biases (default True).

    Shape: input (N, H_in) or (H_in,); hx = (h, c), each (N, H) or (H,) (zeros if omitted);
    returns (h', c').
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__("LSTM", input_size, hidden_size, bias, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n). Matches ``torch.nn.GRUCell``.

    Args:
        input_size, hidden_size: feature sizes; bias: learn biases (default True).

    Shape: input (N, H_in) or (H_in,); hx (N, H) or (H,) (zeros if omitted); returns h'.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__("GRU", input_size, hidden_size, bias, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        return self._step(input, hx)
