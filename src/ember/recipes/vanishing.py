"""The ``vanishing-gradients`` recipe: a network too deep for its activation, and its cure.

The sick model is the textbook failure: a 20-layer MLP with sigmoid activations and "small
random" weights (normal, std 0.1). Each layer multiplies the backward signal by at most
0.25 (sigmoid's largest derivative) times the weights' scale, so the gradient reaching the
first layer is ~10^-11 of the last layer's: the early layers never learn, and the network
stays at chance (~10%) on MNIST-1D. The training doctor runs during training and writes its
report to ``RUN_DIR/doctor/``; it diagnoses vanishing gradients in the first layers.

``cure=True`` trains the same depth with the fundamentals applied: ReLU activations, He
initialization, batch normalization and residual connections
(``x + relu(bn(linear(x)))``). The doctor finds it healthy, and it reaches ~52% test accuracy
in the same 200 steps, against 10% (MNIST-1D's 3-layer reference MLP reaches ~68% after 8,000
steps). Trained much longer on MNIST-1D's 4,000 examples, the cured network starts to overfit,
and the doctor says so.
"""

from __future__ import annotations

from ember import nn

from .registry import RecipeError, register
from .tasks import _MNIST1D_DEFAULTS, _Mnist1d

__all__ = ["SigmoidMLP", "ResidualReLUMLP", "VanishingGradients"]


class SigmoidMLP(nn.Module):
    """``depth`` Linear layers with sigmoid between them, weights ~ N(0, ``init_std``^2) and
    zero biases (the "naive" initialization). Layers are ``layers.0``, ``layers.2`` ..."""

    def __init__(self, in_features: int = 40, width: int = 64, classes: int = 10,
                 depth: int = 20, init_std: float = 0.1):
        super().__init__()
        mods, n = [], in_features
        for _ in range(depth - 1):
            linear = nn.Linear(n, width)
            nn.init.normal_(linear.weight, 0.0, init_std)
            nn.init.zeros_(linear.bias)
            mods += [linear, nn.Sigmoid()]
            n = width
        mods.append(nn.Linear(n, classes))
        self.layers = nn.Sequential(*mods)

    def forward(self, x):
        return self.layers(x.flatten(1))


class ResidualBlock(nn.Module):
    """``x + relu(batchnorm(linear(x)))`` with He initialization."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, width)
        self.norm = nn.BatchNorm1d(width)
        self.act = nn.ReLU()
        nn.init.kaiming_normal_(self.linear.weight, nonlinearity="relu")
        nn.init.zeros_(self.linear.bias)

    def forward(self, x):
        return x + self.act(self.norm(self.linear(x)))


class ResidualReLUMLP(nn.Module):
    """The cure, at the same depth: a ReLU stem, ``depth - 2`` residual blocks, a linear
    head."""

    def __init__(self, in_features: int = 40, width: int = 64, classes: int = 10,
                 depth: int = 20):
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        nn.init.kaiming_normal_(self.stem.weight, nonlinearity="relu")
        nn.init.zeros_(self.stem.bias)
        self.act = nn.ReLU()
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(depth - 2)])
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.blocks(self.act(self.stem(x.flatten(1)))))


class VanishingGradients(_Mnist1d):
    """A 20-layer sigmoid MLP on MNIST-1D with naive initialization, trained with the doctor
    on (its report in RUN_DIR/doctor/); ``cure=True`` trains ReLU + He init + batch norm +
    residual connections instead."""

    name = "vanishing-gradients"
    description = ("MNIST-1D, 20-layer sigmoid MLP: the doctor diagnoses vanishing gradients "
                   "(cure=true: ReLU, He init, batch norm, residuals)")
    defaults = {**_MNIST1D_DEFAULTS, "epochs": 5, "steps": 200, "lr": 3e-3, "depth": 20,
                "width": 64, "init_std": 0.1, "cure": False, "doctor_every": 10}
    quick = {"steps": 40, "test_subset": 200}  # one epoch of the full training set
    always_doctor = True

    def check_config(self, cfg: dict) -> None:
        super().check_config(cfg)
        if int(cfg["depth"]) < 2 or int(cfg["width"]) < 1:
            raise RecipeError(f"depth must be >= 2 and width >= 1, got depth {cfg['depth']}, "
                              f"width {cfg['width']}")

    def build(self, cfg):
        depth, width = int(cfg["depth"]), int(cfg["width"])
        if _truthy(cfg.get("cure")):
            return ResidualReLUMLP(40, width, 10, depth)
        return SigmoidMLP(40, width, 10, depth, float(cfg["init_std"]))


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


register(VanishingGradients())
