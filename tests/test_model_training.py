"""grader/model_training.py's promise that lets two course versions share one training.

train_and_score fits and measures a model in training mode only. So a BatchNormalization called
with training=True computes what one left to inherit it computes, and the ResNet50 training check
(training_mode_only=True) gives the 2021 model, whose blocks pass training=True to every
BatchNormalization, and the 2023 one, which does not, one training between them
(keras_checks.canonical_architecture). These tests train both ways as the model worker does
(seed, rebuild from the description, recipe) and compare the weights; and they hold the
normalisation to tf_keras's own descriptions, including where it must not apply: a seeded
Dropout called in training mode when the worker rebuilds the model advances its seed, so it
trains differently (a red-team finding against the first version of the normalisation).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
tf_keras = pytest.importorskip("tf_keras")

from grader.boundary import KerasModelConfig  # noqa: E402
from grader.keras_checks import canonical_architecture  # noqa: E402
from grader.keras_models import rebuild  # noqa: E402
from grader.model_training import TrainingBudget, train_and_score  # noqa: E402

L = tf_keras.layers
UNSET = object()
BUDGET = TrainingBudget(epochs=2, batch_size=16, train_examples=48, margin=0.1, seed=1)
TRUSTED_FILE = Path(__file__).resolve().parents[1] / "exercises" / "resnet50" / "trusted_layers_2024.py"


def course_batch_norm() -> type:
    """The grader's implementation of the 2024 course's resnets_utils.BatchNormalization."""
    spec = importlib.util.spec_from_file_location("trusted_layers_2024_test", TRUSTED_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BatchNormalization


def small_model(training: object = UNSET, layer: str = "batch_norm") -> str:
    """Conv -> <layer> -> ReLU -> Dense, as a description; the <layer> call states `training`
    when it is given. layer: "batch_norm" (Keras's), "course_batch_norm" (the 2024 course's, in
    its resnets_utils module) or "seeded_dropout"."""
    kw = {} if training is UNSET else {"training": training}
    make = {"batch_norm": lambda: L.BatchNormalization(axis=3),
            "course_batch_norm": lambda: course_batch_norm()(),
            "seeded_dropout": lambda: L.Dropout(0.5, seed=5)}[layer]
    inp = tf_keras.Input(shape=(8, 8, 3))
    x = make()(L.Conv2D(4, 3)(inp), **kw)
    out = L.Dense(2, activation="softmax")(L.Flatten()(L.ReLU()(x)))
    return tf_keras.Model(inp, out).to_json()


def data() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 8, 8, 3)).astype(np.float32)
    Y = np.eye(2)[(X[:, :4, :, 0].mean(axis=(1, 2)) > 0).astype(int)]
    return X[:60], Y[:60], X[60:], Y[60:]


def trained(description: str, layer: str) -> list[np.ndarray]:
    """Weights after the model worker's "train": seed, rebuild from the description, recipe."""
    trusted = {"BatchNormalization": ("resnets_utils", course_batch_norm())} if layer == "course_batch_norm" else {}
    tf_keras.utils.set_random_seed(BUDGET.seed)
    model = rebuild(KerasModelConfig(description), trusted)
    train_and_score(model, data(), BUDGET, lambda m: m.compile(optimizer="adam", loss="categorical_crossentropy"))
    return model.get_weights()


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_a_stated_training_true_is_dropped_for_a_batch_norm_only_and_only_for_such_a_recipe():
    stated, inherited = small_model(True), small_model()
    assert '"training": true' in stated and '"training"' not in inherited   # tf_keras's format, both ways
    assert canonical_architecture(stated) != canonical_architecture(inherited)
    assert canonical_architecture(stated, training_mode_only=True) == canonical_architecture(inherited, True)
    # A batch norm kept in inference mode is another model, in any recipe.
    assert canonical_architecture(small_model(False), True) != canonical_architecture(inherited, True)
    # A seeded Dropout's stated mode counts (it trains differently: see the slow test below).
    assert canonical_architecture(small_model(True, "seeded_dropout"), True) != canonical_architecture(
        small_model(layer="seeded_dropout"), True)


@pytest.mark.slow
@pytest.mark.parametrize("layer", ["batch_norm", "course_batch_norm"])
def test_the_worker_trains_a_batch_norm_stated_in_training_mode_exactly_like_one_inheriting_it(layer):
    stated, inherited = small_model(True, layer), small_model(layer=layer)
    assert canonical_architecture(stated, True) == canonical_architecture(inherited, True)
    weights = trained(stated, layer)
    assert same(weights, trained(inherited, layer))
    # The comparison tells models apart: kept in inference mode, the layer trains to other weights.
    assert not same(weights, trained(small_model(False, layer), layer))


@pytest.mark.slow
def test_a_seeded_dropout_stated_in_training_mode_trains_otherwise_so_it_keeps_its_own_form():
    stated, inherited = small_model(True, "seeded_dropout"), small_model(layer="seeded_dropout")
    assert not same(trained(stated, "seeded_dropout"), trained(inherited, "seeded_dropout"))
    assert canonical_architecture(stated, True) != canonical_architecture(inherited, True)
