"""``ember.nn.functional``: the stateless forms of the layers, with PyTorch's names.

Matches: ``torch.nn.functional``. Activations and softmax come from :mod:`ember.ops`; each
family below lives in its own file: :mod:`.basic` (linear, dropout, embedding, layer norm ...),
:mod:`.conv` (convolution), :mod:`.pooling` (pooling and resizing), :mod:`.normalization`
(batch/group norm), :mod:`.loss` (losses), :mod:`.attention` (scaled dot-product attention).
"""

from ...ops.activation import (  # noqa: F401
    celu,
    elu,
    gelu,
    glu,
    hardshrink,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    log_softmax,
    logsigmoid,
    mish,
    relu,
    relu6,
    selu,
    silu,
    softmax,
    softmin,
    softplus,
    softshrink,
    softsign,
    tanhshrink,
    threshold,
)
from ...ops.indexing import one_hot  # noqa: F401
from ...ops.linalg import linear  # noqa: F401
from ...ops.movement import pad  # noqa: F401
from ...ops.unary import sigmoid, tanh  # noqa: F401
from .attention import *  # noqa: F401,F403
from .basic import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .loss import *  # noqa: F401,F403
from .normalization import *  # noqa: F401,F403
from .pooling import *  # noqa: F401,F403
