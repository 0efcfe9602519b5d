"""grader/model_training.py's promise that lets two course versions share one training.

train_and_score fits and measures a model in training mode only. So a layer called with
training=True computes what the same layer left to inherit it computes, and the ResNet50 training
check (training_mode_only=True) gives the 2021 model, whose blocks pass training=True to every
BatchNormalization, and the 2023 one, which does not, one training between them
(keras_checks.canonical_architecture). These tests hold the recipe to that promise on real
tf_keras models, and the normalisation to tf_keras's own descriptions.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf_keras = pytest.importorskip("tf_keras")

from grader.keras_checks import canonical_architecture  # noqa: E402
from grader.model_training import TrainingBudget, train_and_score  # noqa: E402

L = tf_keras.layers
UNSET = object()
BUDGET = TrainingBudget(epochs=2, batch_size=16, train_examples=48, margin=0.1, seed=1)


def small_model(training: object = UNSET) -> object:
    """Conv -> BatchNormalization -> ReLU -> Dropout -> Dense, seeded; the BatchNormalization and
    Dropout calls pass `training` when it is given."""
    kw = {} if training is UNSET else {"training": training}
    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input(shape=(8, 8, 3))
    x = L.Conv2D(4, 3, kernel_initializer=tf_keras.initializers.GlorotUniform(seed=0))(inp)
    x = L.BatchNormalization(axis=3)(x, **kw)
    x = L.Dropout(0.3)(L.ReLU()(x), **kw)
    out = L.Dense(2, activation="softmax", kernel_initializer=tf_keras.initializers.GlorotUniform(seed=1))(
        L.Flatten()(x))
    return tf_keras.Model(inp, out)


def data() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 8, 8, 3)).astype(np.float32)
    Y = np.eye(2)[(X[:, :4, :, 0].mean(axis=(1, 2)) > 0).astype(int)]
    return X[:60], Y[:60], X[60:], Y[60:]


def trained(model: object) -> tuple[dict[str, float], list[np.ndarray]]:
    def compile_model(m: object) -> None:
        m.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    scores = train_and_score(model, data(), BUDGET, compile_model)
    return scores, model.get_weights()


def test_tf_keras_descriptions_differing_only_in_stated_training_true_are_one_architecture_for_such_a_recipe():
    stated, inherited = small_model(True).to_json(), small_model().to_json()
    assert '"training": true' in stated and '"training"' not in inherited   # the real format, both ways
    assert canonical_architecture(stated) != canonical_architecture(inherited)
    assert canonical_architecture(stated, training_mode_only=True) == canonical_architecture(inherited, True)
    # A layer kept in inference mode is another model, in any recipe.
    assert canonical_architecture(small_model(False).to_json(), True) != canonical_architecture(inherited, True)


@pytest.mark.slow
def test_train_and_score_trains_a_stated_training_true_exactly_like_an_inherited_one():
    (scores_stated, weights_stated), (scores_inherited, weights_inherited) = (
        trained(small_model(True)), trained(small_model()))
    assert scores_stated == scores_inherited
    assert all(np.array_equal(a, b) for a, b in zip(weights_stated, weights_inherited, strict=True))
    # The comparison can tell models apart: BatchNormalization and Dropout kept in inference mode
    # train to other weights.
    _, weights_inference = trained(small_model(False))
    assert not all(np.array_equal(a, b) for a, b in zip(weights_stated, weights_inference, strict=True))
