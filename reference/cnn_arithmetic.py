"""Reference for the cnn_arithmetic exercise: the lecture's numbers about convolutional networks.

Course 4, weeks 1-2 lectures (not a course notebook): output sizes, parameter counts and
multiplication counts of convolutions, the Inception module, the MobileNet v2 bottleneck and the
LeNet-5-style table of week 1. The formulas here are checked in tests/ against Keras (shapes and
``count_params`` of the layers built with the same sizes), against torch's FLOP counter
(multiplications) and, for the bottleneck, against ``keras.applications.MobileNetV2``.

Conventions (the template notebook states them to students):

* Convolutions are "valid" after an explicit zero padding ``pad`` on each side; a "same"
  convolution (stride 1, odd f) uses ``pad = (f - 1) // 2``.
* A multiplication count is one per weight per output position: ``n_H' * n_W' * n_C' * f*f*n_C``
  (biases add, they do not multiply).
* A depthwise-separable convolution is a depthwise f x f convolution (one filter per input
  channel) and then a pointwise 1 x 1 convolution to n_C' channels, both "valid", stride 1.
* The lecture's LeNet-5-style table (32x32x3 input) prints several wrong parameter counts (208,
  416, 48,001, 10,081, 841); the true counts, which Keras gives, are 608, 3,216, 48,120, 10,164 and
  850 (62,958 in all). ``LECTURE_PRINTED`` keeps the printed ones for the feedback.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tf_keras  # noqa: E402  (after the environment variable, on purpose)
from tf_keras import layers  # noqa: E402

__all__ = ["conv_output_shape", "same_padding", "conv_params", "conv_multiplies",
           "depthwise_separable_multiplies", "inception_module", "mobilenet_v2_bottleneck",
           "lenet5_param_table", "lenet5", "block_model", "LECTURE_PRINTED", "INCEPTION_BRANCHES"]

# The Inception module of the lecture (GoogLeNet's 3a): output channels of each branch, in the
# order they are concatenated: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max-pool -> 1x1.
INCEPTION_BRANCHES = {"1x1": 64, "3x3_reduce": 96, "3x3": 128, "5x5_reduce": 16, "5x5": 32, "pool_proj": 32}

# Parameter counts as the lecture's table prints them (wrong: see the module docstring).
LECTURE_PRINTED = {"CONV1": 208, "CONV2": 416, "FC3": 48001, "FC4": 10081, "SOFTMAX": 841}


def conv_output_shape(n_h: int, n_w: int, f: int, pad: int, stride: int) -> tuple[int, int]:
    """(n_H', n_W') = floor((n + 2 pad - f) / stride) + 1 on each axis."""
    return (n_h + 2 * pad - f) // stride + 1, (n_w + 2 * pad - f) // stride + 1


def same_padding(f: int) -> int:
    """The pad that keeps the size with stride 1 (odd f)."""
    return (f - 1) // 2


def conv_params(f: int, n_c_prev: int, n_c: int) -> int:
    """Weights f*f*n_C_prev per filter, plus one bias, for n_C filters."""
    return (f * f * n_c_prev + 1) * n_c


def conv_multiplies(n_h: int, n_w: int, n_c_prev: int, f: int, n_c: int, pad: int = 0, stride: int = 1) -> int:
    """Multiplications of one f x f convolution with n_C filters on an n_H x n_W x n_C_prev input."""
    out_h, out_w = conv_output_shape(n_h, n_w, f, pad, stride)
    return out_h * out_w * n_c * f * f * n_c_prev


def depthwise_separable_multiplies(n_h: int, n_w: int, n_c_prev: int, f: int, n_c: int) -> dict[str, int]:
    """Multiplications of a normal f x f convolution and of its depthwise-separable replacement."""
    out_h, out_w = conv_output_shape(n_h, n_w, f, 0, 1)
    depthwise = out_h * out_w * n_c_prev * f * f
    pointwise = out_h * out_w * n_c_prev * n_c
    return {"normal": out_h * out_w * n_c * f * f * n_c_prev, "depthwise": depthwise,
            "pointwise": pointwise, "total": depthwise + pointwise}


def inception_module(X: Any) -> Any:
    """The lecture's Inception module on a Keras tensor X: four branches, each ReLU-activated,
    concatenated along channels (64 + 128 + 32 + 32 = 256 channels, same height and width)."""
    b = INCEPTION_BRANCHES

    def conv(x: Any, filters: int, f: int) -> Any:
        return layers.Conv2D(filters, f, padding="same", activation="relu")(x)

    branch1 = conv(X, b["1x1"], 1)
    branch3 = conv(conv(X, b["3x3_reduce"], 1), b["3x3"], 3)
    branch5 = conv(conv(X, b["5x5_reduce"], 1), b["5x5"], 5)
    pooled = layers.MaxPooling2D(3, strides=1, padding="same")(X)
    branch_pool = conv(pooled, b["pool_proj"], 1)
    return layers.Concatenate(axis=-1)([branch1, branch3, branch5, branch_pool])


def mobilenet_v2_bottleneck(X: Any, out_channels: int, expansion: int = 6) -> Any:
    """MobileNet v2's bottleneck block (stride 1), as keras.applications.MobileNetV2 builds it:
    1x1 expansion to expansion*n_C, depthwise 3x3, 1x1 linear projection to out_channels; every
    convolution without bias and followed by BatchNormalization, ReLU6 after the first two; the
    input added back (residual) when out_channels equals the input's channels."""
    n_c = X.shape[-1]

    def bn(x: Any) -> Any:
        return layers.BatchNormalization(epsilon=1e-3, momentum=0.999)(x)

    x = layers.ReLU(6.0)(bn(layers.Conv2D(expansion * n_c, 1, padding="same", use_bias=False)(X)))
    x = layers.ReLU(6.0)(bn(layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)))
    x = bn(layers.Conv2D(out_channels, 1, padding="same", use_bias=False)(x))
    return layers.Add()([X, x]) if n_c == out_channels else x


