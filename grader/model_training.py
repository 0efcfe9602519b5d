"""How the grader trains a model: the pieces every exercise's training recipe shares.

This module runs in the model worker (model_server.py), where student-described models are
built; the grader process imports only TrainingBudget from it. An exercise's recipes
(exercises/<name>/model_recipes.py) combine these with the exercise's data loaders.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class TrainingBudget:
    """What the grader trains for: the same for every student and for the reference."""

    epochs: int
    batch_size: int
    train_examples: int     # a fixed, seeded subset of the training set
    margin: float           # the student's accuracy may be this much below the reference's
    seed: int = 1

    def key(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def train_and_score(model: Any, data: tuple[np.ndarray, ...], budget: TrainingBudget,
                    compile_model: Callable[[Any], None]) -> dict[str, float]:
    """Train `model` (freshly built) under `budget`; its accuracy on the test set (every check
    compares that one: measuring the train subset too cost a ResNet50 about 5 s of forward passes
    that nothing read).

    Accuracy is measured with BatchNormalization using batch statistics (training=True), in
    batches of `budget.batch_size`: the 2021 course model hard-wires training=True in its
    blocks while the 2023 one does not, and after a short budget the moving statistics are
    far from converged, so inference-mode accuracy would compare the two notebooks unfairly.
    """
    import tensorflow as tf

    X_train, Y_train, X_test, Y_test = data
    tf.config.experimental.enable_tensor_float_32_execution(False)  # same numbers on GPU as on CPU
    tf.keras.utils.set_random_seed(budget.seed)
    subset = np.random.RandomState(budget.seed).permutation(len(X_train))[:budget.train_examples]
    compile_model(model)
    model.fit(X_train[subset], Y_train[subset], epochs=budget.epochs, batch_size=budget.batch_size,
              shuffle=True, verbose=0)
    return {"test_accuracy": _accuracy(model, X_test, Y_test, budget.batch_size)}


def _accuracy(model: Any, X: np.ndarray, Y: np.ndarray, batch_size: int) -> float:
    hits = 0
    for start in range(0, len(X), batch_size):
        out = np.asarray(model(X[start:start + batch_size], training=True))
        hits += int(np.sum(predicted_right(out, Y[start:start + batch_size])))
    return hits / len(X)


def predicted_right(out: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Which rows of a model's output `out` predict their label in `Y`, as Keras' "accuracy" metric
    decides: a one-unit output (a sigmoid, labels 0/1) by the side of 0.5 it falls on, a wider one
    (one-hot labels) by its largest entry. The argmax of one unit is always 0, so one rule for
    both would score every binary classifier as guessing "0"."""
    if out.shape[-1] == 1:
        return (out.reshape(-1) > 0.5) == (Y.reshape(-1) > 0.5)
    return out.argmax(axis=1) == Y.argmax(axis=1)
