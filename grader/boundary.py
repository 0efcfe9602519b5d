"""The trust boundary between the grader and a student's kernel, in one place.

Every value a graded call sends to the student's kernel, and everything the kernel answers, is
encoded, checked and decoded here and nowhere else; this module imports no other grader module,
so it can be audited alone (tests/test_import_rules.py). The kernel's half of the wire is
grader/kernel_side/probe_runtime.py (run inside the kernel, so self-contained: the file names and
`$` tags below are written out there again and must stay in step; tests/conftest.py round-trips
every fast check through it). How a call is carried (its folder, the one line of code that starts
it, deadlines, restarts) is call_bridge.py's and notebook_runner.py's business. The other channel
from the kernel, the notebook run's Jupyter messages (cell errors and outputs), is capped and cut
by notebook_runner.py and reaches feedback only as text.

Grader -> kernel (write_call, write_batch), into a fresh folder the kernel cannot guess:
  call.json      {"function", "args", "kwargs"} (or "batch": many calls; or "query": which names
                 are defined), plain JSON with tagged nodes: {"$nd": "aN.npy"} and
                 {"$npscalar": "aN.npy"} (NumPy values, np.save with allow_pickle=False),
                 {"$tuple": [...]}, {"$dict": [[key, value], ...]}, {"$keras_initializer":
                 {"class_name", "config"}} (an initializer the kernel builds itself, KerasInitializer).
                 Anything else is refused here (TypeError) before it is sent.

Kernel -> grader (read_result, read_batch), all of it untrusted:
  out.json       {"ok": true, "value": ...} or {"ok": false, "error": {type, message, traceback}}
                 (or {"batch": [...]}): at most MAX_JSON_BYTES, parsed with json only (recursion
                 refused), nesting at most 10 deep, only the tags {"$nd"|"$npscalar": "oN.npy"},
                 "$tuple", "$dict", {"$unsupported": text} and {"$keras_model": "oN.json"}; any other
                 element is a ProbeError. A student's exception comes back as data (StudentException,
                 its texts cut to 200/2000/4000 characters); a value that cannot cross as data as
                 Unsupported (its description cut to 200 characters).
  oN.npy         a numeric array (dtype kind b, i, u, f or c), np.load(allow_pickle=False).
  oN.json        a Keras model's JSON architecture (KerasModelConfig: text, never built here),
                 at most MAX_MODEL_JSON_BYTES and valid JSON.
  Every file: a name of the expected pattern (no path), opened relative to the folder's
  descriptor (AnswerFolder: O_NOFOLLOW, O_NONBLOCK), a regular file by fstat, and every file of
  one answer (of a whole batch) together within the call's size budget.

Model descriptions (check_description): what a KerasModelConfig may contain before the model
worker builds it: the allowlist of classes, op-layer functions, activations, modules and sizes
(see "Model descriptions" below). It runs in the grader (JSON only, cheap) and again in the model
worker, which alone builds models (keras_models.rebuild, model_server.py).

Faults: ProbeError (the answer broke this protocol), KernelFault (the kernel timed out or died:
raised by the runner and the bridge, caught by checks), UnsafeModel (a description refused).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# -- Faults and the values that cross -------------------------------------------------------------
_OUTPUT_NAME = re.compile(r"^o\d{1,6}\.npy$")
_MODEL_NAME = re.compile(r"^o\d{1,6}\.json$")
MAX_JSON_BYTES = 1 << 20
MAX_MODEL_JSON_BYTES = 32 << 20


class ProbeError(Exception):
    """The kernel's answer broke the protocol (missing, malformed, oversize, unsafe)."""


class _Missing(ProbeError):
    pass


class _TooLarge(ProbeError):
    pass


class KernelFault(BaseException):
    """The kernel timed out or died. BaseException: hypothesis must not shrink on it."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


@dataclass(frozen=True)
class StudentException:
    """The student's function raised; carried as data, shown as feedback."""

    type: str
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True)
class KerasModelConfig:
    """A Keras model returned by the student: its JSON architecture, as text (not yet built)."""

    json: str


@dataclass(frozen=True)
class KerasInitializer:
    """An initializer the kernel should build itself (e.g. constant(value=1)), as data."""

    class_name: str
    config: dict


@dataclass(frozen=True)
class Unsupported:
    """A returned value that cannot cross the boundary as data (e.g. an object)."""

    description: str

    def __repr__(self) -> str:
        return f"<unsupported: {self.description}>"


