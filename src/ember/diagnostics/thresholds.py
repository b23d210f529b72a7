"""The doctor's thresholds, each with the reasoning behind it, and its remedies.

The tutorial (``docs/tutorials/doctor.md``) shows :data:`THRESHOLDS` as a table (a test keeps
the two in step). :data:`REMEDIES` are the fundamentals the findings recommend, worded once.
"""

from __future__ import annotations

from dataclasses import dataclass

from .stats import SIGMOID_MARGIN, TANH_LIMIT

__all__ = ["Threshold", "THRESHOLDS", "T", "REMEDIES", "EARLY_WINDOW", "MIN_STEPS_LOSS",
           "MIN_STEPS_FLAT", "MIN_SAMPLES", "MIN_DEPTH", "MIN_EPOCHS_OVERFIT"]


@dataclass(frozen=True)
class Threshold:
    value: float
    reason: str


THRESHOLDS = {
    "vanishing_ratio": Threshold(
        1e-2, "Early layers' weight-gradient RMS below 1/100 of the last layers' (medians over "
        "the run). Layer widths alone move RMS gradients by a few x, not two orders of "
        "magnitude; a factor of 100 means the backward signal is being multiplied by a number "
        "below one at every layer (sigmoid' <= 0.25, small weights)."),
    "vanishing_ratio_error": Threshold(
        1e-4, "Four orders of magnitude: plain SGD leaves the first layers at their "
        "initialization, and Adam (which rescales each gradient) follows noise."),
    "geometric_decay": Threshold(
        0.5, "Per-layer factor of a log-linear fit of the gradient RMS over depth (>= 6 "
        "layers): halving at every layer compounds to 1/32 over 5 layers and 1/1000 over 10."),
    "exploding_ratio": Threshold(
        1e2, "Early layers' weight-gradient RMS over 100x the last layers': the backward "
        "signal is multiplied by a number above one at every layer."),
    "grad_spike": Threshold(
        1e2, "Global gradient norm above 100x its median over the first sampled steps. "
        "Gradients are largest early in healthy training; a hundredfold jump is a cliff in "
        "the loss surface or a runaway step."),
    "dead_warning": Threshold(
        0.5, "Over half of a ReLU layer's units output 0 for every example of the batch "
        "(median over the second half of the run). Such a unit gets no gradient, so it stays "
        "dead; half the layer is wasted capacity."),
    "dead_error": Threshold(0.9, "Nine units in ten dead: the layer barely passes a signal, "
                            "and what passes reaches the next layers through a few units."),
    "dead_info": Threshold(0.25, "A quarter dead: worth knowing, not yet a problem. A ReLU "
                           "inside a residual branch (added to a skip connection) is judged "
                           "one level milder: its dead units waste capacity, but the skip "
                           "path still carries the signal and the gradient."),
    "saturation_warning": Threshold(
        0.5, f"Over half of a sigmoid/tanh layer's outputs within {SIGMOID_MARGIN} of 0 or 1 "
        f"(sigmoid) or beyond +-{TANH_LIMIT} (tanh), where the derivative is under 8% (4%) "
        f"of its maximum: gradients through them shrink by more than 10x."),
    "saturation_error": Threshold(0.9, "Nine outputs in ten saturated: the layer is close "
                                  "to a constant, and almost no gradient crosses it."),
    "divergence": Threshold(
        1.5, "Median loss of the last 20% of steps above 1.5x the median of the first steps: "
        "training made the loss worse."),
    "loss_explosion": Threshold(
        10.0, "A loss above 10x the initial loss: a step threw the model far off (the "
        "initial loss of a classifier is ~ln(classes); a healthy run never goes 10x above)."),
    "update_ratio_high": Threshold(
        0.1, "Median norm(dW)/norm(W) of a weight matrix over the second half of the run above "
        "0.1: every step rewrites over a tenth of the weights, so the optimizer jumps across "
        "the valley instead of descending it. Healthy runs sit near 1e-3 (SGD) to 1e-2 "
        "(Adam)."),
    "update_ratio_low": Threshold(
        1e-5, "Even the largest median norm(dW)/norm(W) under 1e-5: a weight matrix needs "
        "~100,000 steps to change by its own size."),
    "oscillation": Threshold(
        0.5, "Median step-to-step change of the loss over the second half above half the "
        "median loss, while the loss makes no progress (last quarter not below the second) "
        "and stays above half its initial value: the steps bounce across the valley. (A "
        "converged run also has a noisy loss relative to its level, but a low level.)"),
    "underfit_ratio": Threshold(
        0.9, "Training loss still above 90% of its initial value after >= 100 steps: the "
        "model has not learned the training data."),
    "overfit_rise": Threshold(
        0.1, "Validation loss 10% above its best, for at least 2 epochs after the best, while "
        "the training loss kept falling."),
    "input_mean": Threshold(
        3.0, "Inputs whose mean is more than 3 standard deviations from 0: every first-layer "
        "unit starts with a large common offset."),
    "input_std_high": Threshold(
        10.0, "Input standard deviation above 10 (raw pixel values 0-255, unscaled "
        "measurements): pre-activations and gradients scale with it."),
    "input_std_low": Threshold(1e-2, "Input standard deviation below 0.01: the first layer "
                               "sees nearly constant inputs, and its weight gradients are "
                               "100x smaller than with unit-scale inputs."),
    "input_feature_ratio": Threshold(
        1e2, "One feature's standard deviation 100x the median feature's: the large feature "
        "dominates the first layer and its gradient."),
}

