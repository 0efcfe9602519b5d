"""The property checks' drawn inputs, kept on disk: a grading process loads them instead of drawing.

A property check tries the same inputs for every submission (a fixed seed), and drawing them with
hypothesis is most of a first submission's check time (about a second for conv_step_by_step's
ten properties). They are written once per machine to the data cache
(`<cache>/<exercise>/examples/<key>.json`) and read back by every later grading process.

The key is everything drawing depends on: the check (its item and aspect: the examples of one
check are never served to another, whatever their strategies' reprs say), the strategy's repr,
the number of examples, the exercise's files (its checks.py defines the strategies:
`RunSettings.exercise_digest`, with the reference modules its checks use), the graded course
version, the grader's source (the seed and settings of every draw), and the versions of
hypothesis, NumPy and Python. A strategy whose code lives elsewhere (a module outside the
exercise folder, reference/ and grader/) is not in the key: exercises keep theirs in checks.py. Loading is plain data
(JSON; arrays as dtype, shape and bytes), never unpickling; a file that does not decode is drawn
again and replaced. Inputs holding anything the codec does not know are not kept (drawn each time).

Beside each check's examples, under the same key, its shrink routes (`<key>.routes.json`,
shrink_routes.py): the inputs a failed check tried while shrinking, so that the next submission
with the same mistake is asked them in a few batches. They only save round trips: every step is
that submission's own answer, and a route that does not match it step for step is not taken.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import math
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from . import shrink_routes
from .boundary import KerasInitializer

FOLDER = "examples"
MAX_BYTES = 64 * 2**20   # a larger set of examples is drawn each time, not kept
MAX_ROUTE_BYTES = 8 * 2**20  # the shrink routes of one check, all kept routes together


class Uncacheable(TypeError):
    """A drawn input holds a value the codec does not write."""


@dataclass(frozen=True)
class ExamplesCache:
    """Drawn examples of one exercise and course version, under `folder`; `prefix` is the key's
    part every strategy of this run shares (examples_prefix).

    Examples are kept per check: the runner gives each check its own scope(test name), and a
    scope keeps the examples of the first strategy that draws in it only (a strategy's repr
    does not say everything it depends on: two strategies made by one factory with different
    arguments can print alike, so the check, not the repr, names the examples)."""

    folder: Path
    prefix: str
    scope: str = ""
    _owner: list = field(default_factory=list, compare=False, repr=False)  # [id of the scope's strategy]

    def scoped(self, test: str) -> "ExamplesCache":
        """The cache of the check named `test` (its item and aspect), for one run of it."""
        return ExamplesCache(self.folder, self.prefix, test)

    def drawn(self, strategy: Any, count: int, draw: Callable[[], list]) -> list:
        """The examples `draw()` gives for `strategy` and `count`: loaded when kept, else drawn
        and kept (drawn only, for a second strategy drawing in this scope)."""
        if not self._owns(strategy):
            return draw()
        path = self.folder / f"{self.key(strategy, count)}.json"
        try:
            return decode_examples(_read_file(path, MAX_BYTES))
        except Exception:  # not kept yet, or not readable (any way): draw
            pass
        examples = draw()
        try:
            data = encode_examples(examples)
        except Uncacheable:
            return examples
        if len(data) <= MAX_BYTES:
            _write_atomically(path, data)
        return examples

    def routes(self, strategy: Any, count: int, drawn: list) -> list:
        """The shrink routes kept for this check's examples (shrink_routes.py), newest first; []
        when none are kept or they do not decode, or for a strategy that does not own the scope.
        `drawn`: the examples the routes' first steps refer to by index."""
        if not self._owns(strategy):
            return []
        try:
            return decode_routes(_read_file(self._routes_path(strategy, count), MAX_ROUTE_BYTES), drawn,
                                 self.key(strategy, count))
        except Exception:  # none kept, or not readable (any way), or not what was written: none
            return []

    def keep_routes(self, strategy: Any, count: int, routes: list, drawn: list) -> None:
        """Keep `routes` (replacing those kept) if they encode within MAX_ROUTE_BYTES."""
        if not self._owns(strategy):
            return
        try:
            data = encode_routes(routes, drawn, self.key(strategy, count))
        except Uncacheable:
            return
        if len(data) <= MAX_ROUTE_BYTES:
            _write_atomically(self._routes_path(strategy, count), data)

    def add_route(self, strategy: Any, count: int, route: Any, drawn: list,
                  same: Callable[[Any, Any], bool]) -> None:
        """Keep `route` first, before the routes kept now (read again here, under a lock of this
        check's routes, so that a route another grading process kept while this one walked is not
        overwritten), without a second copy of it, at most shrink_routes.ROUTES_PER_CHECK."""
        if not self._owns(strategy):
            return
        with _locked(self.folder / f"{self.key(strategy, count)}.routes.lock"):
            self.keep_routes(strategy, count, shrink_routes.newest_first(route, self.routes(strategy, count, drawn), same),
                             drawn)

    def _owns(self, strategy: Any) -> bool:
        """Whether this scope keeps `strategy`'s examples and routes: it is the first to ask."""
        if not self.scope or self._owner[:1] not in ([], [id(strategy)]):
            return False
        self._owner[:] = [id(strategy)]
        return True

    def _routes_path(self, strategy: Any, count: int) -> Path:
        return self.folder / f"{self.key(strategy, count)}.routes.json"

    def key(self, strategy: Any, count: int) -> str:
        return hashlib.sha256(f"{self.prefix}\0{self.scope}\0{strategy!r}\0{count}".encode()).hexdigest()[:32]


