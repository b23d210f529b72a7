"""What the training doctor concludes: :class:`Finding` data objects and :class:`DoctorWarning`.

A finding names a problem (``kind``), how serious it is (``severity``: ``info`` < ``warning``
< ``error``), where it is (``path``: a layer's dotted path such as ``features.3``, a parameter's
name, or ``"model"`` / ``"inputs"`` / ``"training"`` for whole-run problems), the numbers that
support it (``evidence``), a one-paragraph ``message`` and concrete ``remedies``.

Findings round-trip through JSON (``to_dict`` / ``from_dict``); non-finite numbers are stored
as the strings ``"nan"``, ``"inf"`` and ``"-inf"``.
"""

from __future__ import annotations

import math
import textwrap
from dataclasses import dataclass, field

__all__ = ["Finding", "DoctorWarning", "SEVERITIES", "KINDS", "encode", "decode"]

SEVERITIES = ("info", "warning", "error")

#: every kind of finding, with a short title (used by the report)
KINDS = {
    "nan_inf": "NaN or Inf",
    "vanishing_gradients": "vanishing gradients",
    "exploding_gradients": "exploding gradients",
    "dead_units": "dead units",
    "saturation": "saturated units",
    "lr_too_high": "learning rate too high",
    "lr_too_low": "learning rate too low",
    "overfitting": "overfitting",
    "underfitting": "underfitting",
    "unnormalized_inputs": "inputs not normalized",
}


class DoctorWarning(UserWarning):
    """The category of the warnings the training doctor issues while training runs.

    Filter it like any warning: ``warnings.simplefilter("ignore", DoctorWarning)``.
    """


@dataclass
class Finding:
    """One diagnosis: ``kind`` at ``path``, with ``evidence`` and ``remedies``."""

    kind: str
    severity: str
    path: str
    message: str
    evidence: dict = field(default_factory=dict)
    remedies: list = field(default_factory=list)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding: severity must be one of {SEVERITIES}, got "
                             f"{self.severity!r}")

    @property
    def level(self) -> int:
        """0 for info, 1 for warning, 2 for error (for sorting and filtering)."""
        return SEVERITIES.index(self.severity)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "severity": self.severity, "path": self.path,
                "message": self.message, "evidence": encode(self.evidence),
                "remedies": list(self.remedies)}

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        return cls(kind=data["kind"], severity=data["severity"], path=data["path"],
                   message=data["message"], evidence=decode(data.get("evidence", {})),
                   remedies=list(data.get("remedies", [])))

    def format(self, indent: str = "", width: int = 100) -> str:
        """Several lines (wrapped at ``width``): the headline, the message, the evidence and
        the remedies."""
        title = KINDS.get(self.kind, self.kind)
        pad = indent + " " * 8
        lines = [f"{indent}{self.severity.upper():<7} {title} [{self.path}]",
                 textwrap.fill(self.message, width, initial_indent=pad, subsequent_indent=pad)]
        if self.evidence:
            items = ", ".join(f"{k}={_short(v)}" for k, v in self.evidence.items())
            lines.append(textwrap.fill(f"evidence: {items}", width, initial_indent=pad,
                                       subsequent_indent=pad + "  ", break_long_words=False))
        for r in self.remedies:
            lines.append(textwrap.fill(r, width, initial_indent=pad + "- ",
                                       subsequent_indent=pad + "  "))
        return "\n".join(lines)

    def __str__(self) -> str:
        return f"{self.severity}: {KINDS.get(self.kind, self.kind)} [{self.path}]: " \
               f"{self.message}"


def _short(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        shown = ", ".join(_short(x) for x in v[:6])
        return f"[{shown}{', ...' if len(v) > 6 else ''}]"
    return str(v)


def encode(obj):
    """``obj`` with non-finite floats replaced by strings (JSON has no NaN or Inf)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [encode(v) for v in obj]
    return obj


def decode(obj):
    """The inverse of :func:`encode`."""
    if obj in ("nan", "inf", "-inf"):
        return float(obj)
    if isinstance(obj, dict):
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj
