"""The training doctor: watch a model train, diagnose what goes wrong, suggest remedies.

    >>> import ember
    >>> from ember.diagnostics import watch, DoctorCallback          # doctest: +SKIP
    >>> with watch(model, every=10) as doctor:                       # doctest: +SKIP
    ...     for x, y in loader:
    ...         ...; optimizer.step(); doctor.step(loss)
    >>> print(doctor.summary())                                      # doctest: +SKIP
    >>> trainer.fit(data, callbacks=[DoctorCallback(report_dir="doctor/")])  # doctest: +SKIP

Per layer it records activation mean and standard deviation, dead units (ReLU) and saturated
units (sigmoid/tanh), the gradient norm of the layer's output and of each parameter, the
update-to-weight ratio and the weight norm, plus the loss of every step and the epoch
(validation) curves. From these, :mod:`ember.diagnostics.rules` finds vanishing and exploding
gradients, NaN/Inf, dead units, saturation, a learning rate too high or too low, over- and
underfitting and inputs that are not normalized; each :class:`Finding` names the layer, the
numbers and the remedies. See ``docs/tutorials/doctor.md``.

To locate the op that makes a NaN, use :func:`ember.autograd.detect_anomaly`.
"""

from .callback import DoctorCallback
from .doctor import Doctor, watch
from .findings import KINDS, SEVERITIES, DoctorWarning, Finding
from .report import format_report, load_report, print_report, write_report
from .rules import THRESHOLDS, diagnose
from .stats import RunStats

__all__ = ["watch", "Doctor", "DoctorCallback", "Finding", "DoctorWarning", "SEVERITIES",
           "KINDS", "THRESHOLDS", "diagnose", "RunStats", "format_report", "write_report",
           "load_report", "print_report"]