def examples_prefix(exercise_digest: str, version: str, grader_version: str) -> str:
    import hypothesis

    return json.dumps([exercise_digest, version, grader_version, hypothesis.__version__, np.__version__,
                       list(sys.version_info[:2])])


def _read_file(path: Path, limit: int) -> bytes:
    """The bytes of `path` if it is a regular file (not a link, FIFO or device) of at most `limit`
    bytes; OSError or ValueError otherwise (the caller draws again, or keeps no route)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            raise ValueError(f"{path.name}: not a regular file within {limit} bytes")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"{path.name}: more than {limit} bytes")
        return data
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock of `path` (made if missing, never followed if a link) for the block;
    without it (the folder cannot be written, a lock file that is not a regular file) the block
    runs unlocked: at worst a route kept at the same moment is lost, as without the lock."""
    fd = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError:
        pass
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)   # (releases the lock)


def _write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` by renaming a finished file over it (a reader sees all or nothing);
    a cache that cannot be written is not an error (the examples are drawn again next time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass


# -- the codec: examples (lists of checks.Case) as JSON -------------------------------------------
def encode_examples(examples: list) -> bytes:
    return json.dumps([_encode_case(case) for case in examples], separators=(",", ":")).encode()


def decode_examples(data: bytes) -> list:
    doc = json.loads(data)
    if not isinstance(doc, list):
        raise ValueError("not a list of examples")
    return [_decode_case(node) for node in doc]


def encode_routes(routes: list, drawn: list, key: str) -> bytes:
    """Shrink routes as JSON: a step that is one of `drawn` is kept as its index. The document
    carries the SHA-256 of its key, the drawn examples and the routes: a file changed or cut short
    since, or read beside drawn examples other than those it was written with, is not read."""
    index = {}
    for i, case in enumerate(drawn):
        try:
            index.setdefault(encode_examples([case]), i)
        except Uncacheable:
            pass
    doc = []
    for route in routes:
        steps = []
        for case, failed in route.steps:
            i = index.get(encode_examples([case]))
            steps.append(["drawn", i, failed] if i is not None else ["case", _encode_case(case), failed])
        doc.append({"steps": steps, "reported": route.reported})
    body = json.dumps(doc, separators=(",", ":"))
    return json.dumps({"sha256": _routes_digest(key, body, drawn), "routes": body}, separators=(",", ":")).encode()


def _routes_digest(key: str, body: str, drawn: list) -> str:
    """Over the key, the routes and the drawn examples their steps name by index (encoded: an
    example that cannot be encoded raises Uncacheable, and its check keeps no routes)."""
    examples = hashlib.sha256(encode_examples(drawn)).hexdigest()
    return hashlib.sha256(f"{key}\0{examples}\0{body}".encode()).hexdigest()


def decode_routes(data: bytes, drawn: list, key: str) -> list:
    from .shrink_routes import MAX_STEPS, ROUTES_PER_CHECK, Route

    outer = json.loads(data)
    if not isinstance(outer, dict) or outer.get("sha256") != _routes_digest(key, str(outer.get("routes")), drawn):
        raise ValueError("routes changed since they were written")
    doc = json.loads(outer["routes"])
    if not isinstance(doc, list) or len(doc) > ROUTES_PER_CHECK:
        raise ValueError("not a list of routes")
    routes = []
    for node in doc:
        if len(node["steps"]) > MAX_STEPS:
            raise ValueError("a route longer than any walk")
        steps = []
        for kind, value, failed in node["steps"]:
            if type(failed) is not bool:
                raise ValueError("a step's outcome is not a boolean")
            if kind == "drawn" and type(value) is int and 0 <= value < len(drawn):
                steps.append((drawn[value], failed))
            elif kind == "case":
                steps.append((_checked_case(_decode_case(value)), failed))
            else:
                raise ValueError(f"not a step: {kind!r}")
        if type(node["reported"]) is not int:
            raise ValueError("not a route")
        routes.append(Route(tuple(steps), node["reported"]))
    return routes


def _checked_case(case: Any) -> Any:
    """`case` if it has a Case's shape (args a tuple, kwargs a dict by names, names strings)."""
    if (type(case.args) is not tuple or type(case.kwargs) is not dict or type(case.names) is not tuple
            or not all(type(k) is str for k in case.kwargs) or not all(type(n) is str for n in case.names)):
        raise ValueError("not the shape of a case")
    return case


def _encode_case(case: Any) -> dict:
    from .checks import Case

    if type(case) is not Case:
        raise Uncacheable(f"an example of type {type(case).__name__}")
    return {f.name: _encode(getattr(case, f.name)) for f in fields(Case)}


def _decode_case(node: Any) -> Any:
    from .checks import Case

    if not isinstance(node, dict) or set(node) != {f.name for f in fields(Case)}:
        raise ValueError("not an example")
    return Case(**{name: _decode(value) for name, value in node.items()})


def _encode(value: Any) -> Any:
    """Tagged JSON: every dict in the output is a tag ({"tuple": [...]}, {"array": {...}}, ...),
    so each value comes back with its type (tuple vs list, NumPy scalar vs Python number)."""
    if type(value) is float and math.isnan(value) and math.copysign(1.0, value) < 0:
        raise Uncacheable("a negative NaN (JSON has one NaN)")
    if value is None or type(value) in (bool, int, float, str):
        return value
    if type(value) in (tuple, list):
        return {type(value).__name__: [_encode(v) for v in value]}
    if type(value) is dict:
        return {"dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if type(value) is np.ndarray:
        if value.dtype.kind not in "biufc" or not value.flags.c_contiguous or not value.flags.writeable:
            raise Uncacheable(f"an array of dtype {value.dtype} (contiguous: {value.flags.c_contiguous}, "
                              f"writeable: {value.flags.writeable})")
        return {"array": [value.dtype.str, list(value.shape), base64.b64encode(value.tobytes()).decode()]}
    if isinstance(value, np.generic) and value.dtype.kind in "biufc":
        return {"scalar": [value.dtype.str, base64.b64encode(value.tobytes()).decode()]}
    if type(value) is KerasInitializer:
        return {"KerasInitializer": [value.class_name, _encode(value.config)]}
    raise Uncacheable(f"a value of type {type(value).__name__}")


def _decode(node: Any) -> Any:
    if node is None or type(node) in (bool, int, float, str):
        return node
    if type(node) is not dict or len(node) != 1:
        raise ValueError("not an encoded value")
    (tag, body), = node.items()
    if tag == "tuple":
        return tuple(_decode(v) for v in body)
    if tag == "list":
        return [_decode(v) for v in body]
    if tag == "dict":
        return {_decode(k): _decode(v) for k, v in body}
    if tag == "array":
        dtype, shape, data = body
        return np.frombuffer(base64.b64decode(data), dtype=_numeric(dtype)).reshape(shape).copy()
    if tag == "scalar":
        dtype, data = body
        return np.frombuffer(base64.b64decode(data), dtype=_numeric(dtype))[0]
    if tag == "KerasInitializer":
        class_name, config = body
        return KerasInitializer(class_name, _decode(config))
    raise ValueError(f"unknown tag {tag!r}")


def _numeric(name: Any) -> np.dtype:
    dtype = np.dtype(str(name))
    if dtype.kind not in "biufc":
        raise ValueError(f"not a numeric dtype: {dtype}")
    return dtype
