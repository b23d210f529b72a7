"""The doctor's reports: the text summary and the report folder.

A report folder holds::

    report.txt          the text summary (findings, evidence, remedies, per-layer table)
    findings.json       the findings (Finding.to_dict), most severe first
    stats.json          everything recorded (RunStats.to_dict): plain JSON, no pickle
    gradient_flow.png   weight- and output-gradient RMS across depth
    activations.png     activation mean and standard deviation over time, per layer
    gradients.png       weight-gradient RMS over time, per layer
    update_ratios.png   ||dW|| / ||W|| over time, per weight matrix
    dead_units.png      dead (ReLU) and saturated (sigmoid/tanh) fractions over time
    loss.png            the loss of every step and the epoch (validation) curves
"""

from __future__ import annotations

import json
import os
import textwrap

from .findings import KINDS, Finding
from .rules import depth_profile, median
from .stats import RunStats

__all__ = ["format_report", "write_report", "load_report", "print_report", "REPORT_FILES"]

REPORT_FILES = ("report.txt", "findings.json", "stats.json")


def _fmt(v, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def _late_median(series) -> float | None:
    vals = [v for _, v in series]
    return median(vals[len(vals) // 2:] if len(vals) > 2 else vals)


def layer_table(stats: RunStats) -> list[str]:
    """One line per watched layer, in depth order: medians over the second half of the run."""
    header = (f"{'layer':<22} {'type':<12} {'act mean':>9} {'act std':>9} {'dead':>6} "
              f"{'sat':>6} {'grad(out)':>10} {'grad(W)':>9} {'update/W':>9} {'|W|':>8}")
    lines = [header, "-" * len(header)]
    weights = {}
    for name, info in stats.params.items():
        if len(info.get("shape", [])) >= 2:
            weights.setdefault(info["path"], name)
    for key, info in stats.ordered_layers():
        s = stats.layer_series.get(key, {})
        w = weights.get(key)
        upd = _late_median(stats.param_series_of(w, "update_ratio")) if w else None
        wn = _late_median(stats.param_series_of(w, "weight_norm")) if w else None
        mean, std = _late_median(s.get("mean", [])), _late_median(s.get("std", []))
        dead = _late_median(s["dead_frac"]) if "dead_frac" in s else None
        sat = _late_median(s["sat_frac"]) if "sat_frac" in s else None
        gout, gw = _late_median(s.get("out_grad_rms", [])), _late_median(s.get("grad_rms", []))
        lines.append(f"{key[:22]:<22} {info['type'][:12]:<12} {_fmt(mean):>9} {_fmt(std):>9} "
                     f"{_fmt(dead, '.0%'):>6} {_fmt(sat, '.0%'):>6} {_fmt(gout):>10} "
                     f"{_fmt(gw):>9} {_fmt(upd):>9} {_fmt(wn):>8}")
    return lines


def format_report(stats: RunStats, findings: list) -> str:
    """The text summary of a run: a verdict line, the findings, then the per-layer table."""
    counts = {sev: sum(f.severity == sev for f in findings) for sev in ("error", "warning",
                                                                         "info")}
    head = (f"ember doctor: {stats.model or 'model'}, {stats.steps} steps "
            f"({len(stats.sampled)} sampled, every {stats.every})")
    lines = [head, "=" * len(head)]
    serious = counts["error"] + counts["warning"]
    if not serious:
        lines.append("Healthy: no warning or error." + (
            f" {counts['info']} note(s) below." if counts["info"] else ""))
    else:
        parts = [f"{n} {sev}{'s' if n > 1 else ''}" for sev, n in counts.items() if n]
        lines.append(f"{len(findings)} finding(s): {', '.join(parts)}.")
    for f in findings:
        lines.append("")
        lines.append(f.format())
    prof = depth_profile(stats)
    if prof:
        lines += ["", "Gradient flow (weight-gradient RMS by depth, input -> output):",
                  textwrap.fill("  ".join(f"{k}:{v:.1e}" for k, v in prof), 100,
                                initial_indent="  ", subsequent_indent="  ")]
    losses = [v for _, v in stats.loss]
    if losses:
        lines.append(f"Loss: first {losses[0]:.4g}, last {losses[-1]:.4g} "
                     f"({len(losses)} steps)")
    if stats.epochs:
        last = stats.epochs[-1]
        keys = [k for k in ("loss", "val_loss", "accuracy", "val_accuracy") if k in last]
        lines.append(f"Last epoch ({last['epoch']}): " +
                     ", ".join(f"{k} {last[k]:.4g}" for k in keys))
    if stats.layers:
        lines += ["", "Per layer (medians over the second half of the run):"]
        lines += layer_table(stats)
    return "\n".join(lines)


def write_report(folder, stats: RunStats, findings: list, plots: bool = True) -> str:
    """Write the report folder (see the module docstring); returns its path."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    stats.save(os.path.join(folder, "stats.json"))
    with open(os.path.join(folder, "findings.json"), "w", encoding="utf-8") as f:
        json.dump({"findings": [x.to_dict() for x in findings]}, f, indent=1,
                  allow_nan=False)
        f.write("\n")
    with open(os.path.join(folder, "report.txt"), "w", encoding="utf-8") as f:
        f.write(format_report(stats, findings) + "\n")
    if plots:
        from .plots import plot_all

        plot_all(stats, folder, findings)
    return folder


def load_report(folder) -> tuple[RunStats, list]:
    """``(stats, findings)`` from a report folder."""
    folder = os.fspath(folder)
    stats = RunStats.load(os.path.join(folder, "stats.json"))
    with open(os.path.join(folder, "findings.json"), encoding="utf-8") as f:
        findings = [Finding.from_dict(d) for d in json.load(f)["findings"]]
    return stats, findings


def print_report(folder, plots: bool = True) -> int:
    """Print a report folder's text summary (regenerating the PNG plots with ``plots``);
    returns the number of warning and error findings. Used by ``ember doctor RUN_DIR``."""
    stats, findings = load_report(folder)
    if plots:
        from .plots import plot_all

        plot_all(stats, folder, findings)
    print(format_report(stats, findings))
    if plots:
        print(f"\nPlots in {folder}: " + ", ".join(
            sorted(n for n in os.listdir(folder) if n.endswith(".png"))))
    return sum(f.level >= 1 for f in findings)


def kinds_table() -> str:
    """The finding kinds as ``kind: title`` lines (for help texts)."""
    return "\n".join(f"{k}: {v}" for k, v in KINDS.items())
