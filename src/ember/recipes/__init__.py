"""Recipes: named, documented model + data + hyperparameter configurations, and the run
directories they write. See :mod:`ember.recipes.registry` (the run directory layout) and
:mod:`ember.recipes.tasks` and :mod:`ember.recipes.text_tasks` (the recipes).

    >>> from ember import recipes
    >>> recipes.list_recipes()[:2]
    ['perceptron', 'xor']
    >>> summary = recipes.train("xor", "runs/xor", quick=True)     # doctest: +SKIP
    >>> recipes.evaluate("runs/xor")["accuracy"]                   # doctest: +SKIP
    1.0
"""

from .registry import Recipe, RecipeError, get_recipe, list_recipes
from .runs import evaluate, generate, load_run, predict, train, translate

__all__ = ["Recipe", "RecipeError", "get_recipe", "list_recipes", "train", "evaluate",
           "predict", "generate", "translate", "load_run"]
