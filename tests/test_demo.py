"""The README's main job runs and its model survives a save/load round trip."""

from ember import demo


def test_demo_trains_and_reloads(capsys):
    acc = demo.main(epochs=8)
    out = capsys.readouterr().out
    assert acc > 0.9, f"spiral accuracy only {acc}"
    assert "reloaded: accuracy" in out
    assert "total parameters: 4,547" in out
