import subprocess
import sys

import numpy as np
import pytest

from ember.train import History, plot_confusion_matrix, plot_history
from ember.train.metrics import confusion_matrix

pytest.importorskip("matplotlib")
PNG = b"\x89PNG\r\n\x1a\n"


def test_learning_curves_png(tmp_path):
    h = History()
    for e, (loss, acc) in enumerate([(1.0, 0.5), (0.7, 0.6), (0.5, 0.8)]):
        h.append(e, {"loss": loss, "accuracy": acc, "val_loss": loss + 0.1,
                     "val_accuracy": acc - 0.1, "lr": 0.1})
    path = plot_history(h, tmp_path / "curves.png", title="run")
    data = (tmp_path / "curves.png").read_bytes()
    assert path == tmp_path / "curves.png"
    assert data.startswith(PNG) and len(data) > 1000
    plot_history(h.history, tmp_path / "loss.png", keys=["loss"])
    assert (tmp_path / "loss.png").read_bytes().startswith(PNG)
    with pytest.raises(ValueError, match="empty"):
        plot_history(History(), tmp_path / "x.png")


def test_confusion_matrix_png(tmp_path):
    cm = confusion_matrix([0, 1, 2, 2, 1], [0, 2, 2, 2, 1])
    for normalize in (False, True):
        out = tmp_path / f"cm{normalize}.png"
        plot_confusion_matrix(cm, out, class_names=["a", "b", "c"], normalize=normalize)
        data = out.read_bytes()
        assert data.startswith(PNG) and len(data) > 1000
    with pytest.raises(ValueError, match="square"):
        plot_confusion_matrix(np.zeros((2, 3)), tmp_path / "bad.png")


def test_import_ember_does_not_import_matplotlib():
    code = "import sys, ember, ember.train; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
