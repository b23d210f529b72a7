"""The recipe registry and the run directory.

A *recipe* is a named, documented configuration: a model (from :mod:`ember.recipes.models`),
a dataset (from :func:`ember.data.load_dataset` or generated locally), hyperparameters with
sensible defaults, a ``quick`` variant (a few steps on a tiny subset, for tests) and a task
type that says what a trained run can do:

=============== =============================================================================
task            what a run directory supports
=============== =============================================================================
``classify``    ``evaluate`` (accuracy, macro-F1, confusion matrix) and ``predict`` on
                feature vectors (numbers) or on text (tweets)
``translate``   ``evaluate`` (exact match with greedy decoding, BLEU) and ``translate``
``generate``    ``evaluate`` (bits per character on validation) and ``generate``
=============== =============================================================================

Running a recipe writes a *run directory*::

    config.json            recipe name, task and hyperparameters (enough to rebuild the model)
    last.safetensors       the full training state (Trainer's ModelCheckpoint), for --resume
    best.safetensors       the state at the best validation loss
    metrics.csv            one row per epoch (CSVLogger)
    history.json           the same as JSON (History.to_dict)
    learning_curves.png    loss and metrics per epoch
    confusion_matrix.png   classifiers only
    tokenizer*.json        text recipes: the vocabulary fitted on the training split
    summary.json           final test metrics, wall time, machine, command
    doctor/                with --doctor: the training doctor's report (ember.diagnostics)

``list_recipes()`` names the recipes; ``get_recipe(name)`` returns one (an unknown name raises
``ValueError`` listing the valid ones).
"""

from __future__ import annotations

import contextvars
import json
import math
import os
import platform
import time

import numpy as np

import ember

__all__ = ["Recipe", "RecipeError", "register", "list_recipes", "get_recipe", "COMMON_KEYS",
           "write_json", "read_json", "machine_info", "run_callbacks", "DOCTOR_DIR"]

# hyperparameters every recipe has (the command line can override them)
COMMON_KEYS = ("epochs", "steps", "lr", "batch_size", "seed")


class RecipeError(ValueError):
    """A user error (bad name, input or run directory): the command line prints it on one
    line and exits with status 2."""


_RECIPES: dict = {}


def register(recipe: Recipe) -> Recipe:
    if recipe.name in _RECIPES:
        raise ValueError(f"recipe {recipe.name!r} is registered twice")
    _RECIPES[recipe.name] = recipe
    return recipe


# the built-in recipes' modules, in the order of the course (importing one registers its
# recipes; whichever is imported first, the list keeps this order)
_COURSE = ("ember.recipes.tasks", "ember.recipes.text_tasks", "ember.recipes.vanishing")


def _ensure_loaded() -> None:
    from . import tasks, text_tasks, vanishing  # noqa: F401


def _course_rank(name: str) -> int:
    module = type(_RECIPES[name]).__module__
    return _COURSE.index(module) if module in _COURSE else len(_COURSE)


#: the training doctor's report folder inside a run directory (``ember train --doctor``)
DOCTOR_DIR = "doctor"

# Extra Trainer callbacks for the run in progress (the doctor's): Recipe.run sets them and
# the recipes' fit helper adds them, so that no train_run signature has to change.
_RUN_CALLBACKS: contextvars.ContextVar = contextvars.ContextVar("ember_recipe_callbacks",
                                                                default=())


def run_callbacks() -> list:
    """The callbacks that :meth:`Recipe.run` asks the current run's Trainer to add."""
    return list(_RUN_CALLBACKS.get())