# -- Grader -> kernel: a call's inputs ------------------------------------------------------------
def write_call(call_dir: Path, function: str, args: tuple, kwargs: dict, query: dict | None = None) -> None:
    """Serialise a call's inputs into call_dir (which must exist and be empty)."""
    files: list[str] = []
    spec = {
        "query": query,
        "function": function,
        "args": [_encode(a, call_dir, files) for a in args],
        "kwargs": {k: _encode(v, call_dir, files) for k, v in kwargs.items()},
    }
    (call_dir / "call.json").write_text(json.dumps(spec), encoding="utf-8")


def write_batch(call_dir: Path, function: str, calls: list[tuple[tuple, dict]]) -> None:
    """Serialise many calls of one function (one kernel round trip for all)."""
    files: list[str] = []
    spec = {
        "function": function,
        "batch": [{"args": [_encode(a, call_dir, files) for a in args],
                   "kwargs": {k: _encode(v, call_dir, files) for k, v in kwargs.items()}} for args, kwargs in calls],
    }
    (call_dir / "call.json").write_text(json.dumps(spec), encoding="utf-8")


def _encode(value: Any, call_dir: Path, files: list[str]) -> Any:
    if isinstance(value, KerasInitializer):
        return {"$keras_initializer": {"class_name": value.class_name, "config": dict(value.config)}}
    if isinstance(value, np.ndarray | np.generic):
        name = f"a{len(files)}.npy"
        files.append(name)
        np.save(call_dir / name, np.asarray(value), allow_pickle=False)
        return {"$npscalar" if isinstance(value, np.generic) else "$nd": name}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v, call_dir, files) for v in value]}
    if isinstance(value, list):
        return [_encode(v, call_dir, files) for v in value]
    if isinstance(value, dict):
        return {"$dict": [[k, _encode(v, call_dir, files)] for k, v in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot send {type(value).__name__} to the kernel")


# -- Kernel -> grader: the answer -----------------------------------------------------------------
class AnswerFolder:
    """A call's folder, held by a directory descriptor opened when the grader made it.

    The kernel can write in the folder and rename it, but not make the grader follow a
    link: each answer file is opened relative to this descriptor with O_NOFOLLOW (and
    O_NONBLOCK, so that a FIFO cannot block), checked with fstat to be a regular file within
    its size limit, and read once, from that same descriptor.
    """

    def __init__(self, folder: Path | int):
        if isinstance(folder, int):
            self.fd = folder
        else:
            self.fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def read(self, name: str, limit: int) -> bytes:
        """The bytes of the regular file `name` (no link, FIFO or device), at most `limit`."""
        if "/" in name or name in ("", ".", ".."):
            raise ProbeError("the result names an unexpected file")
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        except FileNotFoundError:
            raise _Missing(f"the result file {name} is missing") from None
        except OSError as exc:  # a link (ELOOP), a folder, ...
            raise ProbeError(f"the result file {name} is not a regular file ({exc.strerror})") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ProbeError(f"the result file {name} is not a regular file")
            if info.st_size > limit:
                raise _TooLarge("the returned values are too large")
            chunks, left = [], limit + 1
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                chunks.append(chunk)
                left -= len(chunk)
            data = b"".join(chunks)
            if len(data) > limit:  # grown since fstat
                raise _TooLarge("the returned values are too large")
            return data
        finally:
            os.close(fd)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> "AnswerFolder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _folder(call_dir: Path | AnswerFolder) -> Iterator[AnswerFolder]:
    """The AnswerFolder for call_dir: the caller's own, or one opened (and closed) here."""
    if isinstance(call_dir, AnswerFolder):
        yield call_dir
        return
    with AnswerFolder(call_dir) as folder:
        yield folder


def read_result(call_dir: Path | AnswerFolder, max_bytes: int) -> Any:
    """Parse the kernel's answer in call_dir.

    Returns the decoded value, or a StudentException if the student's function raised.
    Raises ProbeError if the answer is missing or breaks the protocol.
    """
    with _folder(call_dir) as folder:
        return _answer(_read_doc(folder), folder, [max_bytes])


def read_batch(call_dir: Path | AnswerFolder, count: int, max_bytes: int) -> list[Any]:
    """Parse the answer to write_batch: one value (or StudentException) per call, in order."""
    with _folder(call_dir) as folder:
        answers = _read_doc(folder).get("batch")
        if not isinstance(answers, list) or len(answers) != count:
            raise ProbeError("the batch answer has the wrong form")
        budget = [max_bytes]
        return [_answer(a, folder, budget) for a in answers]


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProbeError(f"{what} could not be parsed ({exc})") from None
    except RecursionError:
        raise ProbeError(f"{what} is nested too deeply") from None


def _read_doc(folder: AnswerFolder) -> dict:
    try:
        data = folder.read("out.json", MAX_JSON_BYTES)
    except _Missing:
        raise ProbeError("the function did not return (no result was written)") from None
    except _TooLarge:
        raise ProbeError("the result description is too large") from None
    doc = _parse_json(data, "the result")
    if not isinstance(doc, dict):
        raise ProbeError("the result has the wrong form")
    return doc


def _answer(doc: Any, call_dir: AnswerFolder, budget: list[int]) -> Any:
    if not isinstance(doc, dict) or "ok" not in doc:
        raise ProbeError("the result has the wrong form")
    if not doc["ok"]:
        err = doc.get("error")
        if not isinstance(err, dict):
            raise ProbeError("the error report has the wrong form")
        return StudentException(str(err.get("type", "Exception"))[:200], str(err.get("message", ""))[:2000],
                                str(err.get("traceback", ""))[:4000])
    return _decode(doc.get("value"), call_dir, budget, depth=0)


def _decode(node: Any, call_dir: AnswerFolder, budget: list[int], depth: int) -> Any:
    if depth > 10:
        raise ProbeError("the result is nested too deeply")
    if node is None or isinstance(node, bool | int | float | str):
        return node
    if isinstance(node, list):
        return [_decode(v, call_dir, budget, depth + 1) for v in node]
    if isinstance(node, dict) and len(node) == 1:
        (key, val), = node.items()
        if key in ("$nd", "$npscalar"):
            arr = _load_array(call_dir, val, budget)
            return arr[()] if key == "$npscalar" and arr.shape == () else arr
        if key == "$tuple" and isinstance(val, list):
            return tuple(_decode(v, call_dir, budget, depth + 1) for v in val)
        if key == "$dict" and isinstance(val, list):
            out = {}
            for pair in val:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str | int)):
                    raise ProbeError("a returned dict has the wrong form")
                out[pair[0]] = _decode(pair[1], call_dir, budget, depth + 1)
            return out
        if key == "$unsupported":
            return Unsupported(str(val)[:200])
        if key == "$keras_model":
            return _load_model_config(call_dir, val, budget)
    raise ProbeError("the result has an unknown element")


