"""Reference for W2A1 "Residual_Networks" (Keras), course version v1 2021 (docs/course_facts.md §4.1).

Same function names, signatures, layer order and initializers as the course notebook, so the model
this module builds and a correct student's model have identical per-layer summaries
(``grader.keras_summary.summary``) and identical parameter counts (23,600,006 total, 23,546,886
trainable, 53,120 non-trainable), and the blocks give the course's published numbers on the
course's fixed inputs.

Keras flavour: the course code is Keras 2 (``tensorflow.keras`` before Keras 3). This module uses
``tf_keras`` (Keras 2 packaged for TF >= 2.16) directly, which is what ``tensorflow.keras`` resolves
to when ``TF_USE_LEGACY_KERAS=1``; importing it sets that variable (if unset) so a TensorFlow
imported afterwards in this process agrees. Importing ``tf_keras`` directly keeps the reference
correct even in a process whose ``tensorflow.keras`` already resolved to Keras 3.

Faithful course quirks, kept on purpose (they are what students' models do):

* ``ResNet50`` calls the blocks with their default ``training=True``, so every block's
  BatchNormalization is wired with ``training=True`` in the functional graph and normalizes with
  batch statistics even in ``predict``/``evaluate``. Stage 1's BatchNormalization gets no
  ``training`` argument (Keras' learning phase decides).
* Convolutions keep Keras' default bias (``use_bias=True``), although BatchNormalization follows.
* ``batch_norm`` (every function): the class of the BatchNormalization layers, called as
  ``batch_norm(axis=3)``: Keras's by default; the 2024 course version's own layer (epsilon 1e-6,
  momentum 0.9, batch statistics from tf.nn.moments when training) for that version.
* Every convolution uses ``initializer(seed=0)`` (or ``glorot_uniform(seed=0)``). Seeded
  initializers are stateless in Keras >= 2.15 (tf_keras included), so equal-shaped kernels start out
  equal (e.g. a conv block's third and shortcut convolutions in stage 2, and the same convolution of
  every identity block of a stage), and a correct student's freshly built model has exactly this
  model's initial weights.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras  # noqa: E402  (after the environment variable, on purpose)
from tf_keras.initializers import glorot_uniform, random_uniform  # noqa: E402
from tf_keras.layers import (  # noqa: E402
    Activation,
    Add,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Flatten,
    Input,
    MaxPooling2D,
    ZeroPadding2D,
)
from tf_keras.models import Model  # noqa: E402

__all__ = ["identity_block", "convolutional_block", "ResNet50", "STAGES"]

Initializer = Callable[..., Any]

# (filters, conv-block stride s, number of identity blocks after the conv block); f = 3 throughout.
STAGES: tuple[tuple[tuple[int, int, int], int, int], ...] = (
    ((64, 64, 256), 1, 2),
    ((128, 128, 512), 2, 3),
    ((256, 256, 1024), 2, 5),
    ((512, 512, 2048), 2, 2),
)


def _bn(X: Any, training: Any, batch_norm: Callable[..., Any]) -> Any:
    return batch_norm(axis=3)(X, training=training)


def identity_block(
    X: Any,
    f: int,
    filters: Sequence[int],
    training: Any = True,
    initializer: Initializer = random_uniform,
    batch_norm: Callable[..., Any] = BatchNormalization,
) -> Any:
    """The course's identity block: three convolutions (1x1 valid, fxf same, 1x1 valid), each
    followed by BatchNormalization (the first two also by ReLU), then Add()([X, X_shortcut]) and ReLU.

    X: (m, n_H, n_W, n_C) tensor (eager or symbolic); filters: [F1, F2, F3] with F3 == n_C.
    Returns a tensor of X's shape.
    """
    F1, F2, F3 = filters
    X_shortcut = X

    X = Conv2D(F1, kernel_size=1, strides=(1, 1), padding="valid", kernel_initializer=initializer(seed=0))(X)
    X = _bn(X, training, batch_norm)
    X = Activation("relu")(X)

    X = Conv2D(F2, kernel_size=f, strides=(1, 1), padding="same", kernel_initializer=initializer(seed=0))(X)
    X = _bn(X, training, batch_norm)
    X = Activation("relu")(X)

    X = Conv2D(F3, kernel_size=1, strides=(1, 1), padding="valid", kernel_initializer=initializer(seed=0))(X)
    X = _bn(X, training, batch_norm)

    X = Add()([X, X_shortcut])
    return Activation("relu")(X)


def convolutional_block(
    X: Any,
    f: int,
    filters: Sequence[int],
    s: int = 2,
    training: Any = True,
    initializer: Initializer = glorot_uniform,
    batch_norm: Callable[..., Any] = BatchNormalization,
) -> Any:
    """The course's convolutional block: the identity block's main path with stride (s, s) on its
    first 1x1 convolution, and a shortcut Conv2D(F3, 1x1, stride (s, s), valid) -> BatchNormalization;
    then Add()([X, X_shortcut]) (main path first) and ReLU.

    The shortcut convolution is created after the main path's third one and the two
    BatchNormalizations in the same order, which gives the course's layer order
    ``Conv2D(main 3), Conv2D(shortcut), BN, BN, Add, Activation``.

    Returns (m, ceil(n_H / s), ceil(n_W / s), F3).
    """
    F1, F2, F3 = filters
    X_shortcut = X

    X = Conv2D(F1, kernel_size=1, strides=(s, s), padding="valid", kernel_initializer=initializer(seed=0))(X)
    X = _bn(X, training, batch_norm)
    X = Activation("relu")(X)

    X = Conv2D(F2, kernel_size=f, strides=(1, 1), padding="same", kernel_initializer=initializer(seed=0))(X)
    X = _bn(X, training, batch_norm)
    X = Activation("relu")(X)

    X = Conv2D(F3, kernel_size=1, strides=(1, 1), padding="valid", kernel_initializer=initializer(seed=0))(X)
    X = _bn(X, training, batch_norm)

    X_shortcut = Conv2D(
        F3, kernel_size=1, strides=(s, s), padding="valid", kernel_initializer=initializer(seed=0)
    )(X_shortcut)
    X_shortcut = _bn(X_shortcut, training, batch_norm)

    X = Add()([X, X_shortcut])
    return Activation("relu")(X)


def ResNet50(input_shape: tuple[int, int, int] = (64, 64, 3), classes: int = 6,
             batch_norm: Callable[..., Any] = BatchNormalization) -> tf_keras.Model:
    """The course's ResNet50 (177 layers), an uncompiled functional tf_keras Model.

    ZeroPadding2D((3,3)) -> Conv2D(64, 7x7, s2) -> BN -> ReLU -> MaxPooling2D((3,3), s2), then the
    four stages of ``STAGES`` (a convolutional block and identity blocks, f=3, default
    ``training=True`` as in the course), AveragePooling2D((2,2)) -> Flatten -> Dense(softmax).

    batch_norm: the normalisation layer class (here and in the blocks): Keras's (v1 2021 to v3
    2023), or the 2024 version's own layer (exercises/resnet50/trusted_layers_2024.py), so that
    the 2024 notebooks are compared with a reference that normalises as theirs does.
    """
    X_input = Input(input_shape)
    X = ZeroPadding2D((3, 3))(X_input)

    X = Conv2D(64, (7, 7), strides=(2, 2), kernel_initializer=glorot_uniform(seed=0))(X)
    X = batch_norm(axis=3)(X)
    X = Activation("relu")(X)
    X = MaxPooling2D((3, 3), strides=(2, 2))(X)

    for filters, s, n_identity in STAGES:
        X = convolutional_block(X, f=3, filters=list(filters), s=s, batch_norm=batch_norm)
        for _ in range(n_identity):
            X = identity_block(X, 3, list(filters), batch_norm=batch_norm)

    X = AveragePooling2D((2, 2))(X)
    X = Flatten()(X)
    X = Dense(classes, activation="softmax", kernel_initializer=glorot_uniform(seed=0))(X)

    return Model(inputs=X_input, outputs=X)
