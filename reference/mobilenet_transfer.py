"""Reference of the mobilenet_transfer exercise (course notebook Transfer_learning_with_MobileNet_v1).

A frozen MobileNetV2 base under a new binary head, then fine-tuning of its top layers. Written
with tf_keras (the Keras 2 API the course's notebooks use); verified in
tests/test_reference_mobilenet_transfer.py against keras.applications and the course's numbers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

IMG_SIZE = (160, 160)
BATCH_SIZE = 32
VALIDATION_SPLIT = 0.2
SPLIT_SEED = 42
BASE_LEARNING_RATE = 0.001
FINE_TUNE_AT = 120
CLASS_NAMES = ("alpaca", "not alpaca")


def _keras():
    import tf_keras

    return tf_keras


def data_augmenter() -> Any:
    """Random horizontal flips and rotations of up to 0.2 of a full turn (training mode only)."""
    k = _keras()
    return k.Sequential([k.layers.RandomFlip("horizontal"), k.layers.RandomRotation(0.2)])


def alpaca_model(image_shape: tuple[int, int] = IMG_SIZE, data_augmentation: Any = None,
                 weights: str | Path | None = None) -> Any:
    """augmentation -> preprocess_input -> frozen MobileNetV2 (inference mode) -> pool -> dropout -> logit.

    weights: the no-top base weights file (None: random weights, same architecture and counts).
    """
    k = _keras()
    input_shape = tuple(image_shape) + (3,)
    base = k.applications.MobileNetV2(input_shape=input_shape, include_top=False,
                                      weights=str(weights) if weights else None)
    base.trainable = False
    inputs = k.Input(shape=input_shape)
    x = (data_augmentation or data_augmenter())(inputs)
    x = k.applications.mobilenet_v2.preprocess_input(x)
    x = base(x, training=False)
    x = k.layers.GlobalAveragePooling2D()(x)
    x = k.layers.Dropout(0.2)(x)
    outputs = k.layers.Dense(1)(x)
    return k.Model(inputs, outputs)


def base_of(model: Any) -> Any:
    """The MobileNetV2 base inside an alpaca model (the course's model2.layers[4])."""
    k = _keras()
    nested = [layer for layer in model.layers if isinstance(layer, k.Model)
              and not isinstance(layer, k.Sequential)]
    if len(nested) != 1:
        raise ValueError(f"expected one nested base model, found {len(nested)}")
    return nested[0]


def compile_head(model: Any) -> None:
    """The notebook's first compile (not graded): Adam at the base rate, logits loss."""
    k = _keras()
    model.compile(optimizer=k.optimizers.Adam(learning_rate=BASE_LEARNING_RATE),
                  loss=k.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"])


def fine_tuning_settings() -> tuple[Any, Any, list[str]]:
    """The fine-tuning cell's loss, optimizer and metrics."""
    k = _keras()
    return (k.losses.BinaryCrossentropy(from_logits=True),
            k.optimizers.Adam(learning_rate=0.1 * BASE_LEARNING_RATE), ["accuracy"])


def unfreeze_top(model: Any, fine_tune_at: int = FINE_TUNE_AT) -> None:
    """The fine-tuning cell: the base trainable from layer `fine_tune_at` on, frozen below it."""
    base = base_of(model)
    base.trainable = True
    for layer in base.layers[:fine_tune_at]:
        layer.trainable = False


def load_dataset(directory: str | Path, image_size: tuple[int, int] = IMG_SIZE) -> tuple[Any, Any]:
    """The notebook's training and validation sets (one folder per class, split 0.2, seed 42)."""
    k = _keras()
    common = dict(shuffle=True, batch_size=BATCH_SIZE, image_size=image_size, validation_split=VALIDATION_SPLIT,
                  seed=SPLIT_SEED)
    train = k.utils.image_dataset_from_directory(str(directory), subset="training", **common)
    validation = k.utils.image_dataset_from_directory(str(directory), subset="validation", **common)
    return train, validation
