"""Findings and reports: JSON round trips (no pickle, non-finite numbers as strings), the text
summary, the report folder with its PNG plots."""

import json
import math

import pytest

import ember
from ember import nn
from ember.diagnostics import (
    Finding,
    RunStats,
    format_report,
    load_report,
    print_report,
    watch,
    write_report,
)
from ember.diagnostics.plots import PLOTS
from ember.nn import functional as F


def test_finding_round_trip_and_validation():
    f = Finding("dead_units", "warning", "features.3", "60% dead",
                {"dead_fraction": 0.6, "bad": math.nan, "values": [1.0, math.inf]},
                ["Use LeakyReLU."])
    d = f.to_dict()
    assert d["evidence"]["bad"] == "nan" and d["evidence"]["values"][1] == "inf"
    json.dumps(d, allow_nan=False)
    g = Finding.from_dict(json.loads(json.dumps(d)))
    assert g.kind == f.kind and g.path == "features.3" and math.isnan(g.evidence["bad"])
    assert g.evidence["values"] == [1.0, math.inf] and g.remedies == ["Use LeakyReLU."]
    assert g.level == 1 and "WARNING" in g.format() and "Use LeakyReLU." in g.format()
    assert str(g).startswith("warning: dead units [features.3]")
    with pytest.raises(ValueError, match="severity"):
        Finding("x", "fatal", "p", "m")


@pytest.fixture(scope="module")
def watched():
    ember.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.Sigmoid(),
                          nn.Linear(16, 3))
    opt = ember.optim.Adam(model.parameters(), lr=0.01)
    x, y = ember.randn(32, 4), ember.randint(0, 3, (32,))
    with watch(model, every=2) as doctor:
        for _ in range(12):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            doctor.step(loss)
        doctor.record_epoch(0, {"loss": 1.0, "val_loss": 1.2, "val_accuracy": 0.5})
    return doctor


def test_stats_json_round_trip(tmp_path, watched):
    s = watched.stats
    s.loss.append([12, math.nan])
    try:
        path = tmp_path / "stats.json"
        s.save(path)
        text = path.read_text()
        assert "NaN" not in text and '"nan"' in text
        back = RunStats.load(path)
        assert back.to_dict() == s.to_dict()
        assert math.isnan(back.loss[-1][1]) and back.ordered_layers() == s.ordered_layers()
    finally:
        s.loss.pop()
    with pytest.raises(ValueError, match="format"):
        RunStats.from_dict({"format": "other"})


def test_text_summary(watched):
    text = watched.summary()
    assert text.startswith("ember doctor: Sequential, 12 steps (6 sampled, every 2)")
    assert "Per layer" in text and "Gradient flow" in text and "Last epoch (0)" in text
    for key in ("0", "1", "2", "3", "4"):
        assert f"\n{key} " in text
    findings = [Finding("saturation", "error", "3", "saturated", {"x": 1.0}, ["fix it"])]
    text = format_report(watched.stats, findings)
    assert "1 finding(s): 1 error." in text and "ERROR   saturated units [3]" in text


def test_report_folder(tmp_path, watched, capsys):
    folder = watched.write_report(tmp_path / "doctor")
    names = {p.name for p in (tmp_path / "doctor").iterdir()}
    assert {"report.txt", "findings.json", "stats.json", *PLOTS} <= names
    for name in PLOTS:
        data = (tmp_path / "doctor" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    stats, findings = load_report(folder)
    assert stats.to_dict() == watched.stats.to_dict()
    assert [f.to_dict() for f in findings] == [f.to_dict() for f in watched.diagnose()]
    assert print_report(folder, plots=False) == sum(f.level >= 1 for f in findings)
    out = capsys.readouterr().out
    assert out.startswith("ember doctor: Sequential") and "Plots in" not in out


def test_report_without_measurements(tmp_path):
    """An empty run (no step) still writes a report and draws empty plots."""
    folder = write_report(tmp_path / "empty", RunStats(10, "Net"), [])
    stats, findings = load_report(folder)
    assert stats.steps == 0 and findings == []
    assert "Healthy" in (tmp_path / "empty" / "report.txt").read_text()
