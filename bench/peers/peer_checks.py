"""ConvGrade's conv_step_by_step checks, rewritten for graders whose tests run in the student's kernel.

nbgrader's test cells and Otter-Grader's test cases both execute inside the kernel that ran the
submission, so they cannot keep the student's code at arm's length as ConvGrade does; this module
is what their generated tests import (bench/peers.py puts this folder and the project root on the
kernel's sys.path). It mirrors exercises/conv_step_by_step/checks.py aspect by aspect:

* the same graded functions, the same aspects ("course example(s)", "random inputs", "cache"),
  the same points split evenly over the aspects (as ConvGrade's spec.toml and grading.py do);
* the course's examples built exactly as checks.py builds them (np.random.RandomState(1));
* instead of hypothesis, the same input distributions drawn with a seeded RandomState: the same
  number of examples (25 per random check, 10 per cache check), the same ranges (batch 1-3,
  rectangular sides, channels 1-3, f, stride, pad, mode; integer values in -9..9), the same
  fairness choices (conv_backward with pad >= 1, distinct values for max pooling);
* expected answers from reference/conv_step_by_step.py on copies of the inputs, compared like
  grader/checks.compare (structure, scalar vs array, shape, bool vs number, np.isclose with the
  spec's rtol 1e-5 / atol 1e-7); inputs built here, never chained through the student's functions.

What it cannot mirror: no shrinking to a minimal counterexample (the first failing input is
reported), and no isolation (the student's code could patch numpy or this module).
"""

from __future__ import annotations

import copy
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from reference import conv_step_by_step as ref  # noqa: E402

RTOL, ATOL = 1e-5, 1e-7   # exercises/conv_step_by_step/spec.toml [tolerance]
MAX_EXAMPLES = 25         # spec.toml [property] max_examples
CACHE_EXAMPLES = 10       # checks.py: examples=10 for the cache checks

# (function, points) as in spec.toml [[items]].
ITEMS = [("zero_pad", 10), ("conv_single_step", 10), ("conv_forward", 10), ("pool_forward", 10),
         ("conv_backward", 10), ("create_mask_from_window", 5), ("distribute_value", 5), ("pool_backward", 10)]


class Case:
    def __init__(self, args: tuple, kwargs: dict | None = None):
        self.args, self.kwargs = args, kwargs or {}

    def describe(self) -> str:
        def show(v: Any) -> str:
            if isinstance(v, np.ndarray):
                return f"array{v.shape}" if v.size > 12 else np.array2string(v, separator=",").replace("\n", "")
            return repr(v)
        return ", ".join([show(a) for a in self.args] + [f"{k}={show(v)}" for k, v in self.kwargs.items()])


# -- the course's examples (as checks.py) -------------------------------------------------------
def _rng() -> np.random.RandomState:
    return np.random.RandomState(1)


def _course_conv_backward() -> Case:
    r = _rng()
    A_prev, W, b = r.randn(10, 4, 4, 3), r.randn(2, 2, 3, 8), r.randn(1, 1, 1, 8)
    Z, cache = ref.conv_forward(A_prev, W, b, {"pad": 2, "stride": 2})
    return Case((Z, cache))


def _course_pool_backward(mode: str) -> Case:
    r = _rng()
    A_prev = r.randn(5, 5, 3, 2)
    _, cache = ref.pool_forward(A_prev, {"stride": 1, "f": 2})
    return Case((r.randn(5, 4, 2, 2), cache), {"mode": mode})


