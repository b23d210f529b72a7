"""ember.ops: every primitive operation, the only code that calls the array library (NumPy).

Each function here accepts ember Tensors (recorded by autograd when they require grad) or NumPy
arrays (computed directly: this is how backward passes run). See :mod:`ember.ops.base`.

Families: :mod:`.binary` (arithmetic, comparisons, where, clamp), :mod:`.unary` (math),
:mod:`.activation` (relu ... softmax), :mod:`.reduce` (sum, mean, max, var, norm ...),
:mod:`.movement` (reshape, permute, cat, pad ...), :mod:`.indexing` (getitem, gather, scatter ...),
:mod:`.linalg` (matmul, einsum ...), :mod:`.arrays` (in-place kernels and array utilities),
:mod:`.random` (the seeded generator).
"""

from . import (  # noqa: F401
    base,
    dtypes,
    optim_kernels,  # noqa: F401
    random,
)
from .activation import *  # noqa: F401,F403
from .arrays import (  # noqa: F401
    add_into,
    all_finite,
    arange_array,
    as_array,
    copy_into,
    eye_array,
    fill_into,
    format_tensor,
    linspace_array,
    mul_into,
    numel_of_shape,
    ones_array,
    owned_copy,
    quiet_fp,
    setitem_into,
    unique_rows,
    zeros_array,
)
from .attention import *  # noqa: F401,F403
from .base import dtype_of, shape_of  # noqa: F401
from .binary import *  # noqa: F401,F403
from .binary import cast, promote  # noqa: F401
from .conv import *  # noqa: F401,F403
from .indexing import *  # noqa: F401,F403
from .linalg import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .movement import *  # noqa: F401,F403
from .normalize import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .reduce import *  # noqa: F401,F403
from .reduce import sum_to  # noqa: F401
from .rnn import *  # noqa: F401,F403
from .sorting import *  # noqa: F401,F403
from .unary import *  # noqa: F401,F403
