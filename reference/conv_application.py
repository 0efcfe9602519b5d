"""Reference for W1A2 "Convolution_model_Application" (Keras), the course's 2021+ version
(docs/course_facts.md §3).

Same function names and signatures as the course notebook, and the same layers in the same order
with the same settings, so the models built here and a correct student's have identical per-layer
summaries (``grader.keras_summary.summary``):

* ``happyModel()``: a ``Sequential`` ZeroPadding2D(3) -> Conv2D(32, 7x7, stride 1) ->
  BatchNormalization(axis=3) -> ReLU -> MaxPool2D() -> Flatten -> Dense(1, sigmoid) on 64x64x3
  images: 37,633 parameters, 37,569 trainable, 64 non-trainable (the BatchNormalization's moving
  mean and variance).
* ``convolutional_model(input_shape)``: a functional ``Model`` Conv2D(8, 4x4, s1, same) -> ReLU ->
  MaxPool2D(8x8, s8, same) -> Conv2D(16, 2x2, s1, same) -> ReLU -> MaxPool2D(4x4, s4, same) ->
  Flatten -> Dense(6, softmax): 1,310 parameters on 64x64x3 images.

Like the course, no initializer is seeded (Keras' default GlorotUniform kernels, zero biases): a
freshly built model's weights are random. Checks that compare what two models compute copy one
model's weights into the other first.

Keras flavour: ``tf_keras`` (Keras 2), what ``tensorflow.keras`` is with ``TF_USE_LEGACY_KERAS=1``
(set here, if unset, before TensorFlow can be imported), as in ``reference/resnet50.py``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras  # noqa: E402  (after the environment variable, on purpose)
from tf_keras import layers  # noqa: E402

__all__ = ["happyModel", "convolutional_model", "HAPPY_INPUT_SHAPE", "SIGNS_INPUT_SHAPE", "SIGNS_CLASSES"]

HAPPY_INPUT_SHAPE = (64, 64, 3)
SIGNS_INPUT_SHAPE = (64, 64, 3)
SIGNS_CLASSES = 6


def happyModel() -> tf_keras.Sequential:
    """The course's binary classifier of the Happy House faces (smiling = 1), uncompiled.

    ZEROPAD2D(3) -> CONV2D(32, 7x7, stride 1, valid) -> BATCHNORM(axis 3) -> RELU -> MAXPOOL(2x2)
    -> FLATTEN -> DENSE(1, sigmoid); input 64x64x3.
    """
    return tf_keras.Sequential([
        layers.ZeroPadding2D(padding=3, input_shape=HAPPY_INPUT_SHAPE),
        layers.Conv2D(filters=32, kernel_size=7, strides=1),
        layers.BatchNormalization(axis=3),
        layers.ReLU(),
        layers.MaxPool2D(),
        layers.Flatten(),
        layers.Dense(1, activation="sigmoid"),
    ])


def convolutional_model(input_shape: tuple[int, int, int]) -> tf_keras.Model:
    """The course's SIGNS classifier (6 classes), a functional Model on inputs of `input_shape`, uncompiled.

    CONV2D(8, 4x4, s1, same) -> RELU -> MAXPOOL(8x8, s8, same) -> CONV2D(16, 2x2, s1, same) -> RELU
    -> MAXPOOL(4x4, s4, same) -> FLATTEN -> DENSE(6, softmax).
    """
    input_img = tf_keras.Input(shape=input_shape)
    Z1 = layers.Conv2D(filters=8, kernel_size=4, strides=1, padding="same")(input_img)
    A1 = layers.ReLU()(Z1)
    P1 = layers.MaxPool2D(pool_size=8, strides=8, padding="same")(A1)
    Z2 = layers.Conv2D(filters=16, kernel_size=2, strides=1, padding="same")(P1)
    A2 = layers.ReLU()(Z2)
    P2 = layers.MaxPool2D(pool_size=4, strides=4, padding="same")(A2)
    F = layers.Flatten()(P2)
    outputs = layers.Dense(units=SIGNS_CLASSES, activation="softmax")(F)
    return tf_keras.Model(inputs=input_img, outputs=outputs)
