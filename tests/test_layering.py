"""The layers depend one way: ops <- autograd <- (nn, optim, ...). NumPy only in ops.

Checked on the source text (imports), so a violation fails here instead of in review.
"""

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "ember"
ORDER = ["ops", "autograd", "io", "nn", "optim", "data", "train", "diagnostics", "explain",
         "recipes", "cli"]


def _imports(path: pathlib.Path) -> set:
    tree = ast.parse(path.read_text())
    pkg = path.relative_to(SRC).parts[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level == 1:
                found.add(pkg)
            elif node.level >= 2:
                found.add(mod.split(".")[0] if mod else "")
            elif mod.startswith("ember."):
                found.add(mod.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ember."):
                    found.add(alias.name.split(".")[1])
    return found


def _files(pkg: str):
    return sorted((SRC / pkg).rglob("*.py")) if (SRC / pkg).is_dir() else []


@pytest.mark.parametrize("pkg", [p for p in ORDER if (SRC / p).is_dir()])
def test_imports_point_down_the_stack(pkg):
    allowed = set(ORDER[: ORDER.index(pkg) + 1])
    for f in _files(pkg):
        bad = {m for m in _imports(f) if m in ORDER and m not in allowed}
        assert not bad, f"{f.relative_to(SRC)} imports {bad}; {pkg} may only use {allowed}"


def test_ops_do_not_import_autograd():
    for f in _files("ops"):
        assert "autograd" not in _imports(f), f"{f.relative_to(SRC)} imports autograd"
