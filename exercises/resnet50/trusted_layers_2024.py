"""The grader's trusted implementation of the layer that the 2024 course version's own
``resnets_utils.py`` defines (docs/course_facts.md §4.1, "Later variant with the course's own
BatchNormalization"), written from those facts.

Used by the grader (the 2024 reference model, reference/resnet50.py with ``batch_norm=``) and by
the model worker, which rebuilds a student's model naming ``BatchNormalization`` from module
``resnets_utils`` with this class (spec.toml [[versions.graded_variant]] trusted_layers), never
with the student's code. Self-contained (the worker has no reference/): tf_keras and TensorFlow only.

The class says it is ``resnets_utils.BatchNormalization`` (``__module__``), so the reference model's
description names the same class and module as a student's and crosses to the worker the same way.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
from tf_keras.layers import Layer  # noqa: E402

EPSILON = 1e-6
COURSE_MODULE = "resnets_utils"


class BatchNormalization(Layer):
    """Batch normalisation as the 2024 course layer computes it: four weights of shape
    (input_shape[axis],): beta (zeros) and gamma (ones), trainable; moving_mean (zeros) and
    moving_variance (ones), not trainable. Training: the batch's mean and variance (tf.nn.moments
    over [0, 1, 2] for 4-D inputs, [0] for 2-D), each moving statistic updated to
    stat * momentum + new * (1 - momentum); otherwise the moving statistics. Output:
    gamma * (x - mean) / sqrt(var + 1e-6) + beta."""

    __module__ = COURSE_MODULE

    def __init__(self, axis: int = -1, momentum: float = 0.90, name: str | None = None,
                 synchronized: bool = False, **kwargs: Any):
        super().__init__(name=name, **kwargs)
        self.axis = axis
        self.momentum = momentum

    def build(self, input_shape: Any) -> None:
        shape = (int(input_shape[self.axis]),)
        self.beta = self.add_weight(name="beta", shape=shape, initializer="zeros", trainable=True)
        self.gamma = self.add_weight(name="gamma", shape=shape, initializer="ones", trainable=True)
        self.moving_mean = self.add_weight(name="moving_mean", shape=shape, initializer="zeros", trainable=False)
        self.moving_variance = self.add_weight(name="moving_variance", shape=shape, initializer="ones",
                                               trainable=False)
        super().build(input_shape)

    def call(self, inputs: Any, training: Any = None) -> Any:
        if training:
            axes = [0, 1, 2] if len(inputs.shape) == 4 else [0]
            mean, variance = tf.nn.moments(inputs, axes=axes)
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1 - self.momentum))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return self.gamma * (inputs - mean) / tf.sqrt(variance + EPSILON) + self.beta