T = {k: v.value for k, v in THRESHOLDS.items()}

#: losses (or gradient norms) used as the reference of "the start of training"
EARLY_WINDOW = 5
MIN_STEPS_LOSS = 20
MIN_STEPS_FLAT = 100
MIN_SAMPLES = 3
MIN_DEPTH = 3
MIN_EPOCHS_OVERFIT = 4

REMEDIES = {
    "relu": "Use ReLU-family activations (ReLU, LeakyReLU, GELU) in hidden layers: their "
            "derivative is 1 on the active side, where sigmoid's is at most 0.25.",
    "he_init": "Initialize for the activation: He/Kaiming for ReLU "
               "(nn.init.kaiming_normal_(w, nonlinearity='relu')), Xavier/Glorot for tanh and "
               "sigmoid (nn.init.xavier_uniform_).",
    "norm": "Add normalization layers (BatchNorm1d/2d or LayerNorm) after the linear or conv "
            "layers: they keep every layer's activations and gradients at unit scale.",
    "residual": "Add residual connections (x + f(x)): the identity path carries the gradient "
                "to early layers undiminished.",
    "clip": "Clip gradients: Trainer(..., grad_clip_norm=1.0) or "
            "nn.utils.clip_grad_norm_(model.parameters(), 1.0) before optimizer.step().",
    "lower_lr": "Lower the learning rate (try 3-10x smaller), or warm it up over the first "
                "steps and decay it later (ember.optim.lr_scheduler).",
    "higher_lr": "Raise the learning rate (try 3-10x larger); with SGD, add momentum=0.9.",
    "anomaly": "Rerun a few steps under ember.autograd.detect_anomaly(): it stops at the first "
               "op that produces NaN/Inf and names the op, the module and your line of code.",
    "stable_ops": "Use numerically stable forms: cross_entropy on logits (not log(softmax)), "
                  "log_softmax, an eps in divisions, sqrt and log.",
    "leaky": "Use an activation that keeps a gradient for negative inputs (LeakyReLU, ELU, "
             "GELU).",
    "bias_init": "Check the bias initialization: zero (or slightly positive) biases keep ReLU "
                 "units active at the start; He init for the weights.",
    "regularize": "Regularize: weight decay (optimizer weight_decay=1e-4 ... 1e-2), dropout "
                  "(nn.Dropout) between layers.",
    "more_data": "Get more training data, or augment it (ember.data.transforms).",
    "smaller_model": "Use a smaller model (fewer or narrower layers).",
    "early_stop": "Stop at the best validation loss: EarlyStopping(patience=..., "
                  "restore_best_weights=True).",
    "bigger_model": "Give the model more capacity (wider or more layers) if the training loss "
                    "stays high.",
    "train_longer": "Train longer (more epochs or steps).",
    "less_reg": "Reduce regularization (weight decay, dropout) if you use any.",
    "check_data": "Check the data pipeline: labels matching inputs, inputs not constant.",
    "standardize": "Standardize the inputs: subtract the training set's per-feature mean and "
                   "divide by its standard deviation (ember.data.transforms.Normalize for "
                   "images; scale pixel values to [0, 1] at least).",
    "input_norm_layer": "Or put a normalization layer (BatchNorm1d/LayerNorm) first.",
}
