"""The diagnoses: rules that turn recorded statistics into :class:`Finding` objects.

Every threshold is in :data:`THRESHOLDS`, with the reasoning behind it (the tutorial
``docs/tutorials/doctor.md`` shows the table). The rules look at *medians* over windows of the
run rather than single values, so that one noisy batch does not raise an alarm, and each needs
a minimum of evidence (steps, samples, layers, epochs) before it speaks: a short run gets fewer
findings, not false ones.
"""

from __future__ import annotations

import math

from .findings import Finding
from .stats import MIN_DEAD_BATCH, RunStats
from .thresholds import (
    EARLY_WINDOW,
    MIN_DEPTH,
    MIN_EPOCHS_OVERFIT,
    MIN_SAMPLES,
    MIN_STEPS_FLAT,
    MIN_STEPS_LOSS,
    REMEDIES,
    THRESHOLDS,
    T,
    Threshold,
)

__all__ = ["THRESHOLDS", "Threshold", "diagnose", "REMEDIES", "T"]


def _r(*keys) -> list:
    return [REMEDIES[k] for k in keys]


# ------------------------------------------------------------------------------ helpers
def _finite(values) -> list:
    return [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def median(values):
    v = sorted(_finite(values))
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def _values(series) -> list:
    return [v for _, v in series]


def reference(early: list):
    """The loss (or gradient norm) of "the start of training": the first value, or the
    median of the first few if lower (one explosive step must not become the reference)."""
    early = _finite(early)
    if not early:
        return None
    m = median(early[:EARLY_WINDOW])
    return min(early[0], m)


def _late(series) -> list:
    """The values of the second half of a series (all of a 1- or 2-point series)."""
    vals = _values(series)
    return vals[len(vals) // 2:] if len(vals) > 2 else vals


def _loglinear_factor(values: list):
    """The per-step factor of a least-squares fit of log10(values) over their index."""
    pts = [(i, math.log10(v)) for i, v in enumerate(values) if v and v > 0]
    if len(pts) < 3:
        return None
    n = len(pts)
    mx = sum(i for i, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((i - mx) ** 2 for i, _ in pts)
    slope = sum((i - mx) * (y - my) for i, y in pts) / sxx
    return 10.0 ** slope


def _g(x) -> float:
    """A number rounded to 4 significant digits, for evidence."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) or x == 0:
        return x
    return float(f"{x:.4g}")


# ------------------------------------------------------------------------------ rules
def depth_profile(stats: RunStats) -> list:
    """``[(layer key, median weight-gradient RMS)]`` in depth order (layers with weights;
    not embeddings, whose gradient is zero for every token absent from the batch)."""
    out = []
    for key, info in stats.ordered_layers():
        if info["kind"] == "embedding":
            continue
        m = median(_values(stats.layer_series_of(key, "grad_rms")))
        if m is not None:
            out.append((key, m))
    return out


def _activation_kinds(stats: RunStats) -> set:
    kinds = {info["kind"] for info in stats.layers.values()}
    kinds |= {info.get("activation", "").split(" ")[0] for info in stats.layers.values()}
    return kinds


def check_gradient_flow(stats: RunStats) -> list:
    prof = depth_profile(stats)
    positive = [(k, v) for k, v in prof if v > 0]
    if len(positive) < MIN_DEPTH:
        return []
    q = max(1, len(positive) // 4)
    early = median([v for _, v in positive[:q]])
    late = median([v for _, v in positive[-q:]])
    ratio = early / late
    # the fitted factor by which the gradient RMS shrinks per layer, going toward the input
    growth = _loglinear_factor([v for _, v in positive])
    decay = None if growth is None else 1.0 / growth
    evidence = {"early_layers": [k for k, _ in positive[:q]],
                "late_layers": [k for k, _ in positive[-q:]],
                "early_grad_rms": _g(early), "late_grad_rms": _g(late),
                "ratio_early_to_late": _g(ratio),
                "decay_per_layer": _g(decay), "layers": len(positive),
                "grad_rms_by_depth": [_g(v) for _, v in positive]}
    geometric = decay is not None and len(positive) >= 6 and decay <= T["geometric_decay"]
    if ratio < T["vanishing_ratio"] or geometric:
        affected = [k for k, v in positive if v < late * T["vanishing_ratio"]] or \
            [positive[0][0]]
        evidence["affected_layers"] = affected
        severity = "error" if ratio < T["vanishing_ratio_error"] else "warning"
        kinds = _activation_kinds(stats)
        remedies = _r("relu", "he_init", "norm", "residual") if kinds & {"sigmoid", "tanh"} \
            else _r("he_init", "norm", "residual", "relu")
        msg = (f"The gradient reaching the first layers is {1 / ratio:.3g}x smaller than at "
               f"the last layers")
        if decay is not None and decay < 1:
            msg += f"; it shrinks by a factor ~{decay:.2g} per layer toward the input"
        msg += ", so the early layers barely learn."
        return [Finding("vanishing_gradients", severity, positive[0][0], msg, evidence,
                        remedies)]
    if ratio > T["exploding_ratio"]:
        msg = (f"The gradient at the first layers is {ratio:.3g}x larger than at the last "
               f"layers: it grows layer after layer toward the input.")
        return [Finding("exploding_gradients", "warning", positive[0][0], msg, evidence,
                        _r("he_init", "clip", "norm", "lower_lr"))]
    return []


def check_grad_spikes(stats: RunStats) -> list:
    series = _values(stats.global_series.get("grad_norm", []))
    if len(series) < MIN_SAMPLES + 1:
        return []
    base = reference(series)
    peak = max(_finite(series), default=None)
    if not base or peak is None or peak <= T["grad_spike"] * base:
        return []
    step = stats.global_series["grad_norm"][series.index(peak)][0]
    evidence = {"max_grad_norm": _g(peak), "early_grad_norm": _g(base),
                "spike_factor": _g(peak / base), "at_step": step}
    msg = (f"The global gradient norm jumped to {peak:.3g} at step {step}, {peak / base:.3g}x "
           f"its value early in training.")
    return [Finding("exploding_gradients", "warning", "model", msg, evidence,
                    _r("clip", "lower_lr", "norm", "he_init"))]


def check_nonfinite(stats: RunStats) -> list:
    out = []
    losses = stats.loss
    bad = next(((s, v) for s, v in losses if not math.isfinite(v)), None)
    layer = first_nonfinite_layer(stats)
    if bad is None and layer is None:
        return []
    evidence = {}
    if bad is not None:
        evidence.update({"first_nonfinite_loss_step": bad[0], "loss": bad[1]})
        finite = [v for s, v in losses if s < bad[0] and math.isfinite(v)]
        if finite:
            evidence["last_finite_loss"] = _g(finite[-1])
    path = "training"
    if layer is not None:
        path, step, what = layer
        evidence.update({"first_nonfinite_layer": path, "layer_step": step,
                         "quantity": what})
    where = f" first seen at layer {path} ({evidence.get('quantity')})" if layer else ""
    when = f" at step {bad[0]}" if bad else ""
    msg = f"NaN or Inf appeared{when}{where}; everything computed from it is garbage."
    out.append(Finding("nan_inf", "error", path, msg, evidence,
                       _r("anomaly", "lower_lr", "clip", "stable_ops")))
    return out


def _nonfinite_at(stats: RunStats, step=None) -> list:
    """``(step, rank, key, quantity)`` for every non-finite layer measurement (at ``step``
    only, looking at the last entries, when given). ``rank`` orders them by causality:
    activations in forward (depth) order first, then gradients in backward order (deepest
    first), as the first non-finite value appears in that order."""
    found = []
    n = len(stats.layers)
    for key, info in stats.ordered_layers():
        series = stats.layer_series.get(key, {})
        for q, base in (("finite", 0), ("out_grad_norm", n), ("grad_rms", 2 * n)):
            entries = series.get(q, [])
            if step is not None:
                entries = entries[-1:] if entries and entries[-1][0] == step else []
            for s, v in entries:
                if (v == 0.0) if q == "finite" else not math.isfinite(v):
                    rank = base + (info["order"] if q == "finite" else n - info["order"])
                    found.append((s, rank, key, "activations" if q == "finite" else q))
                    break
    return sorted(found)


def first_nonfinite_layer(stats: RunStats):
    """``(layer key, step, quantity)`` of the first non-finite measurement, or None."""
    found = _nonfinite_at(stats)
    return (found[0][2], found[0][0], found[0][3]) if found else None


def check_dead_units(stats: RunStats) -> list:
    out = []
    for key, info in stats.ordered_layers():
        series = stats.layer_series_of(key, "dead_frac")
        if len(series) < 1:
            continue
        dead = median(_late(series))
        if dead is None or dead < T["dead_info"]:
            continue
        level = 2 if dead >= T["dead_error"] else 1 if dead >= T["dead_warning"] else 0
        residual = bool(info.get("residual_branch"))
        if residual:  # the skip connection still carries the signal: one level milder
            level = max(0, level - 1)
        severity = ("info", "warning", "error")[level]
        evidence = {"dead_fraction": _g(dead), "samples": len(series),
                    "min_batch_size": MIN_DEAD_BATCH, "residual_branch": residual}
        layer = info["kind"] in ("param", "embedding")  # credited a functional ReLU
        source = info.get("input_from") or (key if layer else None)
        if source:
            pre_mean = median(_late(stats.layer_series_of(source, "mean")))
            pre_std = median(_late(stats.layer_series_of(source, "std")))
            if pre_mean is not None:
                evidence.update({"preactivation_layer": source,
                                 "preactivation_mean": _g(pre_mean),
                                 "preactivation_std": _g(pre_std)})
        what = f"layer {key} (after its ReLU)" if layer else f"layer {key}"
        msg = (f"{dead:.0%} of the units of {what} output 0 for every example: they get no "
               f"gradient and stop learning.")
        if residual:
            msg += (" They are in a residual branch, so the skip connection still carries the "
                    "signal: capacity is wasted, training is not blocked.")
        if evidence.get("preactivation_mean") is not None and pre_std is not None and \
                pre_mean < -pre_std:
            msg += (f" Their inputs are mostly negative (mean {pre_mean:.3g}, std "
                    f"{pre_std:.3g}): look at the bias initialization and the learning rate.")
        out.append(Finding("dead_units", severity, key, msg, evidence,
                           _r("bias_init", "leaky", "lower_lr", "norm")))
    return out


def check_saturation(stats: RunStats) -> list:
    out = []
    for key, info in stats.ordered_layers():
        series = stats.layer_series_of(key, "sat_frac")
        if not series:
            continue
        sat = median(_late(series))
        if sat is None or sat < T["saturation_warning"]:
            continue
        severity = "error" if sat >= T["saturation_error"] else "warning"
        kind = info["kind"] if info["kind"] not in ("param", "embedding") else \
            info.get("activation", "").split(" ")[0]
        evidence = {"saturated_fraction": _g(sat), "activation": kind,
                    "samples": len(series)}
        msg = (f"{sat:.0%} of the outputs of layer {key} sit at the flat ends of the {kind}, "
               f"where its derivative is nearly 0: gradients through them vanish.")
        out.append(Finding("saturation", severity, key, msg, evidence,
                           _r("relu", "he_init", "norm", "standardize", "lower_lr")))
    return out


def _weight_update_medians(stats: RunStats) -> dict:
    """``{param name: median update ratio over the second half}`` for weight matrices."""
    out = {}
    for name, info in stats.params.items():
        if len(info.get("shape", [])) < 2:
            continue
        if not median(_late(stats.param_series_of(name, "grad_norm"))):
            continue  # no gradient (frozen, or behind dead units): not the learning rate's fault
        series = stats.param_series_of(name, "update_ratio")
        if len(series) >= MIN_SAMPLES:
            m = median(_late(series))
            if m is not None:
                out[name] = m
    return out


def _loss_symptom(stats: RunStats):
    """``(symptom, message, evidence)`` when the loss curve shows divergence or oscillation
    (``symptom`` None otherwise)."""
    losses = _finite(stats.loss_values())
    if len(losses) < MIN_STEPS_LOSS:
        return None, "", {}
    first = reference(losses)
    last = median(losses[-max(EARLY_WINDOW, len(losses) // 5):])
    peak = max(losses)
    evidence = {"initial_loss": _g(first), "final_loss": _g(last), "max_loss": _g(peak)}
    nonfinite = len(losses) < len(stats.loss)
    if first and (last > T["divergence"] * first or peak > T["loss_explosion"] * first
                  or nonfinite):
        end = " and became NaN/Inf." if nonfinite else f" and ends at {last:.4g}."
        return "divergence", (f"The loss diverges: from {first:.4g} at the start it went up "
                              f"to {peak:.4g}" + end), evidence
    if first and _oscillates(losses, first):
        return "oscillation", ("The loss oscillates instead of going down: the steps "
                               "overshoot."), evidence
    return None, "", evidence


def check_learning_rate(stats: RunStats) -> list:
    ratios = _weight_update_medians(stats)
    high = {k: v for k, v in ratios.items() if v > T["update_ratio_high"]}
    symptom, msg, evidence = _loss_symptom(stats)
    if symptom is None and high:
        symptom = "large_updates"
        msg = (f"Each step changes {len(high)} weight matrices by more than "
               f"{T['update_ratio_high']:.0%} of their norm (median ratio up to "
               f"{max(high.values()):.2g}).")
    if ratios:
        evidence.update({"max_update_ratio": _g(max(ratios.values())),
                         "update_ratios": {k: _g(v) for k, v in ratios.items()}})
    if symptom is not None:
        evidence["symptom"] = symptom
        severity = "error" if symptom == "divergence" else "warning"
        return [Finding("lr_too_high", severity, "training", msg, evidence,
                        _r("lower_lr", "clip", "norm"))]
    if ratios and max(ratios.values()) < T["update_ratio_low"]:
        msg = (f"The weights hardly move: the largest median update ratio is "
               f"{max(ratios.values()):.2g} per step.")
        return [Finding("lr_too_low", "warning", "training", msg, evidence,
                        _r("higher_lr", "train_longer"))]
    return []


def _oscillates(losses: list, first: float) -> bool:
    n = len(losses)
    late = losses[n // 2:]
    if len(late) < MIN_STEPS_LOSS // 2:
        return False
    diffs = [abs(b - a) for a, b in zip(late, late[1:])]
    level = median(late)
    no_progress = median(losses[3 * n // 4:]) >= 0.95 * median(late[:len(late) // 2])
    return bool(level) and level >= 0.5 * first and no_progress and \
        median(diffs) > T["oscillation"] * level


def check_underfitting(stats: RunStats) -> list:
    losses = _finite(stats.loss_values())
    if len(losses) < MIN_STEPS_FLAT:
        return []
    first = reference(losses)
    last = median(losses[-max(EARLY_WINDOW, len(losses) // 5):])
    if not first or first <= 0 or last < T["underfit_ratio"] * first or \
            last > T["divergence"] * first:  # a loss going up is divergence, not underfitting
        return []
    evidence = {"initial_loss": _g(first), "final_loss": _g(last),
                "relative_decrease": _g(1 - last / first), "steps": len(losses)}
    msg = (f"The training loss has barely moved in {len(losses)} steps ({first:.3g} -> "
           f"{last:.3g}): the model is not fitting even the training data.")
    return [Finding("underfitting", "warning", "training", msg, evidence,
                    _r("bigger_model", "train_longer", "higher_lr", "less_reg", "check_data"))]


def check_overfitting(stats: RunStats) -> list:
    epochs = [e for e in stats.epochs if "val_loss" in e and "loss" in e
              and math.isfinite(e["val_loss"]) and math.isfinite(e["loss"])]
    if len(epochs) < MIN_EPOCHS_OVERFIT:
        return []
    val = [e["val_loss"] for e in epochs]
    best = min(range(len(val)), key=val.__getitem__)
    last = epochs[-1]
    if best > len(epochs) - 3 or last["val_loss"] < (1 + T["overfit_rise"]) * val[best] or \
            last["loss"] >= epochs[best]["loss"]:
        return []
    evidence = {"best_epoch": epochs[best]["epoch"], "best_val_loss": _g(val[best]),
                "final_val_loss": _g(last["val_loss"]),
                "train_loss_at_best": _g(epochs[best]["loss"]),
                "final_train_loss": _g(last["loss"])}
    for key in ("accuracy", "val_accuracy"):
        if key in last:
            evidence[f"final_{key}"] = _g(last[key])
    msg = (f"The validation loss rose from {val[best]:.3g} (epoch {epochs[best]['epoch']}) to "
           f"{last['val_loss']:.3g} while the training loss fell from "
           f"{epochs[best]['loss']:.3g} to {last['loss']:.3g}: the model memorizes the "
           f"training set.")
    return [Finding("overfitting", "warning", "training", msg, evidence,
                    _r("regularize", "more_data", "smaller_model", "early_stop"))]


def check_inputs(stats: RunStats) -> list:
    if not stats.inputs:
        return []
    mean = median(_values(stats.inputs.get("mean", [])))
    std = median(_values(stats.inputs.get("std", [])))
    ratio = median(_values(stats.inputs.get("feature_std_ratio", [])))
    if mean is None or std is None:
        return []
    problems = []
    if std > T["input_std_high"]:
        problems.append(f"their standard deviation is {std:.3g}")
    elif std < T["input_std_low"]:
        problems.append(f"their standard deviation is only {std:.3g}")
    if abs(mean) > T["input_mean"] * max(std, 1e-12):
        problems.append(f"their mean {mean:.3g} is {abs(mean) / max(std, 1e-12):.3g} standard "
                        f"deviations from 0")
    if ratio is not None and ratio > T["input_feature_ratio"]:
        problems.append(f"one feature's spread is {ratio:.3g}x the median feature's")
    if not problems:
        return []
    evidence = {"mean": _g(mean), "std": _g(std), "feature_std_ratio": _g(ratio)}
    msg = "The inputs are not normalized: " + "; ".join(problems) + "."
    return [Finding("unnormalized_inputs", "warning", "inputs", msg, evidence,
                    _r("standardize", "input_norm_layer"))]


RULES = (check_nonfinite, check_gradient_flow, check_grad_spikes, check_dead_units,
         check_saturation, check_learning_rate, check_underfitting, check_overfitting,
         check_inputs)


# problems that stop a network from learning at all: an underfitting finding next to one of
# them is its symptom, and the remedy is to fix the cause
_CAUSES = {"vanishing_gradients": "the vanishing gradients", "dead_units": "the dead units",
           "saturation": "the saturated units", "nan_inf": "the NaN/Inf values",
           "lr_too_low": "the too small learning rate"}


def _link_causes(findings: list) -> None:
    causes = [f for f in findings if f.kind in _CAUSES and f.level >= 1]
    for f in findings:
        if f.kind == "underfitting" and causes:
            names = " and ".join(dict.fromkeys(_CAUSES[c.kind] for c in causes))
            f.message += f" The likely cause: {names} (fix that first)."
            f.evidence["likely_causes"] = sorted({c.kind for c in causes})
            f.remedies.insert(0, f"Fix {names} first (see the remedies above).")


def diagnose(stats: RunStats) -> list[Finding]:
    """Every finding the rules make from ``stats``, most severe first (then by depth)."""
    findings = []
    for rule in RULES:
        findings.extend(rule(stats))
    _link_causes(findings)
    order = {key: info["order"] for key, info in stats.layers.items()}
    findings.sort(key=lambda f: (-f.level, order.get(f.path, -1)))
    return findings


# ------------------------------------------------------------------------------ while training
def acute_loss(value: float, early: list, step: int):
    """A finding for a loss that is non-finite or exploded, from the value alone (O(1))."""
    if not math.isfinite(value):
        return Finding("nan_inf", "error", "training",
                       f"The loss is {value} at step {step}.", {"step": step, "loss": value},
                       _r("anomaly", "lower_lr", "clip", "stable_ops"))
    if early:
        first = reference(early)
        if first and value > T["loss_explosion"] * first:
            return Finding("lr_too_high", "error", "training",
                           f"The loss jumped to {value:.4g} at step {step}, "
                           f"{value / first:.3g}x its initial value: training diverges.",
                           {"step": step, "loss": _g(value), "initial_loss": _g(first),
                            "symptom": "divergence"},
                           _r("lower_lr", "clip", "norm"))
    return None


def acute_grad_norm(value: float, early: list, step: int):
    if not math.isfinite(value):
        return Finding("nan_inf", "error", "model",
                       f"The gradient norm is {value} at step {step}.",
                       {"step": step, "grad_norm": value},
                       _r("anomaly", "lower_lr", "clip", "stable_ops"))
    if len(early) >= MIN_SAMPLES:
        base = reference(early)
        if base and value > T["grad_spike"] * base:
            return Finding("exploding_gradients", "warning", "model",
                           f"The gradient norm jumped to {value:.3g} at step {step}, "
                           f"{value / base:.3g}x its early value.",
                           {"step": step, "grad_norm": _g(value), "early_grad_norm": _g(base)},
                           _r("clip", "lower_lr", "norm"))
    return None


def acute_nonfinite(stats: RunStats, step: int):
    """A finding for the first non-finite layer measurement of ``step`` (O(layers))."""
    found = _nonfinite_at(stats, step)
    if not found:
        return None
    _, _, key, what = found[0]
    return Finding("nan_inf", "error", key, f"Non-finite {what} at layer {key} (step {step}).",
                   {"step": step, "quantity": what},
                   _r("anomaly", "lower_lr", "clip", "stable_ops"))