def list_recipes() -> list[str]:
    """The names of the recipes, in the order of the course (perceptron first)."""
    _ensure_loaded()
    return sorted(_RECIPES, key=_course_rank)  # (stable: registration order within a module)


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; ``ValueError`` (a :class:`RecipeError`) names the valid
    ones otherwise."""
    _ensure_loaded()
    if name not in _RECIPES:
        raise RecipeError(f"unknown recipe {name!r}; valid recipes: {', '.join(_RECIPES)}")
    return _RECIPES[name]


def write_json(path, obj) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False, default=_json_default)
        f.write("\n")
    os.replace(tmp, path)


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def machine_info() -> dict:
    return {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "ember": ember.__version__}


class Recipe:
    """Base class: a named configuration that trains, evaluates and serves one model.

    Subclasses set ``name``, ``description`` (one line), ``task``, ``defaults`` and ``quick``
    (overrides for a run of a few seconds), and implement :meth:`train_run` and
    :meth:`load_model`, plus the task's serving methods (``predict``, ``translate`` or
    ``generate``) and :meth:`test`.
    """

    name: str = ""
    description: str = ""
    task: str = "classify"
    defaults: dict = {}
    quick: dict = {}
    doc: str = ""
    #: whether ``run(doctor=True)`` can watch the training (False: no Trainer is used)
    supports_doctor: bool = True
    #: train with the doctor on even without ``doctor=True`` (the vanishing-gradients demo)
    always_doctor: bool = False

    # ---------------------------------------------------------------- configuration
    def config(self, quick: bool = False, **overrides) -> dict:
        """The hyperparameters: defaults, then ``quick`` ones, then non-None overrides."""
        cfg = {"epochs": 1, "steps": None, "lr": 1e-3, "batch_size": 32, "seed": 0}
        cfg.update(self.defaults)
        if quick:
            cfg.update(self.quick)
        cfg["quick"] = bool(quick)
        if overrides.get("epochs") is not None and overrides.get("steps") is None:
            cfg["steps"] = None  # an explicit number of epochs replaces the default steps
        for key, value in overrides.items():
            if value is None:
                continue
            if key not in cfg:
                raise RecipeError(f"recipe {self.name!r} has no hyperparameter {key!r}; valid: "
                                  f"{', '.join(sorted(cfg))}")
            cfg[key] = value
        self.check_config(cfg)
        return cfg

    def check_config(self, cfg: dict) -> None:
        for key in ("epochs", "batch_size"):
            if cfg.get(key) is not None and int(cfg[key]) < 1:
                raise RecipeError(f"{key} must be >= 1, got {cfg[key]}")
        if cfg.get("steps") is not None and int(cfg["steps"]) < 1:
            raise RecipeError(f"steps must be >= 1, got {cfg['steps']}")
        if not (cfg.get("lr") is None or float(cfg["lr"]) > 0):
            raise RecipeError(f"lr must be > 0, got {cfg['lr']}")

    @staticmethod
    def epochs_for(cfg: dict, batches_per_epoch: int) -> int:
        """``steps`` (when set) as a number of epochs of ``batches_per_epoch`` batches."""
        if cfg.get("steps"):
            return max(1, math.ceil(int(cfg["steps"]) / max(1, batches_per_epoch)))
        return int(cfg["epochs"])

    # ---------------------------------------------------------------- running
    def run(self, out_dir, cfg: dict | None = None, resume: bool = False, verbose: int = 0,
            command: str | None = None, doctor: bool = False) -> dict:
        """Train into ``out_dir`` (resuming from its last checkpoint with ``resume``), test,
        and write the run directory; returns the summary (also ``summary.json``).

        With ``doctor`` the training doctor (:class:`ember.diagnostics.DoctorCallback`)
        watches the training and writes its report to ``out_dir/doctor/``; the summary's
        ``doctor`` entry counts its findings. A resumed run's doctor continues the record
        kept in the checkpoint (if the interrupted run had the doctor too; else it sees the
        steps trained after resuming).
        """
        cfg = dict(cfg if cfg is not None else self.config())
        doctor = bool(doctor) or self.always_doctor
        if doctor and not self.supports_doctor:
            raise RecipeError(f"recipe {self.name!r} does not train with a Trainer, so the "
                              f"doctor cannot watch it; try another recipe")
        out_dir = os.fspath(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        write_json(os.path.join(out_dir, "config.json"),
                   {"recipe": self.name, "task": self.task, "config": cfg})
        start = time.perf_counter()
        ember.manual_seed(int(cfg["seed"]))
        callback = _doctor_callback(out_dir, cfg) if doctor else None
        token = _RUN_CALLBACKS.set((callback,) if callback is not None else ())
        try:
            result = self.train_run(out_dir, cfg, resume=resume, verbose=verbose)
        finally:
            _RUN_CALLBACKS.reset(token)
        if callback is not None:
            result["doctor"] = _doctor_summary(callback)
        summary = {"recipe": self.name, "task": self.task, "config": cfg,
                   "test": result.get("test", {}),
                   "wall_time_s": round(time.perf_counter() - start, 3),
                   "machine": machine_info(),
                   "command": command or f"ember train {self.name}"}
        for key, value in result.items():
            if key != "test":
                summary[key] = value
        write_json(os.path.join(out_dir, "summary.json"), summary)
        return summary

    def train_run(self, out_dir: str, cfg: dict, resume: bool, verbose: int) -> dict:
        raise NotImplementedError

    def load_model(self, run_dir: str, cfg: dict, which: str = "auto"):
        """The trained model of a run directory (and whatever it needs: tokenizers)."""
        raise NotImplementedError

    def test(self, run_dir: str, cfg: dict, which: str = "auto") -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Recipe({self.name!r}, task={self.task!r})"


def _doctor_callback(out_dir: str, cfg: dict):
    from ..diagnostics import DoctorCallback

    return DoctorCallback(every=int(cfg.get("doctor_every", 10)),
                          report_dir=os.path.join(out_dir, DOCTOR_DIR), verbose=0)


def _doctor_summary(callback) -> dict:
    findings = callback.findings
    return {"report_dir": DOCTOR_DIR,
            **{sev: sum(f.severity == sev for f in findings)
               for sev in ("error", "warning", "info")},
            "kinds": sorted({f.kind for f in findings if f.level >= 1})}


def _check_run_dir(run_dir) -> dict:
    run_dir = os.fspath(run_dir)
    path = os.path.join(run_dir, "config.json")
    if not os.path.isdir(run_dir):
        raise RecipeError(f"no run directory {run_dir!r}; train one with 'ember train RECIPE "
                          f"--out {run_dir}'")
    if not os.path.isfile(path):
        raise RecipeError(f"{run_dir!r} is not a run directory (no config.json); train one with "
                          f"'ember train RECIPE --out DIR'")
    try:
        meta = read_json(path)
        return meta
    except (OSError, ValueError) as e:
        raise RecipeError(f"{path!r} is not a valid run configuration ({e})") from None


def open_run(run_dir) -> tuple:
    """``(recipe, config)`` of a run directory (``RecipeError`` when it is not one)."""
    meta = _check_run_dir(run_dir)
    recipe = get_recipe(meta.get("recipe", "?"))
    return recipe, meta["config"]


def checkpoint_path(run_dir, which: str = "auto", prefer: str = "best") -> str:
    """``best.safetensors`` or ``last.safetensors`` of a run (``auto``: ``prefer`` if it
    exists, else the other)."""
    run_dir = os.fspath(run_dir)
    if which not in ("auto", "best", "last"):
        raise RecipeError(f"unknown checkpoint {which!r}; valid: auto, best, last")
    order = [which] if which != "auto" else [prefer, "last" if prefer == "best" else "best"]
    for name in order:
        path = os.path.join(run_dir, f"{name}.safetensors")
        if os.path.isfile(path):
            return path
    raise RecipeError(f"run directory {run_dir!r} has no {' or '.join(order)} checkpoint; "
                      f"train (or resume) it first")


def load_weights(model, path: str):
    state = ember.load(path)
    model.load_state_dict(state["model"] if isinstance(state, dict) and "model" in state
                          else state)
    model.eval()
    return model