def _course(function: str) -> list[Case]:
    r = _rng()
    if function == "zero_pad":
        return [Case((r.randn(4, 3, 3, 2), 3))]
    if function == "conv_single_step":
        return [Case((r.randn(4, 4, 3), r.randn(4, 4, 3), r.randn(1, 1, 1)))]
    if function == "conv_forward":
        return [Case((r.randn(2, 5, 7, 4), r.randn(3, 3, 4, 8), r.randn(1, 1, 1, 8), {"pad": 1, "stride": 2}))]
    if function == "pool_forward":
        return [Case((_rng().randn(2, 5, 5, 3), {"stride": s, "f": 3}), {"mode": mode})
                for mode in ("max", "average") for s in (1, 2)]
    if function == "conv_backward":
        return [_course_conv_backward()]
    if function == "create_mask_from_window":
        return [Case((np.array([[-1.0, 2, 3], [2, -3, 2], [1, 5, -2]]),))]
    if function == "distribute_value":
        return [Case((2.0, (2, 2)))]
    if function == "pool_backward":
        return [_course_pool_backward("max"), _course_pool_backward("average")]
    raise KeyError(function)


# -- random inputs: checks.py's strategies, drawn with a seeded RandomState ----------------------
def _int(r: np.random.RandomState, lo: int, hi: int) -> int:
    return int(r.randint(lo, hi + 1))


def _small(r: np.random.RandomState, shape: tuple[int, ...], unique: bool = False) -> np.ndarray:
    if unique:
        return r.permutation(int(np.prod(shape))).astype(np.float64).reshape(shape)
    return r.randint(-9, 10, size=shape).astype(np.float64)


def _images(r: np.random.RandomState, min_side: int = 1, unique: bool = False) -> np.ndarray:
    shape = (_int(r, 1, 3), _int(r, min_side, min_side + 4), _int(r, min_side, min_side + 4), _int(r, 1, 3))
    return _small(r, shape, unique)


def _conv_geometry(r: np.random.RandomState, min_pad: int = 0) -> tuple:
    f, pad, stride = _int(r, 1, 4), _int(r, min_pad, 2), _int(r, 1, 3)
    A_prev = _images(r, min_side=max(1, f - 2 * pad))
    n_C = _int(r, 1, 3)
    return A_prev, _small(r, (f, f, A_prev.shape[3], n_C)), _small(r, (1, 1, 1, n_C)), {"pad": pad, "stride": stride}


def _pool_forward_case(r: np.random.RandomState, unique: bool = False) -> Case:
    f, stride = _int(r, 1, 3), _int(r, 1, 3)
    A_prev = _images(r, min_side=f, unique=unique)
    return Case((A_prev, {"stride": stride, "f": f}), {"mode": ["max", "average"][_int(r, 0, 1)]})


def _random_case(function: str, r: np.random.RandomState) -> Case:
    if function == "zero_pad":
        return Case((_images(r), _int(r, 0, 3)))
    if function == "conv_single_step":
        f, c = _int(r, 1, 4), _int(r, 1, 3)
        return Case((_small(r, (f, f, c)), _small(r, (f, f, c)), _small(r, (1, 1, 1))))
    if function == "conv_forward":
        return Case(_conv_geometry(r))
    if function == "pool_forward":
        return _pool_forward_case(r)
    if function == "conv_backward":
        A_prev, W, b, hp = _conv_geometry(r, min_pad=1)
        Z, cache = ref.conv_forward(A_prev, W, b, hp)
        return Case((_small(r, Z.shape), cache))
    if function == "create_mask_from_window":
        return Case((_small(r, (_int(r, 1, 4), _int(r, 1, 4)), unique=True),))
    if function == "distribute_value":
        shape = (_int(r, 1, 5), _int(r, 1, 5))
        return Case((float(_int(r, -20, 20)), shape))
    if function == "pool_backward":
        forward = _pool_forward_case(r, unique=True)
        A, cache = ref.pool_forward(*forward.args, **forward.kwargs)
        return Case((_small(r, A.shape), cache), forward.kwargs)
    raise KeyError(function)


def _random(function: str, aspect: str, n: int) -> list[Case]:
    r = np.random.RandomState(zlib.crc32(f"{function}: {aspect}".encode()))
    return [_random_case(function, r) for _ in range(n)]


