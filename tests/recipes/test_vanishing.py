"""The vanishing-gradients recipe: its models, its configuration, the doctor always on."""

import pytest

import ember
from ember import recipes
from ember.recipes.registry import RecipeError, run_callbacks
from ember.recipes.vanishing import ResidualReLUMLP, SigmoidMLP, VanishingGradients


def test_registered_and_configured():
    r = recipes.get_recipe("vanishing-gradients")
    assert isinstance(r, VanishingGradients) and "vanishing-gradients" in recipes.list_recipes()
    assert r.always_doctor and r.supports_doctor
    cfg = r.config()
    assert (cfg["depth"], cfg["width"], cfg["cure"], cfg["steps"]) == (20, 64, False, 200)
    assert isinstance(r.build(cfg), SigmoidMLP)
    for cure in (True, "true", "yes", 1):
        assert isinstance(r.build(r.config(cure=cure)), ResidualReLUMLP)
    with pytest.raises(RecipeError, match="depth must be >= 2"):
        r.config(depth=1)


def test_models_depth_and_paths():
    sick = SigmoidMLP(depth=20)
    linears = [p for p, m in sick.named_modules() if isinstance(m, ember.nn.Linear)]
    assert len(linears) == 20 and linears[:2] == ["layers.0", "layers.2"]
    assert abs(float(sick.layers[0].weight.std()) - 0.1) < 0.02
    cured = ResidualReLUMLP(depth=20)
    assert sum(isinstance(m, ember.nn.Linear) for m in cured.modules()) == 20
    assert cured(ember.randn(8, 40)).shape == (8, 10)


def test_run_callbacks_are_scoped_to_the_run():
    assert run_callbacks() == []
