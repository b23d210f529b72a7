"""Users' files: CSV tables, NumPy arrays, image folders (.npy, .pgm, .ppm)."""

import numpy as np
import pytest

from ember.data import DataLoader, ImageFolder, from_numpy_arrays, load_csv, read_image
from ember.data import transforms as T
from ember.data.files import read_pnm, write_pnm


def test_load_csv_classification(tmp_path):
    path = tmp_path / "iris.csv"
    path.write_text("a,b,species,c\n1,2.5,setosa,3\n4,5,virginica,6\n7,8,setosa,9\n")
    ds = load_csv(path, "species")
    assert len(ds) == 3 and ds.classes == ["setosa", "virginica"]
    assert ds.class_to_idx == {"setosa": 0, "virginica": 1}
    x, y = ds[1]
    assert x.tolist() == [4.0, 5.0, 6.0] and y.item() == 1
    assert str(x.dtype) == "ember.float32" and ds.feature_names == ["a", "b", "c"]
    ds = load_csv(path, 2, feature_columns=["c", "a"])
    assert ds[0][0].tolist() == [3.0, 1.0]


def test_load_csv_numeric_labels_no_header_and_errors(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("0.5\t10\n1.5\t2\n2.5\t10\n")
    ds = load_csv(path, 1, delimiter="\t", header=False)
    assert ds.classes == ["2", "10"]  # numeric labels sort as numbers
    assert [int(ds[i][1].item()) for i in range(3)] == [1, 0, 1]
    reg = load_csv(path, 1, delimiter="\t", header=False, task="regression")
    assert reg[0][1].item() == 10.0
    with pytest.raises(ValueError, match="not a column"):
        load_csv(path, "label", delimiter="\t")
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,a\nfoo,b\n")
    with pytest.raises(ValueError, match="line 3"):
        load_csv(bad, "y")


def test_from_numpy_arrays():
    ds = from_numpy_arrays(np.zeros((4, 3)), np.arange(4))
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 3) and str(x.dtype) == "ember.float32" and y.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        from_numpy_arrays(np.zeros(3), np.zeros(4))


def test_pnm_round_trip_and_ascii(tmp_path):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    color = rng.integers(0, 256, (4, 3, 3), dtype=np.uint8)
    write_pnm(tmp_path / "g.pgm", gray)
    write_pnm(tmp_path / "c.ppm", color)
    np.testing.assert_array_equal(read_pnm(tmp_path / "g.pgm"), gray)
    np.testing.assert_array_equal(read_image(tmp_path / "c.ppm"), color)
    (tmp_path / "a.pgm").write_bytes(b"P2\n# a comment\n3 2\n255\n0 1 2\n3 4 255\n")
    np.testing.assert_array_equal(read_pnm(tmp_path / "a.pgm"), [[0, 1, 2], [3, 4, 255]])
    (tmp_path / "x.pgm").write_bytes(b"P9 1 1 255 \x00")
    with pytest.raises(ValueError):
        read_pnm(tmp_path / "x.pgm")


def test_image_folder(tmp_path):
    rng = np.random.default_rng(1)
    for cls in ("dog", "cat"):
        (tmp_path / cls).mkdir()
    images = {}
    for i in range(3):
        img = rng.integers(0, 256, (6, 6), dtype=np.uint8)
        write_pnm(tmp_path / "cat" / f"{i}.pgm", img)
        images[("cat", f"{i}.pgm")] = img
    for i in range(2):
        img = rng.integers(0, 256, (6, 6), dtype=np.uint8)
        np.save(tmp_path / "dog" / f"{i}.npy", img)
        images[("dog", f"{i}.npy")] = img
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    ds = ImageFolder(tmp_path)
    assert ds.classes == ["cat", "dog"] and ds.class_to_idx == {"cat": 0, "dog": 1}
    assert len(ds) == 5 and ds.targets == [0, 0, 0, 1, 1]
    img, target = ds[3]
    np.testing.assert_array_equal(img, images[("dog", "0.npy")])
    assert target == 1
    ds = ImageFolder(tmp_path, transform=T.ToTensor())
    x, y = next(iter(DataLoader(ds, batch_size=5)))
    assert x.shape == (5, 1, 6, 6) and y.tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_allclose(x.numpy()[0, 0], images[("cat", "0.pgm")] / 255.0, rtol=1e-6)
    with pytest.raises(FileNotFoundError):
        ImageFolder(tmp_path / "missing")


def test_png_through_pillow(tmp_path):
    Image = pytest.importorskip("PIL.Image", reason="Pillow is optional: PNG needs it")
    img = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    Image.fromarray(img).save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), img)
