"""ember: a complete, readable deep-learning framework on NumPy.

    >>> import ember
    >>> x = ember.tensor([1.0, 2.0], requires_grad=True)
    >>> y = (x ** 2).sum()
    >>> y.backward()
    >>> x.grad
    tensor([2., 4.])

The public names mirror PyTorch's: ``ember.tensor``, ``ember.zeros``, ``ember.matmul``,
``ember.no_grad``, ``ember.autograd.grad`` ... Array math lives in :mod:`ember.ops`, autograd in
:mod:`ember.autograd`.
"""

from . import (  # noqa: F401
    autograd,
    data,  # ember.data: datasets, DataLoader, transforms, tokenizer
    io,  # noqa: F401 - ember.io: safe checkpoints
    nn,
    ops,
    optim,  # noqa: F401 - ember.optim: optimizers, lr schedulers
    train,  # ember.train: Trainer, callbacks, metrics, plots
)
from .autograd import Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .autograd.creation import (
    arange,
    as_tensor,
    bernoulli,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    logspace,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from .io import load, save  # noqa: F401
from .ops.dtypes import (
    bool_ as bool,  # noqa: A001 - ember.bool like torch.bool
)
from .ops.dtypes import (
    dtype,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    uint8,
)
from .ops.native import get_num_threads, set_num_threads
from .ops.random import Generator, default_generator, manual_seed

__version__ = "0.1.0"

# Keep freed large arrays in the heap (fewer page faults per training step); see
# ember.ops.arrays.tune_allocator. EMBER_MALLOC_TUNING=0 disables it.
ops.arrays.tune_allocator()

half, float, double, long, int, short = float16, float32, float64, int64, int32, int16  # noqa: A001

# Functions taken as they are from ember.ops (each documented there).
_OPS = """
add sub subtract mul multiply div divide true_divide floor_divide remainder pow float_power
maximum minimum where clamp clip eq ne lt le gt ge greater greater_equal less less_equal
not_equal logical_and logical_or logical_xor logical_not bitwise_not equal allclose isclose
neg negative abs absolute sign exp expm1 log log1p log2 log10 sqrt rsqrt reciprocal square
sin cos tan tanh sigmoid erf erfc floor ceil trunc fix round isnan isinf isfinite isposinf
isneginf nan_to_num
sum mean prod amax amin max min argmax argmin var std var_mean std_mean logsumexp norm all any
cumsum cumprod count_nonzero
reshape view_as permute transpose swapaxes swapdims t movedim moveaxis squeeze unsqueeze
flatten ravel unflatten broadcast_to broadcast_tensors broadcast_shapes cat concat concatenate
stack hstack vstack narrow split chunk tensor_split unbind flip fliplr flipud roll tile
repeat_interleave tril triu clone diagonal
take_along_dim matmul relu leaky_relu elu gelu silu softplus one_hot
gather scatter scatter_add index_select index_add index_put masked_fill masked_select take
nonzero argwhere
selu celu threshold softmax log_softmax mm bmm mv dot vdot outer ger inner addmm addmv
baddbmm einsum tensordot kron sort argsort topk unique msort
""".split()

for _name in _OPS:
    globals()[_name] = getattr(ops, _name)
del _name


def get_default_dtype():
    return float32


def is_tensor(obj) -> bool:
    return isinstance(obj, Tensor)


def numel(input) -> int:
    return input.numel()


def is_floating_point(input) -> bool:
    return input.is_floating_point()


def __getattr__(name: str):
    # ember.diagnostics loads on first use (ember.diagnostics.watch(...)): `import ember` stays
    # fast and never imports the training doctor
    if name == "diagnostics":
        import importlib

        return importlib.import_module(".diagnostics", __name__)
    raise AttributeError(f"module 'ember' has no attribute {name!r}")