# -- the checks: (aspect, cases, which part of the answer is graded) ------------------------------
def _part(i: int) -> Callable[[Any], Any]:
    def pick(value: Any) -> Any:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise AssertionError(f"expected a tuple of 2 values, got {type(value).__name__}")
        return value[i]
    return pick


def _whole(value: Any) -> Any:
    return value


def aspects(function: str) -> list[str]:
    """The aspects ConvGrade grades for this function (checks.py CHECKS), in order."""
    course = "course examples" if function in ("pool_forward", "pool_backward") else "course example"
    extra = ["cache"] if function in ("conv_forward", "pool_forward") else []
    return [course, "random inputs"] + extra


def _plan(function: str, aspect: str) -> tuple[list[Case], Callable[[Any], Any]]:
    pick = _part(0) if function in ("conv_forward", "pool_forward") else _whole
    if aspect.startswith("course"):
        return _course(function), pick
    if aspect == "random inputs":
        return _random(function, aspect, MAX_EXAMPLES), pick
    if aspect == "cache":
        return _random(function, aspect, CACHE_EXAMPLES), _part(1)
    raise KeyError(aspect)


def _kind(a: np.ndarray) -> str:
    return "bool" if a.dtype.kind == "b" else "number" if a.dtype.kind in "iuf" else a.dtype.kind


def compare(got: Any, expected: Any, where: str) -> None:
    """Raise AssertionError at the first difference (grader/checks.compare's rules)."""
    if isinstance(expected, (tuple, list)):
        assert isinstance(got, (tuple, list)), f"{where}: expected a tuple, got {type(got).__name__}"
        assert len(got) == len(expected), f"{where}: expected {len(expected)} values, got {len(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            compare(g, e, f"{where}[{i}]")
        return
    if isinstance(expected, dict):
        assert isinstance(got, dict) and set(got) == set(expected), f"{where}: expected keys {sorted(expected)}"
        for k in expected:
            compare(got[k], expected[k], f"{where}[{k!r}]")
        return
    if isinstance(expected, str) or expected is None:
        assert got == expected, f"{where}: expected {expected!r}, got {got!r}"
        return
    e = np.asarray(expected)
    if not isinstance(expected, np.ndarray):
        assert not (isinstance(got, np.ndarray) and got.shape != ()), f"{where}: expected a scalar, got an array"
        assert isinstance(got, (bool, int, float, np.generic, np.ndarray)), f"{where}: expected a number"
    else:
        assert isinstance(got, np.ndarray), f"{where}: expected an array of shape {e.shape}, got {type(got).__name__}"
    g = np.asarray(got)
    assert g.shape == e.shape, f"{where}: expected shape {e.shape}, got {g.shape}"
    assert _kind(g) == _kind(e), f"{where}: expected {_kind(e)} values, got dtype {g.dtype}"
    if _kind(e) == "bool":
        ok = bool((g == e).all())
    else:
        ok = bool(np.isclose(g.astype(np.float64), e.astype(np.float64), rtol=RTOL, atol=ATOL).all())
    assert ok, f"{where}: values differ from the reference"


def check(function: str, aspect: str, student: Callable[..., Any] | None) -> None:
    """One aspect of one function: every case agrees with the reference, or AssertionError."""
    assert callable(student), f"{function} is not defined"
    cases, pick = _plan(function, aspect)
    reference = getattr(ref, function)
    for case in cases:
        expected = reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        try:
            # Warnings are not failures for ConvGrade; nbgrader scores any stderr output as a failed
            # cell, so the course's own float(b) DeprecationWarning must not reach it.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = student(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except Exception as exc:  # the student's exception is the failure
            raise AssertionError(f"{function}({case.describe()}) raised {type(exc).__name__}: {exc}") from None
        try:
            compare(pick(got), pick(expected), function)
        except AssertionError as exc:
            raise AssertionError(f"{function}({case.describe()}): {exc}") from None
