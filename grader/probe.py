"""The grader's side of the trust boundary: calls into the kernel as plain data.

A call is written as call.json plus .npy inputs into a fresh folder; the kernel's
probe runtime writes out.json plus .npy outputs back. Everything read back is
parsed here with safe loaders (json, np.load(allow_pickle=False)), with size
limits and file-name checks, into plain Python/NumPy values. Nothing the kernel
writes is ever executed or unpickled, and no kernel-side object is trusted.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
