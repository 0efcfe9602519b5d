"""exercises/resnet50/make_signs_standin.py, read back with the course's loader (helpers/resnets_utils.py).

The stand-in must look like SIGNS to the notebook (docs/course_facts.md §4.3): the same files, keys,
dtypes and shapes, 1080 train and 120 test images, 20 test images per class, classes 0..5,
``load_dataset()`` returning Y as (1, m) and ``convert_to_one_hot(Y, 6).T`` giving (m, 6).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest

EXERCISE = Path(__file__).resolve().parents[1] / "exercises" / "resnet50"


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


maker = _module(EXERCISE / "make_signs_standin.py")
resnets_utils = _module(EXERCISE / "helpers" / "resnets_utils.py")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A work folder with datasets/train_signs.h5 and datasets/test_signs.h5, as the notebook sees it."""
    work = tmp_path_factory.mktemp("work")
    maker.make_signs(work / "datasets")
    return work


@pytest.fixture(scope="module")
def loaded(generated):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(generated)  # the course's loader reads datasets/*.h5 relative to the working directory
        return resnets_utils.load_dataset()


def test_files_have_the_signs_keys_and_dtypes(generated):
    with h5py.File(generated / "datasets" / "train_signs.h5", "r") as f:
        assert set(f) == {"train_set_x", "train_set_y", "list_classes"}
        assert (f["train_set_x"].shape, f["train_set_x"].dtype) == ((1080, 64, 64, 3), np.uint8)
        assert (f["train_set_y"].shape, f["train_set_y"].dtype) == ((1080,), np.int64)
    with h5py.File(generated / "datasets" / "test_signs.h5", "r") as f:
        assert set(f) == {"test_set_x", "test_set_y", "list_classes"}
        assert (f["test_set_x"].shape, f["test_set_x"].dtype) == ((120, 64, 64, 3), np.uint8)
        assert (f["test_set_y"].shape, f["test_set_y"].dtype) == ((120,), np.int64)
        assert f["list_classes"].dtype == np.int64
        assert f["list_classes"][:].tolist() == [0, 1, 2, 3, 4, 5]


def test_course_loader_shapes_and_dtypes(loaded):
    X_train, Y_train, X_test, Y_test, classes = loaded
    assert (X_train.shape, X_train.dtype) == ((1080, 64, 64, 3), np.uint8)
    assert (X_test.shape, X_test.dtype) == ((120, 64, 64, 3), np.uint8)
    assert Y_train.shape == (1, 1080) and Y_test.shape == (1, 120)
    assert Y_train.dtype == Y_test.dtype == np.int64
    assert classes.tolist() == [0, 1, 2, 3, 4, 5]


def test_notebook_preprocessing(loaded):
    X_train, Y_train, X_test, Y_test, _ = loaded
    # The notebook: X / 255.; Y = convert_to_one_hot(Y_orig, 6).T
    Y_train_1h = resnets_utils.convert_to_one_hot(Y_train, 6).T
    Y_test_1h = resnets_utils.convert_to_one_hot(Y_test, 6).T
    assert Y_train_1h.shape == (1080, 6) and Y_test_1h.shape == (120, 6)
    assert np.array_equal(Y_train_1h.argmax(axis=1), Y_train[0])
    assert np.all(Y_test_1h.sum(axis=1) == 1)
    assert 0.0 <= (X_train / 255.0).min() and (X_train / 255.0).max() <= 1.0


def test_convert_to_one_hot():
    Y = np.array([[2, 0, 5]])
    assert np.array_equal(resnets_utils.convert_to_one_hot(Y, 6), np.eye(6)[[2, 0, 5]].T)


def test_class_balance(loaded):
    _, Y_train, _, Y_test, _ = loaded
    assert np.bincount(Y_test[0], minlength=6).tolist() == [20] * 6
    assert np.bincount(Y_train[0], minlength=6).tolist() == [180] * 6
    # Shuffled like SIGNS, not sorted by class.
    assert len(set(Y_train[0][:30].tolist())) > 3 and len(set(Y_test[0][:30].tolist())) > 3


def test_images_differ_between_classes(loaded):
    X_train, Y_train, X_test, Y_test, _ = loaded
    # Each class has its own mean "hand" shape: a nearest-class-mean classifier fit on the training
    # images (brightness relative to the image's own mean and spread) labels most test images right
    # (chance is 1/6; 0.92 with the default seed), so the classes differ and the test set is the same task.
    def shape(X):
        gray = X.astype(np.float64).mean(axis=3)
        centred = gray - gray.mean(axis=(1, 2), keepdims=True)
        return (centred / centred.std(axis=(1, 2), keepdims=True)).reshape(len(X), -1)

    train, test = shape(X_train), shape(X_test)
    means = np.stack([train[Y_train[0] == c].mean(axis=0) for c in range(6)])
    predicted = ((test[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
    assert (predicted == Y_test[0]).mean() > 0.75
    X = np.concatenate([X_train, X_test])
    # No image appears twice, within or across classes, and test images are not copies of train ones.
    flat = X.reshape(len(X), -1)
    assert len(np.unique(flat, axis=0)) == len(X)


def test_deterministic(tmp_path, generated):
    maker.make_signs(tmp_path)
    for name in ("train_signs.h5", "test_signs.h5"):
        assert (tmp_path / name).read_bytes() == (generated / "datasets" / name).read_bytes()


def test_script_writes_the_notebooks_folder_under_the_given_root(tmp_path):
    assert maker.main(["--out", str(tmp_path / "out"), "--seed", "7"]) == 0
    with h5py.File(tmp_path / "out" / "datasets" / "test_signs.h5", "r") as f:
        assert f["test_set_x"].shape == (120, 64, 64, 3)
    assert maker.DEFAULT_ROOT == EXERCISE
