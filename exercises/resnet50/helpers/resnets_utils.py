"""Data helpers the course's Residual_Networks notebook imports (``from resnets_utils import *``).

Same names, file locations and return values as the course's module; the notebook uses only these
two functions. The SIGNS files are looked up relative to the working directory, as in the course:
``datasets/train_signs.h5`` (keys ``train_set_x``, ``train_set_y``) and ``datasets/test_signs.h5``
(keys ``test_set_x``, ``test_set_y``, ``list_classes``).
"""
import h5py
import numpy as np


def load_dataset():
    """Return X_train_orig (m, 64, 64, 3) uint8, Y_train_orig (1, m), X_test_orig, Y_test_orig (1, m_test)
    and classes (the class labels, 0..5)."""
    with h5py.File("datasets/train_signs.h5", "r") as train_dataset:
        train_set_x_orig = np.array(train_dataset["train_set_x"][:])
        train_set_y_orig = np.array(train_dataset["train_set_y"][:])

    with h5py.File("datasets/test_signs.h5", "r") as test_dataset:
        test_set_x_orig = np.array(test_dataset["test_set_x"][:])
        test_set_y_orig = np.array(test_dataset["test_set_y"][:])
        classes = np.array(test_dataset["list_classes"][:])

    train_set_y_orig = train_set_y_orig.reshape((1, train_set_y_orig.shape[0]))
    test_set_y_orig = test_set_y_orig.reshape((1, test_set_y_orig.shape[0]))

    return train_set_x_orig, train_set_y_orig, test_set_x_orig, test_set_y_orig, classes


def convert_to_one_hot(Y, C):
    """Labels Y (any shape holding m integers in [0, C)) -> one-hot matrix of shape (C, m)."""
    return np.eye(C)[np.asarray(Y).reshape(-1)].T
