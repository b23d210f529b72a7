"""Variable-length batches for recurrent layers: ``PackedSequence`` and (un)packing helpers.

Matches: ``torch.nn.utils.rnn`` (``PackedSequence``, ``pack_padded_sequence``,
``pad_packed_sequence``, ``pad_sequence``, ``pack_sequence``, ``unpad_sequence``,
``unpack_sequence``).

A packed sequence stores the steps of a batch sorted by decreasing length, time-major: ``data``
holds the ``batch_sizes[0]`` first steps, then the ``batch_sizes[1]`` second steps ... so each
recurrent step only touches the sequences still running. ``sorted_indices`` maps the sorted
order back to the caller's batch (None when the batch was already sorted). Every conversion is
one differentiable gather.
"""

from __future__ import annotations

from collections import namedtuple

from ... import ops
from ...autograd import Tensor, creation

__all__ = ["PackedSequence", "pack_padded_sequence", "pad_packed_sequence", "pad_sequence",
           "pack_sequence", "unpad_sequence", "unpack_sequence"]


def _int_tensor(a) -> Tensor:
    return creation.tensor(ops.as_array(a, "int64"))


class PackedSequence(namedtuple("PackedSequence",
                                ["data", "batch_sizes", "sorted_indices", "unsorted_indices"])):
    """A batch of variable-length sequences in packed layout. Matches
    ``torch.nn.utils.rnn.PackedSequence``.

    Fields:
        data: (sum of lengths, *) the steps, time-major, sorted by decreasing length.
        batch_sizes: int64 (max length,): sequences still running at each step.
        sorted_indices: int64 (B,) or None: position in the caller's batch of each sorted one.
        unsorted_indices: int64 (B,) or None: the inverse permutation.

    Build one with :func:`pack_padded_sequence` or :func:`pack_sequence`.
    """

    def __new__(cls, data, batch_sizes=None, sorted_indices=None, unsorted_indices=None):
        if batch_sizes is None:
            raise TypeError("PackedSequence: batch_sizes is required; build packed sequences "
                            "with pack_padded_sequence or pack_sequence")
        if not isinstance(batch_sizes, Tensor):
            batch_sizes = _int_tensor(batch_sizes)
        if sorted_indices is not None and not isinstance(sorted_indices, Tensor):
            sorted_indices = _int_tensor(sorted_indices)
        if unsorted_indices is None and sorted_indices is not None:
            unsorted_indices = _int_tensor(ops.as_array(sorted_indices).argsort())
        elif unsorted_indices is not None and not isinstance(unsorted_indices, Tensor):
            unsorted_indices = _int_tensor(unsorted_indices)
        return super().__new__(cls, data, batch_sizes, sorted_indices, unsorted_indices)

    @property
    def is_cuda(self) -> bool:
        return False

    def to(self, *args, **kwargs) -> PackedSequence:
        """The same sequences with ``data`` converted by ``Tensor.to``."""
        return type(self)(self.data.to(*args, **kwargs), self.batch_sizes, self.sorted_indices,
                          self.unsorted_indices)

    def float(self) -> PackedSequence:
        return type(self)(self.data.float(), self.batch_sizes, self.sorted_indices,
                          self.unsorted_indices)

    def double(self) -> PackedSequence:
        return type(self)(self.data.double(), self.batch_sizes, self.sorted_indices,
                          self.unsorted_indices)


