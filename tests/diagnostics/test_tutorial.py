"""docs/tutorials/doctor.md runs as written, and its thresholds table matches THRESHOLDS."""

import pathlib
import re
import warnings

from ember.diagnostics import THRESHOLDS, DoctorWarning

TUTORIAL = pathlib.Path(__file__).resolve().parents[2] / "docs" / "tutorials" / "doctor.md"


def _python_blocks() -> list:
    return re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(), flags=re.S)


def test_tutorial_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "tutorial"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DoctorWarning)  # section 3 shows one
        for block in _python_blocks():
            exec(compile(block, str(TUTORIAL), "exec"), namespace)
    out = capsys.readouterr().out
    assert "ERROR   vanishing gradients [0]" in out
    assert "'log' produced Inf in the forward pass" in out
    assert "WARNING overfitting [training]" in out
    assert namespace["cured_accuracy"] > namespace["sick_accuracy"] + 0.25
    assert (tmp_path / "doctor-sick" / "gradient_flow.png").is_file()


def test_thresholds_table_is_current():
    text = TUTORIAL.read_text()
    for name, t in THRESHOLDS.items():
        assert f"| `{name}` | {t.value:g} | {t.reason} |" in text, name