def block_model(block: Any, input_shape: tuple[int, ...], **kwargs: Any) -> Any:
    """A Keras Model around a block function: Input(input_shape) -> block(X, **kwargs)."""
    X = layers.Input(shape=tuple(input_shape))
    return tf_keras.Model(X, block(X, **kwargs))


def lenet5() -> Any:
    """The lecture's LeNet-5-style network on 32x32x3: CONV1 (8 filters 5x5), POOL1 (max 2x2),
    CONV2 (16 filters 5x5), POOL2, FC3 (120), FC4 (84), SOFTMAX (10)."""
    return tf_keras.Sequential([
        layers.Input(shape=(32, 32, 3)),
        layers.Conv2D(8, 5, activation="relu", name="CONV1"),
        layers.MaxPooling2D(2, name="POOL1"),
        layers.Conv2D(16, 5, activation="relu", name="CONV2"),
        layers.MaxPooling2D(2, name="POOL2"),
        layers.Flatten(name="flatten"),
        layers.Dense(120, activation="relu", name="FC3"),
        layers.Dense(84, activation="relu", name="FC4"),
        layers.Dense(10, activation="softmax", name="SOFTMAX"),
    ])


def lenet5_param_table() -> list[tuple[str, tuple[int, ...], int, int]]:
    """The lecture's table, with the true counts: (layer, activation shape, activation size,
    parameters) for INPUT, CONV1, POOL1, CONV2, POOL2, FC3, FC4, SOFTMAX. Activation shapes are
    (n_H, n_W, n_C) for images and (n,) for vectors."""
    rows: list[tuple[str, tuple[int, ...], int, int]] = [("INPUT", (32, 32, 3), 32 * 32 * 3, 0)]
    shape = (32, 32, 3)
    for name, kind, size in (("CONV1", "conv", 8), ("POOL1", "pool", 0), ("CONV2", "conv", 16),
                             ("POOL2", "pool", 0), ("FC3", "fc", 120), ("FC4", "fc", 84), ("SOFTMAX", "fc", 10)):
        n_in = 1
        for d in shape:
            n_in *= d
        if kind == "conv":
            params = conv_params(5, shape[2], size)
            shape = (*conv_output_shape(shape[0], shape[1], 5, 0, 1), size)
        elif kind == "pool":
            params = 0
            shape = (*conv_output_shape(shape[0], shape[1], 2, 0, 2), shape[2])
        else:
            params = (n_in + 1) * size
            shape = (size,)
        activation_size = 1
        for d in shape:
            activation_size *= d
        rows.append((name, shape, activation_size, params))
    return rows
