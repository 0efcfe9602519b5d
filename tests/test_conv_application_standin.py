"""exercises/conv_application/make_standins.py, read back with the notebook's loaders (helpers/cnn_utils.py).

The Happy House stand-in must look like the course's files to the notebook (docs/course_facts.md §3):
the same files, keys, dtypes and shapes, 600 train and 150 test pictures of 64x64x3, labels 0/1,
``load_happy_dataset()`` returning Y as (1, m) rows (the notebook transposes them). The SIGNS files
are the resnet50 exercise's stand-in, byte for byte (one source of truth), read by
``load_signs_dataset()``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1] / "exercises"
EXERCISE = ROOT / "conv_application"


def _module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


maker = _module(EXERCISE / "make_standins.py", "conv_application_make_standins")
cnn_utils = _module(EXERCISE / "helpers" / "cnn_utils.py", "conv_application_cnn_utils")
signs_maker = _module(ROOT / "resnet50" / "make_signs_standin.py", "resnet50_make_signs_standin")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A stand-in root as the grader makes it (make_standins.py --out ROOT): ROOT/datasets/*.h5."""
    root = tmp_path_factory.mktemp("standin")
    assert maker.main(["--out", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def happy(generated):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(generated)  # the course's loaders read datasets/*.h5 relative to the working directory
        return cnn_utils.load_happy_dataset()


def test_script_writes_both_datasets_into_the_notebooks_folder(generated):
    assert sorted(p.name for p in (generated / "datasets").iterdir()) == [
        "test_happy.h5", "test_signs.h5", "train_happy.h5", "train_signs.h5"]
    assert maker.DEFAULT_ROOT == EXERCISE and maker.FOLDER == "datasets"


def test_happy_files_have_the_courses_keys_and_dtypes(generated):
    with h5py.File(generated / "datasets" / "train_happy.h5", "r") as f:
        assert set(f) == {"train_set_x", "train_set_y", "list_classes"}
        assert (f["train_set_x"].shape, f["train_set_x"].dtype) == ((600, 64, 64, 3), np.uint8)
        assert (f["train_set_y"].shape, f["train_set_y"].dtype) == ((600,), np.int64)
    with h5py.File(generated / "datasets" / "test_happy.h5", "r") as f:
        assert set(f) == {"test_set_x", "test_set_y", "list_classes"}
        assert (f["test_set_x"].shape, f["test_set_x"].dtype) == ((150, 64, 64, 3), np.uint8)
        assert (f["test_set_y"].shape, f["test_set_y"].dtype) == ((150,), np.int64)
        assert f["list_classes"].dtype == np.int64 and f["list_classes"][:].tolist() == [0, 1]


def test_load_happy_dataset_shapes_and_the_notebooks_preprocessing(happy):
    X_train_orig, Y_train_orig, X_test_orig, Y_test_orig, classes = happy
    assert (X_train_orig.shape, X_train_orig.dtype) == ((600, 64, 64, 3), np.uint8)
    assert (X_test_orig.shape, X_test_orig.dtype) == ((150, 64, 64, 3), np.uint8)
    assert Y_train_orig.shape == (1, 600) and Y_test_orig.shape == (1, 150)
    assert classes.tolist() == [0, 1]
    # The notebook: X / 255.; Y = Y_orig.T
    assert Y_train_orig.T.shape == (600, 1) and Y_test_orig.T.shape == (150, 1)
    X_train = X_train_orig / 255.0
    assert 0.0 <= X_train.min() and X_train.max() <= 1.0
    assert X_train_orig.min() < 40 and X_train_orig.max() > 200  # the whole range is used


def test_happy_labels_are_balanced_and_shuffled(happy):
    _, Y_train, _, Y_test, _ = happy
    assert set(np.unique(Y_train)) == set(np.unique(Y_test)) == {0, 1}
    assert np.bincount(Y_train[0]).tolist() == [300, 300]
    assert np.bincount(Y_test[0]).tolist() == [75, 75]
    assert 0 < Y_train[0][:20].sum() < 20 and 0 < Y_test[0][:20].sum() < 20  # not sorted by class


def test_happy_pictures_are_distinct_faces(happy):
    X_train, _, X_test, _, _ = happy
    X = np.concatenate([X_train, X_test])
    assert len(np.unique(X.reshape(len(X), -1), axis=0)) == len(X)
    # The face is in the middle, the background at the corners: they differ in colour on average.
    centre = X[:, 28:36, 28:36].astype(float).mean(axis=(1, 2))
    corner = X[:, :4, :4].astype(float).mean(axis=(1, 2))
    assert np.median(np.abs(centre - corner).sum(axis=1)) > 30


def test_happy_classes_differ_in_the_mouth_only(happy):
    # A nearest-class-mean classifier fit on the training pictures' edges (brightness-normalised)
    # labels most test pictures right from the lower middle of the face, where the mouth is (0.79
    # with the default seed), and does no better than chance from the upper part (eyes, hair,
    # forehead: 0.49), which the class does not change.
    X_train, Y_train, X_test, Y_test, _ = happy

    def accuracy(rows: slice) -> float:
        def features(X):
            gray = X.astype(np.float64).mean(axis=3)[:, rows, 16:48]
            edges = np.abs(np.diff(gray, axis=1))
            return (edges / (edges.std(axis=(1, 2), keepdims=True) + 1e-9)).reshape(len(X), -1)
        train, test = features(X_train), features(X_test)
        means = np.stack([train[Y_train[0] == c].mean(axis=0) for c in (0, 1)])
        predicted = ((test[:, None, :] - means[None]) ** 2).sum(axis=2).argmin(axis=1)
        return float((predicted == Y_test[0]).mean())

    assert accuracy(slice(36, 56)) > 0.7
    assert abs(accuracy(slice(5, 28)) - 0.5) < 0.1


def test_happy_is_deterministic(tmp_path, generated):
    maker.make_happy(tmp_path)
    for name in ("train_happy.h5", "test_happy.h5"):
        assert (tmp_path / name).read_bytes() == (generated / "datasets" / name).read_bytes()
    other = maker.build_happy(seed=maker.SEED + 1)
    assert not np.array_equal(other["test_set_x"], maker.build_happy()["test_set_x"])


def test_signs_files_are_the_resnet50_standin(tmp_path, generated):
    signs_maker.make_signs(tmp_path)
    for name in ("train_signs.h5", "test_signs.h5"):
        assert (tmp_path / name).read_bytes() == (generated / "datasets" / name).read_bytes()


def test_load_signs_dataset_and_one_hot(generated):
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(generated)
        X_train_orig, Y_train_orig, X_test_orig, Y_test_orig, classes = cnn_utils.load_signs_dataset()
    assert X_train_orig.shape == (1080, 64, 64, 3) and X_test_orig.shape == (120, 64, 64, 3)
    assert Y_train_orig.shape == (1, 1080) and Y_test_orig.shape == (1, 120)
    assert classes.tolist() == [0, 1, 2, 3, 4, 5]
    Y_train = cnn_utils.convert_to_one_hot(Y_train_orig, 6).T
    assert Y_train.shape == (1080, 6) and np.array_equal(Y_train.argmax(axis=1), Y_train_orig[0])
