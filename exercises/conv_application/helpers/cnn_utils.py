"""Data helpers the course's Convolution_model_Application notebook imports (``from cnn_utils import *``).

Same names, file locations and return values as the course's module, for the functions the
notebook uses. The files are looked up relative to the working directory, as in the course:

- ``datasets/train_happy.h5`` (keys ``train_set_x``, ``train_set_y``) and ``datasets/test_happy.h5``
  (keys ``test_set_x``, ``test_set_y``, ``list_classes``): the Happy House faces, label 1 = smiling;
- ``datasets/train_signs.h5`` and ``datasets/test_signs.h5``, with the same keys: the SIGNS hands.

Both loaders return ``X_train_orig`` (m, 64, 64, 3) uint8, ``Y_train_orig`` (1, m),
``X_test_orig``, ``Y_test_orig`` (1, m_test) and ``classes``; the notebook scales X by 1/255 and
transposes Y (Happy) or one-hot encodes it (SIGNS).
"""
import h5py
import numpy as np


def _load(name):
    with h5py.File("datasets/train_{}.h5".format(name), "r") as train_dataset:
        train_set_x_orig = np.array(train_dataset["train_set_x"][:])
        train_set_y_orig = np.array(train_dataset["train_set_y"][:])

    with h5py.File("datasets/test_{}.h5".format(name), "r") as test_dataset:
        test_set_x_orig = np.array(test_dataset["test_set_x"][:])
        test_set_y_orig = np.array(test_dataset["test_set_y"][:])
        classes = np.array(test_dataset["list_classes"][:])

    train_set_y_orig = train_set_y_orig.reshape((1, train_set_y_orig.shape[0]))
    test_set_y_orig = test_set_y_orig.reshape((1, test_set_y_orig.shape[0]))

    return train_set_x_orig, train_set_y_orig, test_set_x_orig, test_set_y_orig, classes


def load_happy_dataset():
    """The Happy House dataset: (X_train_orig, Y_train_orig, X_test_orig, Y_test_orig, classes)."""
    return _load("happy")


def load_signs_dataset():
    """The SIGNS dataset: (X_train_orig, Y_train_orig, X_test_orig, Y_test_orig, classes)."""
    return _load("signs")


def convert_to_one_hot(Y, C):
    """Labels Y (any shape holding m integers in [0, C)) -> one-hot matrix of shape (C, m)."""
    return np.eye(C)[np.asarray(Y).reshape(-1)].T
