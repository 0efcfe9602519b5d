"""Student models rebuilt from their JSON architecture: in the model worker only.

A description is checked against the allowlist (boundary.check_description, with the rest of
what crosses from the kernel) before anything is built, here again, then deserialized in Keras's
safe mode. rebuild() runs only in the model worker (model_server.py), never in the grader's
process. keras() is the Keras flavour the course's notebooks are written for (tf_keras).
"""

from __future__ import annotations

import os
from typing import Any

from .boundary import KerasModelConfig, UnsafeModel, as_the_kernel_had_it, check_description

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def keras():
    """tf_keras (Keras 2 API), the flavour the course's notebooks are written for."""
    import tf_keras

    return tf_keras


def rebuild(config: KerasModelConfig) -> Any:
    """A tf_keras model built from the student's architecture: allowlist first, then safe mode.
    Runs only in the model worker (model_server.py)."""
    try:
        check_description(config.json)
    except UnsafeModel as exc:
        raise UnsafeModel(f"the returned model could not be rebuilt safely: {exc}") from None
    k = keras()
    from tf_keras.src.saving import serialization_lib

    try:
        with serialization_lib.SafeModeScope(True):
            return k.models.model_from_json(as_the_kernel_had_it(config.json))
    except Exception as exc:  # Keras raises many types for bad configs
        if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
            raise  # out of memory while building: said as such by the model worker
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        # Not "unsafe": the allowlist passed it; Keras cannot rebuild this description.
        raise UnsafeModel(f"the returned model could not be rebuilt by the grader (Keras: {first[:300]})") from None