def _result_file(call_dir: AnswerFolder, name: Any, pattern: re.Pattern, budget: list[int],
                 limit: int | None = None) -> bytes:
    """The bytes of a file the answer names: an expected name, a regular file, within budget."""
    if not isinstance(name, str) or not pattern.match(name):
        raise ProbeError("the result names an unexpected file")
    data = call_dir.read(name, max(0, min(budget[0], limit if limit is not None else budget[0])))
    budget[0] -= len(data)
    return data


def _load_model_config(call_dir: AnswerFolder, name: Any, budget: list[int]) -> KerasModelConfig:
    data = _result_file(call_dir, name, _MODEL_NAME, budget, MAX_MODEL_JSON_BYTES)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProbeError(f"the model description {name} is not valid JSON") from None
    try:
        json.loads(text)
    except ValueError:  # JSONDecodeError, or an integer past Python's digit limit
        raise ProbeError(f"the model description {name} is not valid JSON") from None
    except RecursionError:
        raise ProbeError(f"the model description {name} is nested too deeply") from None
    return KerasModelConfig(text)


def _load_array(call_dir: AnswerFolder, name: Any, budget: list[int]) -> np.ndarray:
    data = _result_file(call_dir, name, _OUTPUT_NAME, budget)
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:  # malformed .npy, object dtype (pickle refused), ...
        raise ProbeError(f"the result file {name} could not be read safely ({type(exc).__name__})") from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "biufc":
        raise ProbeError(f"the result file {name} is not a numeric array")
    return arr


