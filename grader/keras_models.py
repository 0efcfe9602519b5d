"""Keras models from the kernel, rebuilt here from their JSON architecture, safely.

Deserialization runs in Keras's safe mode: a Lambda layer (arbitrary Python) or any
class Keras does not know is refused, so a model description from a student can only
ever become a graph of standard layers. TensorFlow is imported on first use only.
"""

from __future__ import annotations

import os
from typing import Any

from .probe import KerasModelConfig

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class UnsafeModel(Exception):
    """The model description could not be rebuilt safely (the message says why)."""


def keras():
    """tf_keras (Keras 2 API), the flavour the course's notebooks are written for."""
    import tf_keras

    return tf_keras


def rebuild(config: KerasModelConfig) -> Any:
    """A tf_keras model built from the student's architecture, in safe mode."""
    k = keras()
    from tf_keras.src.saving import serialization_lib

    try:
        with serialization_lib.SafeModeScope(True):
            return k.models.model_from_json(config.json)
    except Exception as exc:  # Keras raises many types for bad configs
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsafeModel(f"the returned model could not be rebuilt safely: {first[:300]}") from None
