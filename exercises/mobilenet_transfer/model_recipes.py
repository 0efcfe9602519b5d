"""How the grader trains an alpaca model (the student's model2 and the reference's alike), in the
model worker: the notebook's two trainings, the head and then the fine-tuning.

Loaded by the model worker (grader/model_server.py), in its sandbox, with the data folder and the
pretrained weights it was given: nothing here may import reference/ (the worker has no copy of it).
The notebook's settings below are the course's (docs/course_facts.md; reference/mobilenet_transfer.py
holds the same numbers and its tests check that they agree).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import numpy as np

IMG_SIZE = (160, 160)
BATCH_SIZE = 32
VALIDATION_SPLIT = 0.2
SPLIT_SEED = 42
BASE_LEARNING_RATE = 0.001


def base_of(model: Any) -> Any:
    """The MobileNetV2 base inside an alpaca model: its one nested model that is not a Sequential."""
    import tf_keras

    nested = [layer for layer in model.layers if isinstance(layer, tf_keras.Model)
              and not isinstance(layer, tf_keras.Sequential)]
    if len(nested) != 1:
        raise ValueError(f"expected one nested base model, found {len(nested)}")
    return nested[0]


def load_dataset(directory: Path) -> tuple[Any, Any]:
    """The notebook's training and validation sets (one folder per class, split 0.2, seed 42)."""
    import tf_keras

    common = dict(shuffle=True, batch_size=BATCH_SIZE, image_size=IMG_SIZE, validation_split=VALIDATION_SPLIT,
                  seed=SPLIT_SEED)
    with contextlib.redirect_stdout(io.StringIO()):  # "Found 327 files ...", once per split
        train = tf_keras.utils.image_dataset_from_directory(str(directory), subset="training", **common)
        validation = tf_keras.utils.image_dataset_from_directory(str(directory), subset="validation", **common)
    return train, validation


def head_then_fine_tune(model: Any, data: Path, files: dict[str, Path], params: dict[str, Any]) -> dict[str, float]:
    """The notebook's two trainings: the head alone (base frozen, Adam 0.001), then the
    fine-tuning with the model's own trainable flags at params["fine_rate"]. Validation accuracy
    counts logits > 0 as "not alpaca" (class 1), with dropout off and the base in inference mode."""
    import tensorflow as tf
    import tf_keras as k

    tf.config.experimental.enable_tensor_float_32_execution(False)
    base = base_of(model)
    base.load_weights(str(files["weights"]))
    flags = [(layer, layer.trainable) for layer in base.layers]
    base_trainable = base.trainable
    train, validation = load_dataset(data)
    tf.keras.utils.set_random_seed(params["seed"])
    base.trainable = False
    model.compile(optimizer=k.optimizers.Adam(learning_rate=BASE_LEARNING_RATE),
                  loss=k.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(train, epochs=params["head_epochs"], verbose=0)
    base.trainable = base_trainable
    for layer, trainable in flags:
        layer.trainable = trainable
    model.compile(optimizer=k.optimizers.Adam(learning_rate=params["fine_rate"]),
                  loss=k.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(train, epochs=params["fine_epochs"], verbose=0)
    hits = total = 0
    for images, labels in validation:
        logits = np.asarray(model(images, training=False)).reshape(-1)
        hits += int(np.sum((logits > 0).astype(int) == np.asarray(labels).reshape(-1)))
        total += len(logits)
    return {"validation_accuracy": hits / total}


RECIPES = {"fine_tuning": head_then_fine_tune}
