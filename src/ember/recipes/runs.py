"""Training a recipe into a run directory and using the run afterwards (evaluate, predict,
generate, translate): the library behind the ``ember`` command."""

from __future__ import annotations

import os

from .registry import DOCTOR_DIR, RecipeError, get_recipe, open_run, read_json

__all__ = ["train", "evaluate", "predict", "generate", "translate", "load_run",
           "doctor_report_dir"]

_VERB_TASK = {"predict": "classify", "translate": "translate", "generate": "generate"}
_TASK_VERB = {"classify": "predict", "translate": "translate", "generate": "generate"}


def train(name: str, out_dir, quick: bool = False, resume: bool = False, verbose: int = 0,
          command: str | None = None, doctor: bool = False, **overrides) -> dict:
    """Run recipe ``name`` into ``out_dir`` and return its summary.

    ``overrides``: hyperparameters (``epochs``, ``steps``, ``lr``, ``batch_size``, ``seed``,
    or a recipe's own). With ``resume`` and an existing ``config.json``, the saved
    configuration is the base (the overrides still apply, e.g. more epochs). With ``doctor``
    the training doctor watches the run and reports in ``out_dir/doctor/``.
    """
    recipe = get_recipe(name)
    cfg_path = os.path.join(os.fspath(out_dir), "config.json")
    if resume and os.path.isfile(cfg_path):
        meta = read_json(cfg_path)
        if meta.get("recipe") != name:
            raise RecipeError(f"cannot resume {name!r} in {os.fspath(out_dir)!r}: it holds a "
                              f"{meta.get('recipe')!r} run")
        cfg = dict(meta["config"])
        for key, value in overrides.items():
            if value is not None:
                if key not in cfg:
                    raise RecipeError(f"recipe {name!r} has no hyperparameter {key!r}")
                cfg[key] = value
        if overrides.get("epochs") is not None and overrides.get("steps") is None:
            cfg["steps"] = None
        recipe.check_config(cfg)
    else:
        cfg = recipe.config(quick=quick, **overrides)
    return recipe.run(out_dir, cfg, resume=resume, verbose=verbose, command=command,
                      doctor=doctor)


def load_run(run_dir, which: str = "auto"):
    """``(recipe, config, model, extras)`` of a run directory."""
    recipe, cfg = open_run(run_dir)
    model, extra = recipe.load_model(os.fspath(run_dir), cfg, which)
    return recipe, cfg, model, extra


def evaluate(run_dir, which: str = "auto") -> dict:
    """Rebuild the model of ``run_dir`` (config.json + best/last checkpoint) and evaluate
    it on the test split (validation for the language models)."""
    recipe, cfg = open_run(run_dir)
    return recipe.test(os.fspath(run_dir), cfg, which)


def _for(verb: str, run_dir):
    recipe, cfg = open_run(run_dir)
    if recipe.task != _VERB_TASK[verb]:
        raise RecipeError(f"'{verb}' needs a {_VERB_TASK[verb]} run, but {recipe.name!r} is a "
                          f"{recipe.task} recipe: use 'ember {_TASK_VERB[recipe.task]}'")
    return recipe, cfg


def predict(run_dir, inputs) -> list:
    """Classify ``inputs`` (strings: numbers for numeric recipes, texts for tweets)."""
    recipe, cfg = _for("predict", run_dir)
    if isinstance(inputs, str):
        inputs = [inputs]
    return recipe.predict(os.fspath(run_dir), cfg, list(inputs))


def generate(run_dir, prompt: str, length: int = 200, temperature: float = 1.0,
             top_k: int = 0, seed: int | None = None) -> str:
    """Continue ``prompt`` with a character language model run."""
    recipe, cfg = _for("generate", run_dir)
    return recipe.generate(os.fspath(run_dir), cfg, prompt, length, temperature, top_k, seed)


def translate(run_dir, text: str, beam: int = 0) -> str:
    """Translate with a translation run (greedy, or beam search with ``beam`` > 1)."""
    recipe, cfg = _for("translate", run_dir)
    return recipe.translate(os.fspath(run_dir), cfg, text, beam)


def doctor_report_dir(run_dir) -> str:
    """The doctor's report folder of ``run_dir``; a :class:`RecipeError` says how to get one
    when the run was trained without the doctor."""
    recipe, _ = open_run(run_dir)
    folder = os.path.join(os.fspath(run_dir), DOCTOR_DIR)
    if not os.path.isfile(os.path.join(folder, "stats.json")):
        raise RecipeError(f"{os.fspath(run_dir)!r} was trained without --doctor, so it has no "
                          f"doctor report; train it with the doctor on: 'ember train "
                          f"{recipe.name} --doctor --out {os.fspath(run_dir)}' (this retrains "
                          f"the run; give another --out to keep this one)")
    return folder
