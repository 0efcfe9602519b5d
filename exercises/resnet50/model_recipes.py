"""How the grader trains a ResNet50 (the student's and the reference's alike), in the model worker.

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


@lru_cache(maxsize=2)
def load_signs(folder: Path) -> tuple[np.ndarray, ...]:
    """SIGNS as the course's load_dataset() reads it, normalised and one-hot."""
    with h5py.File(folder / "train_signs.h5", "r") as f:
        X_train, y_train = np.array(f["train_set_x"]), np.array(f["train_set_y"])
    with h5py.File(folder / "test_signs.h5", "r") as f:
        X_test, y_test = np.array(f["test_set_x"]), np.array(f["test_set_y"])
    return (X_train / 255.0, np.eye(6)[y_train.reshape(-1)], X_test / 255.0, np.eye(6)[y_test.reshape(-1)])


def compile_course(model: Any) -> None:
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])


def training(model: Any, data: Path, files: dict[str, Path], params: dict[str, Any]) -> dict[str, float]:
    return train_and_score(model, load_signs(data), TrainingBudget(**params), compile_course)


RECIPES = {"training": training}