# -- Model descriptions ---------------------------------------------------------------------------
# A model description is code: Keras's safe mode refuses Lambda layers, but a TFOpLambda layer
# names any TensorFlow function (`io.read_file`, `io.write_file`, ...), and a `"class_name":
# "function"` entry with a `module` imports from any module. So before anything is built, the
# description is checked against an allowlist (`check_description`): every object in it must be
# a layer, initializer, regularizer or constraint class the course's models use (ALLOWED), op
# layers may only name pure arithmetic (OP_FUNCTIONS), activations only Keras's own by name,
# module paths only Keras's own, and each size is bounded (a 10^9-unit Dense, or input, is
# refused, not allocated). What is refused is named in the feedback. Per-layer bounds do not bound
# a model's total memory or time (sixteen 16384-unit layers are allowed): the model worker's
# limits do (model_worker.py). Then deserialization runs in Keras's safe mode (keras_models.rebuild,
# in the model worker only).
class UnsafeModel(Exception):
    """The model description could not be rebuilt safely (the message says why)."""


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
# Keras resolves a string under a *_initializer, *_regularizer or *_constraint key by name, among
# its modules' globals and its custom objects (so `"kernel_regularizer": "deserialize_keras_object"`
# reaches a function): such a string must be one of Keras's own initializer, regularizer or
# constraint names (their dict form, {"class_name": ...}, goes through ALLOWED like any class).
NAMED_KEY_SUFFIXES = ("_initializer", "_regularizer", "_constraint")
KERAS_NAMES = frozenset({
    # initializers, as classes and as their aliases
    "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity", "LecunNormal",
    "LecunUniform", "Ones", "Orthogonal", "RandomNormal", "RandomUniform", "TruncatedNormal",
    "VarianceScaling", "Zeros", "constant", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
    "identity", "lecun_normal", "lecun_uniform", "ones", "one", "orthogonal", "random_normal",
    "random_uniform", "truncated_normal", "variance_scaling", "zeros", "zero", "normal", "uniform",
    # regularizers
    "L1", "L2", "L1L2", "l1", "l2", "l1_l2",
    # constraints
    "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm", "max_norm", "min_max_norm", "non_neg", "unit_norm",
    "maxnorm", "nonneg", "unitnorm",
})
SIZE_KEYS = {"units": 16384, "filters": 16384, "depth_multiplier": 64, "kernel_size": 1024, "pool_size": 1024,
             "strides": 1024, "dilation_rate": 1024, "size": 1024, "padding": 1024, "cropping": 1024,
             # shapes (also a layer's build_config input_shape, which sizes its kernel): a flattened
             # 128x128x3 picture is 49,152 features, so the bound is per dimension, not per picture
             "batch_input_shape": 1 << 20, "batch_shape": 1 << 20, "input_shape": 1 << 20, "input_dim": 1 << 20,
             "batch_size": 4096, "target_shape": 1 << 20}
MAX_LAYERS = 2000
MAX_DEPTH = 64


def _sizes(value: Any) -> list[int | float]:
    """The numbers in a size setting: integers, and floats and text that reads as a number too
    (Keras turns Dense(1e9)'s 1e9, or Dense("1000000000")'s text, into an int and allocates it);
    a number that is not finite counts as past every bound. Other text ("same") is no size."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value]
    if isinstance(value, float):
        return [value if math.isfinite(value) else math.inf]
    if isinstance(value, str):
        for read in (int, float):   # what int() or float() accepts: " 2_0000 ", full-width digits, "1e9"
            try:
                return _sizes(read(value))
            except (ValueError, OverflowError):
                pass
        return []
    if isinstance(value, list | tuple):
        return [i for v in value for i in _sizes(v)]
    return []


def check_description(text: str, trusted: "dict[str, str] | None" = None) -> None:
    """Refuse (UnsafeModel, naming what and where) a description that is not of the allowlist.

    trusted: the graded version's own layer classes (class name -> the course module that defines
    them, e.g. {"BatchNormalization": "resnets_utils"}), which the model worker rebuilds with the
    grader's trusted implementation: a node of such a class may name that module (and no other
    module than Keras's); a class of neither the allowlist nor `trusted` is refused."""
    trusted = trusted or {}
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
            if not isinstance(name, str):
                raise UnsafeModel(f"its {where} has a class_name that is not a name (a {type(name).__name__})")
            label = f"{config.get('name', node.get('name', '?'))!s:.80} ({name!s:.80})"
            module, registered = node.get("module"), node.get("registered_name")
            ours = isinstance(name, str) and name in trusted and module == trusted[name]  # the version's own layer
            if name not in ALLOWED and not ours:
                raise UnsafeModel(f"it contains {label}, which the grader does not rebuild "
                                  "(only the standard layers of the course's models are)")
            if not ours and module is not None and not (isinstance(module, str) and re.fullmatch(r"(tf_)?keras(\.[a-z_.]+)?", module)):
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
            if isinstance(key, str) and key.endswith(NAMED_KEY_SUFFIXES) and isinstance(value, str) \
                    and value not in KERAS_NAMES:
                raise UnsafeModel(f"its {where} names {key} {value!s:.80}, not one of Keras's own")
            if key in SIZE_KEYS and any(abs(i) > SIZE_KEYS[key] for i in _sizes(value)):
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