def _lengths_array(lengths, where: str):
    arr = ops.as_array(lengths)
    if arr.ndim != 1:
        raise ValueError(f"{where}: expected lengths as a 1-D sequence of ints, got shape "
                         f"{arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and (arr == arr.astype("int64")).all():
            arr = arr.astype("int64")
        else:
            raise TypeError(f"{where}: lengths must be integers, got dtype {arr.dtype}")
    return arr.astype("int64")


def pack_padded_sequence(input, lengths, batch_first: bool = False,
                         enforce_sorted: bool = True) -> PackedSequence:
    """Pack a padded batch of variable-length sequences. Matches
    ``torch.nn.utils.rnn.pack_padded_sequence``.

    Args:
        input: (L, B, *) padded sequences ((B, L, *) if ``batch_first``).
        lengths: the B sequence lengths (list, array or int tensor), each in [1, L].
        batch_first: layout of ``input``.
        enforce_sorted: require lengths sorted in decreasing order (else sort them and record
            the permutation in ``sorted_indices``).
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"pack_padded_sequence: expected a Tensor input, got "
                        f"{type(input).__name__}")
    shape = tuple(input.shape)
    if len(shape) < 2:
        raise ValueError(f"pack_padded_sequence: expected input of shape (L, B, *) or "
                         f"(B, L, *), got {shape}")
    L, B = (shape[1], shape[0]) if batch_first else (shape[0], shape[1])
    lengths = _lengths_array(lengths, "pack_padded_sequence")
    if lengths.size != B:
        raise ValueError(f"pack_padded_sequence: expected {B} lengths (the batch size of input "
                         f"of shape {shape}{', batch_first' if batch_first else ''}), got "
                         f"{lengths.size}")
    if B and lengths.min() <= 0:
        raise RuntimeError("pack_padded_sequence: length of all samples has to be greater than "
                           f"0, got lengths {lengths.tolist()}")
    if B and lengths.max() > L:
        raise RuntimeError(f"pack_padded_sequence: lengths {lengths.tolist()} exceed the "
                           f"sequence dimension {L} of input of shape {shape}")
    if enforce_sorted:
        if (lengths[1:] > lengths[:-1]).any():
            raise RuntimeError(f"pack_padded_sequence: lengths {lengths.tolist()} must be sorted "
                               f"in decreasing order when enforce_sorted is True; pass "
                               f"enforce_sorted=False to sort them")
        sorted_len, order, sorted_t, unsorted_t = lengths, None, None, None
    else:
        sorted_len, order, inverse = ops.sort_lengths(lengths)
        sorted_t, unsorted_t = _int_tensor(order), _int_tensor(inverse)
    batch_sizes = ops.pack_layout(sorted_len)
    t_idx, b_idx = ops.padded_to_packed_index(batch_sizes)
    if order is not None:
        b_idx = order[b_idx]
    data = ops.getitem(input, (b_idx, t_idx) if batch_first else (t_idx, b_idx))
    return PackedSequence(data, _int_tensor(batch_sizes), sorted_t, unsorted_t)


def pad_packed_sequence(sequence: PackedSequence, batch_first: bool = False,
                        padding_value: float = 0.0, total_length=None):
    """Unpack a :class:`PackedSequence` into a padded batch. Matches
    ``torch.nn.utils.rnn.pad_packed_sequence``.

    Returns:
        (padded (T, B, *) or (B, T, *), lengths int64 (B,)) in the caller's original batch
        order; T = ``total_length`` if given (at least the longest length), else the longest.
    """
    if not isinstance(sequence, PackedSequence):
        raise TypeError(f"pad_packed_sequence: expected a PackedSequence, got "
                        f"{type(sequence).__name__}")
    data = sequence.data
    bs = ops.as_array(sequence.batch_sizes).astype("int64")
    max_len = int(bs.size)
    if total_length is None:
        total_length = max_len
    elif total_length < max_len:
        raise ValueError(f"pad_packed_sequence: expected total_length to be at least the "
                         f"length of the longest sequence ({max_len}), got {total_length}")
    n = data.shape[0]
    idx = ops.packed_to_padded_index(bs, int(total_length), n)
    lengths = ops.lengths_of_batch_sizes(bs)
    if sequence.unsorted_indices is not None:
        un = ops.as_array(sequence.unsorted_indices)
        idx = idx[:, un]
        lengths = lengths[un]
    if batch_first:
        idx = idx.T
    pad_row = creation.full((1,) + tuple(data.shape[1:]), padding_value, dtype=data.dtype)
    padded = ops.getitem(ops.cat([data, pad_row], 0), idx)
    return padded, _int_tensor(lengths)


def pad_sequence(sequences, batch_first: bool = False, padding_value: float = 0.0,
                 padding_side: str = "right"):
    """Stack sequences of shapes (L_i, *) into one padded (L_max, B, *) tensor ((B, L_max, *)
    if ``batch_first``). Matches ``torch.nn.utils.rnn.pad_sequence``.

    Args:
        padding_side: ``'right'`` (default; padding after each sequence) or ``'left'``.
    """
    if padding_side not in ("right", "left"):
        raise ValueError(f"pad_sequence: padding_side must be 'left' or 'right', got "
                         f"{padding_side!r}")
    if isinstance(sequences, Tensor):
        sequences = list(ops.unbind(sequences, 0))
    sequences = list(sequences)
    if not sequences:
        raise RuntimeError("pad_sequence: received an empty list of sequences")
    for i, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"pad_sequence: sequence {i} is a {type(s).__name__}, expected a "
                            f"Tensor")
        if s.ndim < 1 or tuple(s.shape[1:]) != tuple(sequences[0].shape[1:]):
            raise RuntimeError(f"pad_sequence: sequences must have shapes (L_i, *) with equal "
                               f"trailing dims; sequence 0 has shape "
                               f"{tuple(sequences[0].shape)}, sequence {i} has shape "
                               f"{tuple(s.shape)}")
    lengths = [s.shape[0] for s in sequences]
    total = max(lengths)
    idx = ops.sequence_pad_index(lengths, total, padding_side == "left")
    if batch_first:
        idx = idx.T
    first = sequences[0]
    pad_row = creation.full((1,) + tuple(first.shape[1:]), padding_value, dtype=first.dtype)
    return ops.getitem(ops.cat(sequences + [pad_row], 0), idx)


def pack_sequence(sequences, enforce_sorted: bool = True) -> PackedSequence:
    """Pack a list of sequences (L_i, *). Matches ``torch.nn.utils.rnn.pack_sequence``."""
    sequences = list(sequences)
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)


def unpad_sequence(padded_sequences, lengths, batch_first: bool = False) -> list:
    """The list of sequences (L_i, *) in a padded batch. Matches
    ``torch.nn.utils.rnn.unpad_sequence``."""
    lengths = _lengths_array(lengths, "unpad_sequence")
    x = padded_sequences if batch_first else ops.transpose(padded_sequences, 0, 1)
    return [ops.narrow(x[i], 0, 0, int(n)) for i, n in enumerate(lengths)]


def unpack_sequence(packed_sequences: PackedSequence) -> list:
    """The list of sequences (L_i, *) in a packed batch. Matches
    ``torch.nn.utils.rnn.unpack_sequence``."""
    padded, lengths = pad_packed_sequence(packed_sequences, batch_first=True)
    return unpad_sequence(padded, lengths, batch_first=True)
