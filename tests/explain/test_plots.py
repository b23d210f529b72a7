"""The pictures: valid PNG files of sensible size, and a self-contained HTML page."""

import doctest
import struct

import pytest

import ember
from ember import explain
from ember.explain import attention, gradients, layers, perturbation, plots

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"


def _png_size(path) -> tuple:
    data = path.read_bytes()
    assert data[:8] == PNG, f"{path} is not a PNG file"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_image_attribution(tmp_path):
    out = plots.plot_image_attribution(ember.rand(1, 8, 8), ember.randn(8, 8), tmp_path / "a.png",
                                       title="digit 3")
    w, h = _png_size(tmp_path / "a.png")
    assert out == str(tmp_path / "a.png") and w > 300 and h > 150
    with pytest.raises(ValueError, match="same shape"):
        plots.plot_image_attribution(ember.rand(8, 8), ember.rand(4, 4), tmp_path / "b.png")
    with pytest.raises(ValueError, match="must be 2-D"):
        plots.plot_image_attribution(ember.rand(2, 8, 8), ember.rand(2, 8, 8), tmp_path / "b.png")


def test_signal_attribution(tmp_path):
    plots.plot_signal_attribution(ember.randn(40), ember.randn(1, 40), tmp_path / "s.png")
    w, h = _png_size(tmp_path / "s.png")
    assert w > 400 and h > 200
    plots.plot_signal_attribution([0.0, 1.0], [0.0, 0.0], tmp_path / "zeros.png")  # all-zero ok
    with pytest.raises(ValueError, match="same length"):
        plots.plot_signal_attribution(ember.randn(40), ember.randn(39), tmp_path / "x.png")


def test_text_attribution_png_wraps_long_texts(tmp_path):
    words = ("the self driving car stopped gently at every crossing and the ride was "
             "smooth").split()
    plots.plot_text_attribution(words[:3], [0.5, -0.2, 0.0], tmp_path / "short.png")
    plots.plot_text_attribution(words * 3, ember.randn(3 * len(words)), tmp_path / "long.png",
                                title="positive")
    (w1, h1), (w2, h2) = _png_size(tmp_path / "short.png"), _png_size(tmp_path / "long.png")
    assert w1 == w2 and h2 > h1  # same width, more lines
    with pytest.raises(ValueError, match="3 tokens but 2 scores"):
        plots.plot_text_attribution(words[:3], [1.0, 2.0], tmp_path / "bad.png")


def test_text_attribution_html_is_self_contained(tmp_path):
    path = plots.save_text_attribution_html(["great", "ride", "<b>"], [0.9, -0.45, 0.0],
                                            tmp_path / "w.html", title="positive & sure")
    page = (tmp_path / "w.html").read_text(encoding="utf-8")
    assert path.endswith("w.html") and page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")
    assert ">great</span>" in page and ">ride</span>" in page and "&lt;b&gt;" in page
    assert "background-color: rgba(0, 160, 0, 0.85)" in page  # the strongest, for
    assert "background-color: rgba(220, 30, 30, 0.425)" in page  # half as strong, against
    assert "positive &amp; sure" in page
    for external in ("<script", "http://", "https://", "<link", "src="):
        assert external not in page


def test_attention_plot(tmp_path):
    w = ember.softmax(ember.randn(3, 4), dim=-1)
    plots.plot_attention(w, tmp_path / "att.png", ["four", "hundred", "and", "two"],
                         ["quatre", "cent", "deux"], title="attention")
    width, height = _png_size(tmp_path / "att.png")
    assert width > 200 and height > 200
    with pytest.raises(ValueError, match="x_labels has 2 labels for 4 columns"):
        plots.plot_attention(w, tmp_path / "bad.png", ["a", "b"])


@pytest.mark.parametrize("module", [explain, gradients, layers, perturbation, attention, plots])
def test_docstring_examples_run(module, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and (result.attempted > 0 or module is explain)
