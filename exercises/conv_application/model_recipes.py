"""How the grader trains the conv_application models (the student's and the reference's alike),
in the model worker.

Loaded by the model worker (grader/model_server.py), in its sandbox, with the data folder it was
given: nothing here may import reference/ (the worker has no copy of it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from grader.model_training import TrainingBudget, train_and_score

SIGNS_CLASSES = 6


def _read(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """datasets/{train,test}_<name>.h5 as the course's loaders read them: uint8 images, int labels."""
    with h5py.File(folder / f"train_{name}.h5", "r") as f:
        X_train, y_train = np.array(f["train_set_x"]), np.array(f["train_set_y"]).reshape(-1)
    with h5py.File(folder / f"test_{name}.h5", "r") as f:
        X_test, y_test = np.array(f["test_set_x"]), np.array(f["test_set_y"]).reshape(-1)
    return X_train, y_train, X_test, y_test


@lru_cache(maxsize=2)
def load_happy(folder: Path) -> tuple[np.ndarray, ...]:
    """Happy House as the notebook prepares it: X / 255, labels as a column (m, 1)."""
    X_train, y_train, X_test, y_test = _read(folder, "happy")
    return (X_train / 255.0, y_train.reshape(-1, 1).astype(np.float32),
            X_test / 255.0, y_test.reshape(-1, 1).astype(np.float32))


@lru_cache(maxsize=2)
def load_signs(folder: Path) -> tuple[np.ndarray, ...]:
    """SIGNS as the notebook prepares it: X / 255, one-hot labels (m, 6)."""
    X_train, y_train, X_test, y_test = _read(folder, "signs")
    eye = np.eye(SIGNS_CLASSES)
    return X_train / 255.0, eye[y_train], X_test / 255.0, eye[y_test]


def fresh_start(model: Any) -> None:
    """Give `model` the initial weights of its architecture under the seed just set.

    Called right after the training seeds are set (in model_training.train_and_score): the
    weights of a clone built from the model's config (with the course's unseeded initializers,
    whose seeds come from the seeded generator) are copied in. So the grader's training of a
    model does not depend on what was built before it in the worker, and a correct model starts,
    and ends, exactly where the reference does.
    """
    import tf_keras

    model.set_weights(tf_keras.models.clone_model(model).get_weights())


def compile_happy(model: Any) -> None:
    fresh_start(model)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])


def compile_signs(model: Any) -> None:
    fresh_start(model)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])


def happy(model: Any, data: Path, files: dict[str, Path], params: dict[str, Any]) -> dict[str, float]:
    """happyModel: one sigmoid unit, counted "happy" above 0.5 (model_training.predicted_right)."""
    return train_and_score(model, load_happy(data), TrainingBudget(**params), compile_happy)


def signs(model: Any, data: Path, files: dict[str, Path], params: dict[str, Any]) -> dict[str, float]:
    return train_and_score(model, load_signs(data), TrainingBudget(**params), compile_signs)


RECIPES = {"happy": happy, "signs": signs}
