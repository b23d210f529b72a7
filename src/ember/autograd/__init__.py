"""ember.autograd: the Tensor, the reverse-mode engine, grad modes, grad(), Function, gradcheck,
anomaly detection.

Matches: ``torch.autograd``.
"""

from .anomaly import AnomalyError, detect_anomaly, is_anomaly_enabled, set_detect_anomaly
from .engine import Node
from .function import Function, FunctionCtx
from .functional import backward, grad
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .gradcheck import gradcheck, gradgradcheck
from .tensor import Tensor

__all__ = ["Tensor", "Node", "Function", "FunctionCtx", "backward", "grad", "no_grad",
           "enable_grad", "set_grad_enabled", "is_grad_enabled", "gradcheck", "gradgradcheck",
           "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled", "AnomalyError"]
