import numpy as np
import pytest

from pipeline.errors import MissingDataError
from pipeline.mnist import EXPECTED_SHAPES, load_mnist, read_npz

SMALL = {"x_train": (5, 28, 28), "y_train": (5,), "x_test": (3, 28, 28), "y_test": (3,)}


def write_npz(path, shapes=SMALL, dtype=np.uint8, max_label=9):
    arrays = {k: np.zeros(s, dtype) for k, s in shapes.items()}
    arrays["y_test"][0] = max_label
    np.savez(path, **arrays)
    return path


def test_real_mnist_has_the_original_split(mnist):
    assert mnist.x_train.shape == EXPECTED_SHAPES["x_train"] and mnist.x_test.dtype == np.uint8
    assert np.bincount(mnist.y_test).tolist()[:3] == [980, 1135, 1032]


def test_good_small_file_loads(tmp_path):
    m = read_npz(write_npz(tmp_path / "m.npz"), expected=SMALL)
    assert m.x_test.shape == (3, 28, 28)


@pytest.mark.parametrize("kwargs, message", [
    ({"shapes": {**SMALL, "x_test": (3, 27, 28)}}, "shape"),
    ({"dtype": np.float32}, "dtype"),
    ({"max_label": 12}, "labels outside"),
    ({"shapes": {k: v for k, v in SMALL.items() if k != "y_train"}}, "missing"),
])
def test_invalid_files_are_rejected_with_the_reason(tmp_path, kwargs, message):
    path = write_npz(tmp_path / "m.npz", **kwargs)
    with pytest.raises(MissingDataError, match=message):
        read_npz(path, expected=SMALL)


def test_wrong_shape_against_the_real_contract(tmp_path):
    with pytest.raises(MissingDataError, match="x_train has shape"):
        read_npz(write_npz(tmp_path / "m.npz"))


def test_corrupt_file_names_the_path(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(MissingDataError, match="bad.npz"):
        read_npz(bad)


def test_missing_everywhere_lists_every_place(tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    with pytest.raises(MissingDataError) as err:
        load_mnist([a, b], allow_download=False)
    assert str(a) in str(err.value) and str(b) in str(err.value)


def test_env_var_is_searched_first(tmp_path, monkeypatch):
    from pipeline import config
    monkeypatch.setenv("MNIST_NPZ", str(tmp_path / "env.npz"))
    assert config.mnist_candidates()[0] == tmp_path / "env.npz"
