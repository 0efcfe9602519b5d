"""Student models rebuilt from their JSON architecture: in the model worker only.

A description is checked against the allowlist (boundary.check_description, with the rest of
what crosses from the kernel) before anything is built, here again, then deserialized in Keras's
safe mode. rebuild() runs only in the model worker (model_server.py), never in the grader's
process. keras() is the Keras flavour the course's notebooks are written for (tf_keras).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from .boundary import KerasModelConfig, UnsafeModel, as_the_kernel_had_it, check_description

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def keras():
    """tf_keras (Keras 2 API), the flavour the course's notebooks are written for."""
    import tf_keras

    return tf_keras


TRUSTED_PREFIX = "convgrade_trusted>"   # a trusted layer's key among custom objects (no Keras name has ">")

# The graded version's own layer classes the worker rebuilds with the grader's implementation:
# class name -> (the course module a description names for it, the trusted class).
TrustedClasses = Mapping[str, "tuple[str, type]"]


def with_trusted_layers(text: str, trusted: TrustedClasses) -> tuple[str, dict[str, type]]:
    """The description with each node of a trusted class (its name and the course's module) renamed
    to that class's custom-object key, and the custom objects: only the grader's classes are
    looked up, never the module the description names."""
    import json

    used: dict[str, type] = {}

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        name = node.get("class_name")
        if isinstance(name, str) and name in trusted and node.get("module") == trusted[name][0]:
            key = TRUSTED_PREFIX + name
            used[key] = trusted[name][1]
            out.pop("module", None)
            out["class_name"] = out["registered_name"] = key
        return out

    return json.dumps(walk(json.loads(text))), used


def rebuild(config: KerasModelConfig, trusted: TrustedClasses | None = None) -> Any:
    """A tf_keras model built from the student's architecture: allowlist first, then safe mode.
    Runs only in the model worker (model_server.py). trusted: the graded version's own layer
    classes (TrustedClasses), built with the grader's implementation."""
    trusted = trusted or {}
    try:
        check_description(config.json, {name: module for name, (module, _) in trusted.items()})
    except UnsafeModel as exc:
        raise UnsafeModel(f"the returned model could not be rebuilt safely: {exc}") from None
    k = keras()
    from tf_keras.src.saving import serialization_lib

    try:
        with serialization_lib.SafeModeScope(True):
            text, custom = with_trusted_layers(as_the_kernel_had_it(config.json), trusted)
            return k.models.model_from_json(text, custom_objects=custom)
    except Exception as exc:  # Keras raises many types for bad configs
        if isinstance(exc, MemoryError) or type(exc).__name__ == "ResourceExhaustedError":
            raise  # out of memory while building: said as such by the model worker
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        # Not "unsafe": the allowlist passed it; Keras cannot rebuild this description.
        raise UnsafeModel(f"the returned model could not be rebuilt by the grader (Keras: {first[:300]})") from None
