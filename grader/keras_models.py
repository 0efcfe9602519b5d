"""Keras models from the kernel, rebuilt here from their JSON architecture, safely.

A model description is code: Keras's safe mode refuses Lambda layers, but a TFOpLambda layer
names any TensorFlow function (`io.read_file`, `io.write_file`, ...), and a `"class_name":
"function"` entry with a `module` imports from any module. So before anything is built, the
description is checked against an allowlist (`check_description`): every object in it must be
a layer, initializer, regularizer or constraint class the course's models use (ALLOWED), op
layers may only name pure arithmetic (OP_FUNCTIONS), activations only Keras's own by name,
module paths only Keras's own, and each size is bounded (a 10^9-unit Dense, or input, is
refused, not allocated). What is refused is named in the feedback. Per-layer bounds do not bound
a model's total memory or time (sixteen 16384-unit layers are allowed): the model worker's
limits do (model_worker.py). Then deserialization runs in Keras's safe mode.

check_description runs in the grader (cheap: JSON only) and again in the model worker; rebuild()
runs only in the model worker (model_server.py), never in the grader's process.
"""

from __future__ import annotations

import json
import os
import re
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


# Every class a description may name: the layers of the course's models (and close standard
# relatives a student may use instead), and the initializers, regularizers and constraints.
ALLOWED = frozenset({
    "Functional", "Model", "Sequential", "InputLayer",
    "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose", "Dense",
    "BatchNormalization", "LayerNormalization", "Dropout", "SpatialDropout2D",
    "Activation", "ReLU", "LeakyReLU", "Softmax", "ELU",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D",
    "ZeroPadding2D", "Cropping2D", "UpSampling2D", "Flatten", "Reshape",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "Rescaling",
    "TFOpLambda", "SlicingOpLambda",
    "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal",
    "RandomUniform", "RandomNormal", "TruncatedNormal", "VarianceScaling", "Orthogonal",
    "Zeros", "Ones", "Constant", "Identity",
    "L1", "L2", "L1L2", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm",
})
# TensorFlow functions an op layer may name: pure arithmetic on tensors (what `x / 127.5 - 1`,
# preprocess_input, slicing and the like become); nothing that reads, writes or runs anything.
OP_FUNCTIONS = re.compile(r"(math\.[a-z_0-9]+|nn\.[a-z_0-9]+|linalg\.[a-z_0-9]+|__operators__\.(add|sub|mul|truediv|"
                          r"floordiv|mod|pow|neg|matmul|getitem)|reshape|concat|stack|cast|expand_dims|squeeze|"
                          r"transpose|clip_by_value|identity|compat\.v1\.transpose|image\.resize)")
ACTIVATIONS = frozenset({"linear", "relu", "relu6", "sigmoid", "softmax", "tanh", "elu", "selu", "softplus",
                         "softsign", "swish", "silu", "gelu", "exponential", "hard_sigmoid", "leaky_relu", "mish"})
SIZE_KEYS = {"units": 16384, "filters": 16384, "depth_multiplier": 64, "kernel_size": 1024, "pool_size": 1024,
             "strides": 1024, "dilation_rate": 1024, "size": 1024, "padding": 1024, "cropping": 1024,
             # shapes (also a layer's build_config input_shape, which sizes its kernel): a flattened
             # 128x128x3 picture is 49,152 features, so the bound is per dimension, not per picture
             "batch_input_shape": 1 << 20, "batch_shape": 1 << 20, "input_shape": 1 << 20, "input_dim": 1 << 20,
             "batch_size": 4096, "target_shape": 1 << 20}
MAX_LAYERS = 2000
MAX_DEPTH = 64


def _ints(value: Any) -> list[int]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, list | tuple):
        return [i for v in value for i in _ints(v)]
    return []


def check_description(text: str) -> None:
    """Refuse (UnsafeModel, naming what and where) a description that is not of the allowlist."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):  # JSONDecodeError, an integer past the digit limit, nesting
        raise UnsafeModel("its description is not valid JSON (or nested too deeply)") from None
    if not (isinstance(doc, dict) and isinstance(doc.get("class_name"), str)):
        raise UnsafeModel("its description is not a Keras model's (a JSON object with a class_name)")
    layers = 0
    stack: list[tuple[Any, str, int, bool]] = [(doc, "model", 0, False)]  # (node, where, depth, an op's config)
    while stack:
        node, where, depth, op_config = stack.pop()
        if depth > MAX_DEPTH:
            raise UnsafeModel(f"its description is nested too deeply (at {where})")
        if isinstance(node, list):
            stack += [(v, where, depth + 1, False) for v in node]
            continue
        if not isinstance(node, dict):
            continue
        name = node.get("class_name")
        config = node.get("config") if isinstance(node.get("config"), dict) else {}
        if name is not None:
            label = f"{config.get('name', node.get('name', '?'))!s:.80} ({name!s:.80})"
            if name not in ALLOWED:
                raise UnsafeModel(f"it contains {label}, which the grader does not rebuild "
                                  "(only the standard layers of the course's models are)")
            module, registered = node.get("module"), node.get("registered_name")
            if module is not None and not (isinstance(module, str) and re.fullmatch(r"(tf_)?keras(\.[a-z_.]+)?", module)):
                raise UnsafeModel(f"its {label} comes from module {module!s:.80}, not Keras")
            if registered not in (None, name):
                raise UnsafeModel(f"its {label} is registered as {registered!s:.80}")
            if name in ("TFOpLambda", "SlicingOpLambda"):
                function = config.get("function")
                if not (isinstance(function, str) and OP_FUNCTIONS.fullmatch(function)):
                    raise UnsafeModel(f"its layer {label} calls tf.{function!s:.80}, which the "
                                      "grader does not run (only arithmetic operations are)")
            if "inbound_nodes" in node or name == "InputLayer":
                layers += 1
                if layers > MAX_LAYERS:
                    raise UnsafeModel(f"it has more than {MAX_LAYERS} layers")
            where = label
        for key, value in node.items():
            if key == "activation" and isinstance(value, str) and value not in ACTIVATIONS:
                raise UnsafeModel(f"its {where} uses activation {value!s:.80}, not one of Keras's own")
            if key in SIZE_KEYS and any(abs(i) > SIZE_KEYS[key] for i in _ints(value)):
                raise UnsafeModel(f"its {where} has {key} {value!s:.80}: larger than the grader "
                                  f"builds ({SIZE_KEYS[key]})")
            if key == "function" and not op_config:
                raise UnsafeModel(f"its {where} carries a function, which the grader does not rebuild")
            if isinstance(value, dict | list):
                stack.append((value, where, depth + 1, key == "config" and name in ("TFOpLambda", "SlicingOpLambda")))


def as_the_kernel_had_it(text: str) -> str:
    """The description with what Keras accepts on a live model but not in a config restated:
    `layer.trainable = None` (the fine-tuning template's placeholder, left in real notebooks)
    freezes the layer in Keras (None is false: its weights are not trained), but a config with
    "trainable": null cannot be deserialized; it becomes false, the state the kernel had."""
    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: (False if k == "trainable" and v is None else walk(v)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return json.dumps(walk(json.loads(text)))


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
