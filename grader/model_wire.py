"""The model worker's wire format: plain data only, both ways.

A message is one frame: 8 bytes (big-endian length N), then N bytes: 4 bytes (big-endian header
length H), H bytes of UTF-8 JSON (the header), then the raw bytes of the message's arrays, one
after the other. An array appears in the header as {"__array__": i}, the i-th entry of the
header's "arrays" list ({"dtype": ..., "shape": [...]}), with dtypes from a short allowlist and
C order. Nothing is unpickled, nothing is imported by name: `decode` gives dicts, lists, str,
int, float, bool, None and numpy arrays, or raises WireError.

The grader reads what the worker sends with `read_message(..., limit)`: bounded in size, in JSON
nesting, and in time (the caller's deadline, see model_worker.py).
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from typing import Any

import numpy as np

DTYPES = frozenset({"float32", "float64", "int32", "int64", "uint8", "bool"})
MAX_DEPTH = 64
MAX_DIMENSIONS = 32


class WireError(Exception):
    """A message that is not of the wire format (or too large, or truncated)."""


class Closed(WireError):
    """The other end closed the pipe (the worker stopped)."""


class TimedOut(WireError):
    """No complete message within the deadline."""


def encode(message: dict[str, Any]) -> bytes:
    """One frame for `message` (JSON-able values and numpy arrays)."""
    arrays: list[np.ndarray] = []

    def walk(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            array = np.ascontiguousarray(value)
            if array.dtype.name not in DTYPES:
                array = array.astype(np.float64 if array.dtype.kind == "f" else np.int64)
            arrays.append(array)
            return {"__array__": len(arrays) - 1}
        if isinstance(value, dict):
            return {str(k): walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, np.generic):
            return value.item()
        return value

    header = walk(message)
    header["arrays"] = [{"dtype": a.dtype.name, "shape": list(a.shape)} for a in arrays]
    head = json.dumps(header, allow_nan=True).encode()
    body = struct.pack(">I", len(head)) + head + b"".join(a.tobytes() for a in arrays)
    return struct.pack(">Q", len(body)) + body


def _depth_ok(value: Any) -> bool:
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return False
        if isinstance(node, dict):
            stack += [(v, depth + 1) for v in node.values()]
        elif isinstance(node, list):
            stack += [(v, depth + 1) for v in node]
    return True


def decode(body: bytes) -> dict[str, Any]:
    """The message of one frame's body (see the module docstring); WireError if malformed."""
    if len(body) < 4:
        raise WireError("a message shorter than its header length")
    (size,) = struct.unpack(">I", body[:4])
    if size > len(body) - 4:
        raise WireError("a message whose header is longer than the message")
    try:
        header = json.loads(body[4:4 + size].decode())
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, an integer past the digit limit
        raise WireError(f"a message header that is not JSON ({type(exc).__name__})") from None
    if not isinstance(header, dict) or not _depth_ok(header):
        raise WireError("a message header that is not a JSON object of bounded depth")
    specs = header.pop("arrays", [])
    if not isinstance(specs, list):
        raise WireError("a message whose array list is not a list")
    arrays, offset = [], 4 + size
    for spec in specs:
        if not (isinstance(spec, dict) and spec.get("dtype") in DTYPES and isinstance(spec.get("shape"), list)
                and len(spec["shape"]) <= MAX_DIMENSIONS and all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n < 1 << 40 for n in spec["shape"])):
            raise WireError(f"a message with an array of an unknown kind ({str(spec)[:80]})")
        dtype = np.dtype(spec["dtype"])
        count = math.prod(spec["shape"])
        end = offset + count * dtype.itemsize
        if end > len(body):
            raise WireError("a message whose arrays are longer than the message")
        arrays.append(np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(spec["shape"]).copy())
        offset = end
    if offset != len(body):
        raise WireError("a message with bytes after its arrays")

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"__array__"}:
                index = value["__array__"]
                if not (isinstance(index, int) and 0 <= index < len(arrays)):
                    raise WireError("a message naming an array it does not carry")
                return arrays[index]
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(header)


def write_message(fd: int, message: dict[str, Any]) -> None:
    data = memoryview(encode(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise TimedOut("no answer in time")
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise Closed("the other end closed the pipe")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int, limit: int, deadline: float | None = None) -> dict[str, Any]:
    """The next message on `fd`: at most `limit` bytes, complete before `deadline` (monotonic)."""
    (size,) = struct.unpack(">Q", _read_exactly(fd, 8, deadline))
    if size > limit:
        raise WireError(f"a message of {size:,} bytes, more than the {limit:,} allowed")
    return decode(_read_exactly(fd, size, deadline))
