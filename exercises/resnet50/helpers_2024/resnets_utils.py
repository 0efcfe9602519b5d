"""Data helpers the course's Residual_Networks notebook imports (``from resnets_utils import *``).

The 2024 course version (docs/course_facts.md §4.1, "Later variant with the course's own
BatchNormalization"): besides the data helpers, the module defines its own layer class
``BatchNormalization(Layer)``, which the notebook uses instead of Keras's (it no longer imports it
from tensorflow.keras.layers). Written from the facts; ``Layer`` is tf-keras's (``tensorflow.keras``
under TF_USE_LEGACY_KERAS=1, the flavour of the notebook's other layers), as the course's
``keras.layers`` was in its Keras-2 environment. The grader never builds this class: a model that
contains it is rebuilt with exercises/resnet50/trusted_layers_2024.py. The SIGNS files are looked up relative to the working directory, as in the course:
``datasets/train_signs.h5`` (keys ``train_set_x``, ``train_set_y``) and ``datasets/test_signs.h5``
(keys ``test_set_x``, ``test_set_y``, ``list_classes``).
"""
import h5py
import numpy as np
import tensorflow as tf
from tensorflow.keras.layers import Layer


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


class BatchNormalization(Layer):
    """beta, gamma (trainable), moving_mean, moving_variance (not) of shape (input_shape[axis],);
    batch statistics (tf.nn.moments) and moving averages when training, the moving statistics
    otherwise; gamma * (x - mean) / sqrt(var + 1e-6) + beta."""

    def __init__(self, axis=-1, momentum=0.90, name=None, synchronized=False, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = axis
        self.momentum = momentum

    def build(self, input_shape):
        shape = (input_shape[self.axis],)
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros", trainable=True)
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones", trainable=True)
        self.moving_mean = self.add_weight(name="moving_mean", shape=shape, initializer="zeros", trainable=False)
        self.moving_variance = self.add_weight(name="moving_variance", shape=shape, initializer="ones",
                                               trainable=False)

    def call(self, inputs, training=None):
        if training:
            axes = [0, 1, 2] if len(inputs.shape) == 4 else [0]
            mean, variance = tf.nn.moments(inputs, axes=axes)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1 - self.momentum))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return self.gamma * (inputs - mean) / tf.sqrt(variance + 1e-6) + self.beta
