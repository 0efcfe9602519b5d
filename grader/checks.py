"""Check primitives: compare a student's answer with the reference, in this process.

An exercise's checks.py lists, per graded item, Checks built from these pieces. A
check calls the student's function through `Student` (plain data back), computes the
reference answer here, and compares. Property checks let hypothesis draw the inputs
and shrink a failure to a minimal one; that example, summarised, is the feedback.
"""

from __future__ import annotations

import collections
import math
import re
import time
import weakref
from pathlib import Path
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import hypothesis.errors
import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from .boundary import KernelFault, ProbeError, StudentException, Unsupported
from . import shrink_routes
from .examples_cache import Uncacheable, encode_examples
from .spec import Tolerance


class Failure(AssertionError):
    """A check failed; the message is the student's feedback."""


class GraderFault(Exception):
    """The grader or its machine cannot run a check (e.g. the model worker cannot start, the
    reference cannot be trained): the submission is not graded at all, rather than charged."""


class Student(Protocol):
    def call(self, function: str, args: tuple = (), kwargs: dict | None = None) -> Any: ...


@dataclass(frozen=True)
class Case:
    """One call's inputs, with the names used to show them to the student."""

    args: tuple
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    names: tuple[str, ...] = ()

    def size(self) -> int:
        """How big the input is (array elements plus scalars), to pick the smallest example."""
        return input_size(self.args) + input_size(tuple(self.kwargs.values()))

    def describe(self) -> str:
        parts = [f"{name} = {show(value)}" for name, value in zip(self.names, self.args)]
        parts += [f"{k} = {show(v)}" for k, v in self.kwargs.items()]
        return "\n".join("  " + p for p in parts)


@dataclass(frozen=True)
class Context:
    tolerance: Tolerance
    max_examples: int
    data: Path | None = None   # the exercise's data folder, for checks that train
    params: Mapping[str, Any] = field(default_factory=dict)  # the spec's [params]
    files: Mapping[str, Path] = field(default_factory=dict)   # the exercise's data files (e.g. weights)
    models: Any = None   # the model worker (model_worker.ModelWorker) that builds students' Keras models
    version: str = ""    # the published version graded (spec.Exercise.version): the worker's trusted layers
    trusted_layers: Mapping[str, str] = field(default_factory=dict)  # that version's: class -> course module
    # Work a check did not redo because its result was known (a training of the same architecture,
    # by another submission or an earlier run): the seconds it took then, appended by the check;
    # the runner moves them into the submission's timings as "reused: <test name>".
    reused: list[float] = field(default_factory=list, compare=False)
    device: str = "cpu"  # the run's (resolved): a training's scores are cached per device
    # Where property checks' drawn inputs are kept between processes (examples_cache.ExamplesCache);
    # None: drawn in each process.
    examples: Any = None


@dataclass(frozen=True)
class Check:
    """One aspect of one graded item; run() raises Failure with feedback, or returns.

    requires: the checks that must pass before this one runs (its preconditions, e.g. the
    architecture before training): aspects of the same item, or "item: aspect" for another item
    graded before it. When one did not pass, this check is skipped ("not checked because ...").
    """

    aspect: str
    run: Callable[[Student, Context], None]
    weight: float = 1.0
    public: bool = False   # run by the student self-check (`grade.py check`), too
    requires: tuple[str, ...] = ()


def check_name(item: str, aspect: str) -> str:
    """A check's test name in results: "<item>: <aspect>" (e.g. "conv_forward: cache")."""
    return f"{item}: {aspect}"


def required_tests(item: str, check: Check) -> tuple[str, ...]:
    """The test names of `check`'s preconditions (an aspect alone belongs to `item`)."""
    return tuple(r if ": " in r else check_name(item, r) for r in check.requires)


def requirement_problems(items: Sequence[str], checks: Mapping[str, Sequence[Check]]) -> list[str]:
    """What is wrong with the preconditions declared in `checks` (an exercise's CHECKS), graded in
    the order of `items`: each must name a check graded before the one that requires it, and a
    public check (run by the self-check) may only require public checks."""
    public: dict[str, bool] = {}  # test name -> public, for the checks graded so far
    problems = []
    for item in items:
        for check in checks.get(item, ()):
            name = check_name(item, check.aspect)
            for required in required_tests(item, check):
                if required not in public:
                    problems.append(f"{name!r} requires {required!r}, which is not a check graded before it")
                elif check.public and not public[required]:
                    problems.append(f"{name!r} is public but requires {required!r}, which the self-check does "
                                    "not run")
            public[name] = check.public
    return problems


# -- showing values --------------------------------------------------------------------------
def show(value: Any, limit: int = 36) -> str:
    """A compact, exact-enough rendering of a value for feedback."""
    if isinstance(value, np.ndarray):
        head = f"array of shape {value.shape}, dtype {value.dtype}"
        if value.size <= limit:
            body = np.array2string(value, precision=4, separator=", ", threshold=limit,
                                   suppress_small=True, max_line_width=100)
            return f"{head}:\n" + "\n".join("      " + line for line in body.splitlines() if line.strip())
        return f"{head} (mean {value.mean():.6g}, min {value.min():.6g}, max {value.max():.6g})" \
            if value.dtype.kind in "iuf" and value.size else head
    if isinstance(value, np.floating | float):
        return f"{float(value):.10g}"
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, tuple | list) and len(value) <= 6:
        flat = not any(isinstance(v, np.ndarray | tuple | list | dict) for v in value)
        inner = (", " if flat else ",\n    ").join(show(v, limit) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    if isinstance(value, np.ndarray):
        return "bool" if value.dtype.kind == "b" else "number" if value.dtype.kind in "iuf" else "complex"
    return type(value).__name__


# -- comparing --------------------------------------------------------------------------------
def compare(got: Any, expected: Any, where: str, tol: Tolerance, hints: Mapping[str, str] | None = None) -> None:
    """Raise Failure describing the first difference between got and expected.

    Structure (tuple/list/dict), type (array vs scalar), shape, dtype kind and values
    are all compared; `where` names the value in the message (e.g. "cache[0]").
    """
    hints = hints or {}

    def fail(message: str) -> None:
        hint = hints.get(where)
        raise Failure(f"{where}: {message}" + (f"\n  Hint: {hint}" if hint else ""))

    if isinstance(got, Unsupported):
        fail(f"expected {describe_type(expected)}, got {got.description} (only arrays, numbers, tuples, "
             "lists and dicts can be graded)")
    if isinstance(expected, tuple | list):
        if not isinstance(got, tuple | list):
            fail(f"expected a tuple of {len(expected)} values, got {describe_type(got)}")
        if len(got) != len(expected):
            fail(f"expected a tuple of {len(expected)} values, got {len(got)} values")
        for i, (g, e) in enumerate(zip(got, expected)):
            compare(g, e, f"{where}[{i}]", tol, hints)
        return
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            fail(f"expected a dict with keys {sorted(expected)}, got {describe_type(got)}")
        if set(got) != set(expected):
            fail(f"expected keys {sorted(map(str, expected))}, got {sorted(map(str, got))}")
        for key in expected:
            compare(got[key], expected[key], f"{where}[{key!r}]", tol, hints)
        return
    if isinstance(expected, str) or expected is None:
        if got != expected:
            fail(f"expected {expected!r}, got {show(got)}")
        return
    expected_arr = np.asarray(expected)
    scalar_expected = not isinstance(expected, np.ndarray)
    if scalar_expected:
        if isinstance(got, np.ndarray) and got.shape != ():
            fail(f"expected a scalar ({describe_type(expected)}), got an array of shape {got.shape}")
        if not isinstance(got, bool | int | float | np.generic | np.ndarray):
            fail(f"expected a number, got {describe_type(got)}")
    elif not isinstance(got, np.ndarray):
        fail(f"expected a numpy array of shape {expected_arr.shape}, got {describe_type(got)}")
    got_arr = np.asarray(got)
    if got_arr.shape != expected_arr.shape:
        fail(f"expected shape {expected_arr.shape}, got shape {got_arr.shape}")
    if _kind(got_arr) != _kind(expected_arr):
        fail(f"expected {_kind(expected_arr)} values (dtype {expected_arr.dtype}), got dtype {got_arr.dtype}")
    if _kind(expected_arr) == "bool":
        bad = got_arr != expected_arr
    else:
        g, e = got_arr.astype(np.float64), expected_arr.astype(np.float64)
        bad = ~np.isclose(g, e, rtol=tol.rtol, atol=tol.atol, equal_nan=False)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        at = f" at index {idx}" if idx else ""
        count = f"{int(bad.sum())} of {bad.size} values differ; first" if bad.size > 1 else "value differs"
        fail(f"{count}{at}: expected {show(expected_arr[idx])}, got {show(got_arr[idx])}")


def compare_named(got: Any, expected: Any, output: str | tuple[str, ...], tol: Tolerance,
                  hints: Mapping[str, str] | None = None) -> None:
    """compare(), with a tuple answer's parts called by their names (e.g. "Z", "cache")."""
    if isinstance(output, str):
        return compare(got, expected, output, tol, hints)
    if not isinstance(got, tuple | list) or len(got) != len(output):
        shape = f"{len(got)} values" if isinstance(got, tuple | list) else describe_type(got)
        raise Failure(f"expected a tuple ({', '.join(output)}), got {shape}")
    for name, g, e in zip(output, got, expected):
        compare(g, e, name, tol, hints)


def part(index: int, names: tuple[str, ...]) -> Callable[[Any], Any]:
    """A `select` for one part of a tuple answer, e.g. part(1, ("Z", "cache")) grades cache."""
    def select(value: Any) -> Any:
        if not isinstance(value, tuple | list) or len(value) != len(names):
            shape = f"{len(value)} values" if isinstance(value, tuple | list) else describe_type(value)
            raise Failure(f"expected a tuple ({', '.join(names)}), got {shape}")
        return value[index]
    return select


def describe_type(value: Any) -> str:
    if isinstance(value, Unsupported):
        return f"{value.description} (only arrays, numbers, tuples, lists and dicts can be graded)"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}" if value.shape else f"a 0-d array ({value.dtype})"
    if isinstance(value, np.generic):
        return f"a {type(value).__name__} scalar"
    if value is None:
        return "None"
    return f"a {type(value).__name__}"


# -- calling ----------------------------------------------------------------------------------
def call_student(student: Student, function: str, case: Case, through: str | None = None) -> Any:
    """Call the student's function; turn a raised exception or broken answer into a Failure.

    through: a kernel-side adapter (defined by the exercise's prelude) called instead, with
    the function's name first, e.g. to set Keras' learning phase around the call.
    """
    try:
        if through:
            got = student.call(through, (function, *case.args), dict(case.kwargs))
        else:
            got = student.call(function, case.args, dict(case.kwargs))
    except ProbeError as exc:
        raise Failure(f"{function} could not be graded: {exc}") from None
    if isinstance(got, StudentException):
        raise raised(function, got)
    return got


def raised(function: str, exc: StudentException) -> Failure:
    """The feedback for a student's function that raised `exc`: what, and where in the notebook."""
    where = student_frame(exc.traceback)
    return Failure(f"{function} raised {exc}" + (f"\n{where}" if where else ""))


# Answers already asked of a student (kernel session), by key: several checks of one item ask
# for the same costly answer (e.g. a model built in the kernel). Weak keys: gone with the student.
_REMEMBERED: "weakref.WeakKeyDictionary[Any, dict[Any, Any]]" = weakref.WeakKeyDictionary()


def remembered(student: Student, key: Any, compute: Callable[[], Any]) -> Any:
    """compute()'s value, asked once per student and key (a Failure is not remembered)."""
    try:
        memo = _REMEMBERED.setdefault(student, {})
    except TypeError:  # a student object that cannot be weakly referenced: no memo
        return compute()
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def student_frame(traceback_text: str) -> str:
    """The innermost frame of the traceback that is the student's own code (a notebook cell)."""
    lines = traceback_text.splitlines()
    cells = [i for i, line in enumerate(lines) if line.lstrip().startswith("File ") and
             ("ipykernel_" in line or "<ipython-input" in line)]
    if not cells:
        return ""
    frame = lines[cells[-1]:cells[-1] + 2]
    frame[0] = re.sub(r'File "[^"]*", line', "in the notebook, line", frame[0])
    return "\n".join(frame)


# Calls one property check may make in all; past it, shrinking stops and the smallest
# failing input seen so far is reported (shrinking big inputs can take thousands of calls).
SHRINK_CALL_BUDGET = 400
# Property checks draw from a fixed seed: every submission is tested on the same inputs.
PROPERTY_SEED = 20211


class _ShrinkBudgetSpent(BaseException):
    """Stops hypothesis mid-shrink (BaseException: hypothesis does not catch it)."""


# -- non-deterministic answers ------------------------------------------------------------------
class NotDeterministic(Failure):
    """The student's function answered the same input differently on two calls."""


def not_deterministic(what: str, shown_input: str) -> NotDeterministic:
    """The feedback for `what` (a function, a model) that answered `shown_input` differently twice."""
    return NotDeterministic(
        f"{what} returns different results for the same input:\n{shown_input}\n"
        "Given this same input twice, it answered differently, so its answer cannot be graded. "
        "Does it use random numbers, or state kept between calls (a global variable, a call counter)?")


# hypothesis' verdict on a test that failed on an input, then passed on it (or failed otherwise):
# Flaky and its subclasses (FlakyFailure, FlakyReplay), where this hypothesis has them...
_FLAKY: tuple[type[BaseException], ...] = tuple(
    getattr(hypothesis.errors, name) for name in ("Flaky", "FlakyFailure", "FlakyReplay")
    if isinstance(getattr(hypothesis.errors, name, None), type))
# ...except inconsistent data generation, which is the grader's strategy's fault, not the student's.
_GRADER_FLAKY: tuple[type[BaseException], ...] = tuple(
    getattr(hypothesis.errors, name) for name in ("FlakyStrategyDefinition",)
    if isinstance(getattr(hypothesis.errors, name, None), type))


def _student_flaky(exc: BaseException) -> bool:
    """Whether `exc` says that the property failed (a Failure) on an input, then not on that input."""
    if not isinstance(exc, _FLAKY) or isinstance(exc, _GRADER_FLAKY):
        return False
    inner = getattr(exc, "exceptions", None)  # FlakyFailure: what the first run(s) raised
    return inner is None or any(isinstance(e, Failure) for e in inner)


def run_property(test: Callable[[], None], what: str, last_input: Callable[[], str]) -> None:
    """Run a hypothesis test (a @given function whose examples raise Failure): the message
    clean-up of check_property, which every property check goes through.

    A Failure comes out without hypothesis' chained context. If hypothesis finds the test
    flaky (an input failed, then passed when replayed), the Failure says that `what` is not
    deterministic, showing last_input() (the input tried last: the one replayed).
    """
    try:
        test()
    except Failure as exc:
        raise Failure(str(exc)) from None  # drop hypothesis' chained context
    except Exception as exc:
        if not _student_flaky(exc):
            raise
        raise not_deterministic(what, last_input()) from None


T = TypeVar("T")


def input_size(value: Any) -> int:
    """How big an input is (array elements plus scalars): the smallest failing one is reported."""
    if isinstance(value, Case):
        return value.size()
    if isinstance(value, np.ndarray):
        return int(value.size)
    if isinstance(value, tuple | list):
        return sum(input_size(v) for v in value)
    if isinstance(value, dict):
        return sum(input_size(v) for v in value.values())
    return 1


def property_settings(examples: int) -> settings:
    """hypothesis' settings of every property check: `examples` inputs, no database, no deadline,
    one bug reported, no health check (a slow student function must not fail a check)."""
    return settings(max_examples=examples, database=None, deadline=None, print_blob=False,
                    report_multiple_bugs=False, phases=(Phase.explicit, Phase.generate, Phase.shrink),
                    suppress_health_check=list(HealthCheck))


def draw_examples(strategy: st.SearchStrategy[T], examples: int) -> list[T]:
    """The inputs check_property(strategy, ..., examples=examples) tries first, in order (same seed
    and settings: up to its first failure it draws exactly these)."""
    drawn: list[T] = []

    @seed(PROPERTY_SEED)
    @property_settings(examples)
    @given(strategy)
    def record(value: T) -> None:
        drawn.append(value)

    record()
    return drawn


def check_property(strategy: st.SearchStrategy[T], holds: Callable[[T], None], *, examples: int, what: str,
                   show_input: Callable[[T], str], budget: int = SHRINK_CALL_BUDGET,
                   report: Callable[[Failure, T], Failure] | None = None) -> None:
    """The property check of every exercise: `holds(x)` (which raises Failure with the feedback)
    on `examples` inputs x drawn from `strategy`, the same for every submission (PROPERTY_SEED).

    A failure is shrunk by hypothesis to a minimal input and raised without hypothesis' context;
    past `budget` calls, shrinking stops and the smallest failing input seen (input_size) is
    reported. `report(failure, x)` gives the failure to raise for the input it failed on (default:
    that failure). A function that fails on an input, then passes on it, fails as not
    deterministic: `what` is named, and show_input(x) shows the input.
    """
    calls = [0]
    tried: list[T] = []                       # the input tried last
    last: list[tuple[Failure, T]] = []        # the failure raised last, with its input
    smallest: list[tuple[int, Failure, T]] = []

    @seed(PROPERTY_SEED)
    @property_settings(examples)
    @given(strategy)
    def prop(value: T) -> None:
        calls[0] += 1
        tried[:] = [value]
        try:
            holds(value)
        except Failure as exc:
            last[:] = [(exc, value)]
            if not smallest or input_size(value) < smallest[0][0]:
                smallest[:] = [(input_size(value), exc, value)]
            if calls[0] > budget:
                raise _ShrinkBudgetSpent() from None
            raise

    final = report or (lambda failure, value: failure)
    try:
        run_property(prop, what, lambda: show_input(tried[0]))
    except NotDeterministic:
        raise
    except Failure as exc:  # the last call's failure is the one hypothesis reports (its minimal example)
        raise (final(*last[0]) if last else exc) from None
    except _ShrinkBudgetSpent:
        raise final(smallest[0][1], smallest[0][2]) from None


_NO_ANSWER = object()  # in a failure record: the call raised, there is no answer to compare


class _Disagreement(Failure):
    """agrees_with_reference's failure on one input, with the student's answer (or _NO_ANSWER)."""

    def __init__(self, message: str, answer: Any):
        super().__init__(message)
        self.answer = answer


def _same_answer(a: Any, b: Any) -> bool:
    """Whether two answers to the same call are the same data (NaN equals NaN; where they
    cannot be told apart, e.g. two objects that could not cross the boundary, they count as same)."""
    if isinstance(a, Unsupported) or isinstance(b, Unsupported):
        return isinstance(a, Unsupported) and isinstance(b, Unsupported)
    if type(a) is not type(b):
        return False
    try:
        if isinstance(a, np.ndarray):
            if a.shape != b.shape or a.dtype != b.dtype:
                return False
            try:
                return bool(np.array_equal(a, b, equal_nan=True))
            except TypeError:  # equal_nan on non-numbers
                return bool(np.array_equal(a, b))
        if isinstance(a, tuple | list):
            return len(a) == len(b) and all(_same_answer(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(_same_answer(a[k], b[k]) for k in a)
        if isinstance(a, float | np.floating) and math.isnan(a) and math.isnan(b):
            return True
        return bool(a == b)
    except Exception:  # cannot tell them apart
        return True


# -- the reference's answers, by input ------------------------------------------------------------
# A check keeps this many of the reference's answers to shrinking inputs (a class repeats its
# mistakes: the same mistake shrinks along the same inputs), each input and answer at most 1 MB.
MEMO_ENTRIES = 1024
MEMO_INPUT_BYTES = MEMO_ANSWER_BYTES = 2**20
# The student's answers one check keeps to match a shrink route against (inputs and answers).
KNOWN_BYTES = 32 * 2**20
# A route's batch is asked only if, at the pace of the latest batch, it takes at most this long.
ROUTE_BATCH_SECONDS = 2.0


def content_key(case: Case) -> bytes | None:
    """A key equal for two cases exactly when they hold the same data: the examples cache's
    codec (examples_cache.encode_examples: each value tagged with its type, arrays by dtype, shape
    and bytes, so 0.0 and -0.0, True and 1, a tuple and a list differ). None for a case the codec
    does not write, or one over MEMO_INPUT_BYTES: it is not remembered."""
    try:
        data = encode_examples([case])
    except Uncacheable:
        return None
    return data if len(data) <= MEMO_INPUT_BYTES else None


def _answer_bytes(value: Any) -> int:
    """About how many bytes `value` holds (at least 64 for any value)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, str | bytes):
        return 64 + len(value)
    if isinstance(value, StudentException):
        return 64 + len(value.type) + len(value.message) + len(value.traceback)
    if isinstance(value, tuple | list):
        return 64 + sum(_answer_bytes(v) for v in value)
    if isinstance(value, dict):
        return 64 + sum(_answer_bytes(k) + _answer_bytes(v) for k, v in value.items())
    return 64


def reference_by_input(reference: Callable[..., Any]) -> Callable[[Case], Any]:
    """`reference` asked by Case, its answers remembered by the case's content (content_key): the
    reference is trusted and deterministic, so a case asked again (by the next submission that
    shrinks the same mistake) gets a copy of the answer it gave, not a second computation. An
    answer it raised is not remembered."""
    memo: collections.OrderedDict[bytes, Any] = collections.OrderedDict()

    def answer(case: Case) -> Any:
        key = content_key(case)
        if key is not None and key in memo:
            memo.move_to_end(key)
            return _copy(memo[key])
        value = reference(*_copy(case.args), **_copy(dict(case.kwargs)))
        if key is not None and _answer_bytes(value) <= MEMO_ANSWER_BYTES:
            memo[key] = _copy(value)
            if len(memo) > MEMO_ENTRIES:
                memo.popitem(last=False)
        return value
    return answer


# -- check builders ---------------------------------------------------------------------------
def agrees_with_reference(function: str, reference: Callable[..., Any],
                          cases: st.SearchStrategy[Case] | tuple[Case, ...], *,
                          output: str | tuple[str, ...] = "result", select: Callable[[Any], Any] | None = None,
                          hints: Mapping[str, str] | None = None, examples: int | None = None,
                          through: str | None = None) -> Callable[[Student, Context], None]:
    """A check: on every drawn Case the student's answer equals the reference's.

    `select` picks the part of the answer to grade (applied to both sides), e.g. only
    Z of (Z, cache). `output` names the answer in feedback; a tuple of names means the
    answer is a tuple of that many values. On failure, hypothesis shrinks to a minimal
    Case, which is shown. A tuple of Cases (see `fixed`) is run as it is, in order.
    `through`: see call_student.
    """
    pick = select or (lambda value: value)
    # The examples are the same for every submission (fixed seed): drawn once per process,
    # with the reference's answers, and reused for the next submission's batch.
    drawn_memo: dict[int, list[Case]] = {}
    expected_memo: dict[int, Any] = {}
    reference_of = reference_by_input(reference)   # shrinking's inputs

    def expected_of(case: Case) -> Any:
        if id(case) not in expected_memo:
            expected_memo[id(case)] = reference(*_copy(case.args), **_copy(dict(case.kwargs)))
        return expected_memo[id(case)]

    def run(student: Student, ctx: Context) -> None:
        # The student's answers asked in batches (the drawn examples, a shrink route's inputs), by
        # input content, for this check of this submission only: they decide whether a kept route
        # matches (Unsupported answers are not kept: such a step never matches). hypothesis' own
        # run asks every input anew, as it would without routes (its replays see a function that
        # answers differently).
        # At most KNOWN_BYTES of them in all (past that, a route's steps stay unknown: no match).
        known: dict[bytes, Any] = {}
        held = [0]

        def remember(batch: Sequence[Case], answers: Sequence[Any]) -> None:
            for case, got in zip(batch, answers):
                key = content_key(case)
                size = _answer_bytes(got) + (len(key) if key is not None else 0)
                if key is None or isinstance(got, Unsupported) or key in known or held[0] + size > KNOWN_BYTES:
                    continue
                known[key] = got
                held[0] += size

        def judged(case: Case, got: Any) -> None:
            """Raise the _Disagreement for answer `got` to `case` (a StudentException: it raised)."""
            try:
                if isinstance(got, StudentException):
                    raise raised(function, got)
                compare_named(pick(got), pick(reference_of(case)), output, ctx.tolerance, hints)
            except Failure as exc:
                answer = _NO_ANSWER if isinstance(got, StudentException) else got
                raise _Disagreement(f"{function} on input:\n{case.describe()}\n{exc}", answer) from None

        def one(case: Case) -> None:
            try:
                got = call_student(student, function, case, through)
            except KernelFault as fault:
                raise KernelFault(f"{fault.cause}, on input:\n{case.describe()}") from None
            except Failure as exc:
                raise _Disagreement(f"{function} on input:\n{case.describe()}\n{exc}", _NO_ANSWER) from None
            judged(case, got)

        def confirmed(message: str, case: Case, got: Any) -> Failure:
            """The failure to report: `message`, unless the student's function, asked `case` once
            more, answers differently than `got` (then: it is not deterministic)."""
            if got is _NO_ANSWER:
                return Failure(message)
            try:
                again = call_student(student, function, case, through)
                same = _same_answer(pick(again), pick(got))
            except KernelFault as fault:
                raise KernelFault(f"{fault.cause}, on input:\n{case.describe()}") from None
            except Failure:  # it raised, or its answer has no gradable part: cannot tell
                return Failure(message)
            return Failure(message) if same else not_deterministic(function, case.describe())

        def ask_many(batch: Sequence[Case]) -> list[Any] | None:
            """The answers to `batch` in one kernel round trip; None if the batch itself failed
            (a fault, or no call_many): the caller asks call by call."""
            call_many = getattr(student, "call_many", None)
            if call_many is None:
                return None
            try:
                return (call_many(through, [((function, *c.args), dict(c.kwargs)) for c in batch]) if through
                        else call_many(function, [(c.args, dict(c.kwargs)) for c in batch]))
            except (KernelFault, ProbeError):
                return None

        def first_disagreement(drawn: Sequence[Case], answers: Sequence[Any]) -> tuple[str, Case, Any] | None:
            """None if every answer agrees, else the first failure's (feedback, case, answer)."""
            for case, got in zip(drawn, answers):
                try:
                    if isinstance(got, StudentException):
                        raise Failure(f"{function} raised {got}")
                    compare_named(pick(got), pick(expected_of(case)), output, ctx.tolerance, hints)
                except Failure as exc:
                    answer = _NO_ANSWER if isinstance(got, StudentException | Unsupported) else got
                    return f"{function} on input:\n{case.describe()}\n{exc}", case, answer
            return None

        if isinstance(cases, tuple):
            answers = ask_many(cases)
            if answers is not None and first_disagreement(cases, answers) is None:
                return
            for case in cases:  # call by call: the first failing example, with its traceback
                one(case)
            return

        # check_property draws the same examples (same seed and settings, up to the first failure),
        # so the batch below tests exactly what the call-by-call run would.
        count = examples or ctx.max_examples
        if count not in drawn_memo:
            draw = lambda: draw_examples(cases, count)  # noqa: E731
            drawn_memo[count] = ctx.examples.drawn(cases, count, draw) if ctx.examples is not None else draw()
        drawn = drawn_memo[count]
        asked_at = time.perf_counter()
        answers = ask_many(drawn)
        pace = (time.perf_counter() - asked_at) / max(1, len(drawn))   # seconds per input, as asked
        batch_failure: tuple[str, Case, Any] | str | None = ""
        if answers is not None:
            batch_failure = first_disagreement(drawn, answers)
            if batch_failure is None:
                return
            remember(drawn, answers)
        _shrink(cases, count, drawn, one, judged, confirmed, ctx, known, remember, ask_many, pace)
        if batch_failure:  # not reproduced call by call (a stateful function?): report it as found
            raise confirmed(*batch_failure)

    def _shrink(strategy: Any, count: int, drawn: list[Case], one: Callable[[Case], None],
                judged: Callable[[Case, Any], None],
                confirmed: Callable[[str, Case, Any], Failure], ctx: Context, known: dict[bytes, Any],
                remember: Callable[[Sequence[Case], Sequence[Any]], None],
                ask_many: Callable[[Sequence[Case]], list[Any] | None], pace: float) -> None:
        """Find the failure again and shrink it (raises the Failure to report): along a kept
        shrink route this submission's answers match at every step (shrink_routes.py), else by
        hypothesis, call by call (the walk is then kept as a route for the next submission)."""
        def failed(case: Case) -> bool | None:
            key = content_key(case)
            if key is None or key not in known:
                return None
            try:
                judged(case, known[key])
            except _Disagreement:
                return True
            return False

        speed = [pace]  # seconds per input of the latest batch

        def ask(cases: list[Case]) -> bool:
            """Ask those of `cases` not asked yet, if at the latest pace that takes at most
            ROUTE_BATCH_SECONDS: a slow function is not asked a route's inputs (its own walk would
            not ask them all; time is the student's)."""
            batch = [case for case in cases if (key := content_key(case)) is not None and key not in known]
            if not batch:
                return True
            if speed[0] * len(batch) > ROUTE_BATCH_SECONDS:
                return False
            asked_at = time.perf_counter()
            answers = ask_many(batch)
            speed[0] = (time.perf_counter() - asked_at) / max(1, len(batch))
            if answers is not None:
                remember(batch, answers)
            return answers is not None

        kept = ctx.examples.routes(strategy, count, drawn) if ctx.examples is not None else []
        try:
            route = shrink_routes.follow(kept, failed, ask) if kept else None
        except Exception:  # a kept input the reference or the comparison cannot take: hypothesis walks
            route = None
        if route is not None:
            case = route.steps[route.reported][0]
            try:
                judged(case, known[content_key(case)])
            except _Disagreement as failure:
                if route is not kept[0]:  # the newest first
                    ctx.examples.add_route(strategy, count, route, drawn, _same_route)
                raise confirmed(str(failure), case, failure.answer) from None

        def keep(walked: shrink_routes.Route) -> None:
            if ctx.examples is not None:   # (before the routes kept by then: another process may have kept one)
                ctx.examples.add_route(strategy, count, walked, drawn, _same_route)

        _walk(strategy, count, one, confirmed, keep)

    def _walk(strategy: Any, count: int, one: Callable[[Case], None],
              confirmed: Callable[[str, Case, Any], Failure], keep: Callable[[shrink_routes.Route], None]) -> None:
        """hypothesis' search and shrink, call by call, exactly as without routes: raises the
        failure it reports (confirmed), having given the route it walked to keep() (not a walk in
        which a step faulted); returns if it found no failure."""
        steps: list[tuple[Case, bool]] = []
        faulted = [False]
        reported: list[Case] = []

        def recorded(case: Case) -> None:
            try:
                one(case)
            except _Disagreement:
                steps.append((case, True))
                raise
            except BaseException:
                faulted[0] = True
                raise
            steps.append((case, False))

        def report(failure: Failure, case: Case) -> Failure:
            reported[:] = [case]
            return failure

        started = time.perf_counter()
        try:
            check_property(strategy, recorded, examples=count, what=function,
                           show_input=lambda case: case.describe(), report=report)
        except NotDeterministic:
            raise
        except Failure as exc:
            if not reported:
                raise
            at = [i for i, (case, failed) in enumerate(steps) if failed and case is reported[0]]
            # (a walk as long as hypothesis' shrinking clock may have been cut short by it: not kept)
            in_time = time.perf_counter() - started < 0.9 * shrink_routes.SHRINK_CLOCK
            if at and not faulted[0] and in_time:
                keep(shrink_routes.Route(tuple(steps), at[-1]))
            raise confirmed(str(exc), reported[0], getattr(exc, "answer", _NO_ANSWER)) from None

    return run


def _same_route(a: shrink_routes.Route, b: shrink_routes.Route) -> bool:
    return a.reported == b.reported and len(a.steps) == len(b.steps) and all(
        fa == fb and content_key(ca) == content_key(cb) for (ca, fa), (cb, fb) in zip(a.steps, b.steps))


def _copy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        return tuple(_copy(v) for v in value)
    if isinstance(value, list):
        return [_copy(v) for v in value]
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return value


def fixed(*cases: Case) -> tuple[Case, ...]:
    """The course's own examples, run as they are, in order (nothing to draw or shrink)."""
    return cases


# -- strategies ---------------------------------------------------------------------------------
# The byte strings of every array may be this long (an array reads the bytes it needs from the
# start): a string that fits one array fits every smaller one, so when hypothesis shrinks a shape,
# or copies one array's string into another's place while generating, the values are kept instead
# of being replaced by zeros.
ARRAY_ROOM = 1 << 14


def small_arrays(shape: tuple[int, ...], *, low: int = -9, high: int = 9, unique: bool = False
                 ) -> st.SearchStrategy[np.ndarray]:
    """Float arrays of small integers in [low, high]: exact in float64, and they shrink to
    readable examples (values nearest 0 first).

    An array is one choice for hypothesis (a byte string, a byte or two per value, read from its
    start), not one choice per value: its shrinker then tries the whole array at its simplest in one
    call and lowers the sizes drawn before it, instead of first trying every value of a big array one
    by one (measured: a failing conv_backward shrinks in ~100 calls instead of ~380). The string may
    be longer than the array (ARRAY_ROOM), so a smaller shape keeps the first values. An array of
    more than one value is never all zeros: hypothesis, generating, copies parts of an input over
    others of their kind, and a string that does not fit becomes the simplest one (without this,
    half of conv_backward's examples had all-zero arrays: tests/test_small_arrays.py).

    unique=True gives distinct values, e.g. max-pool windows without ties: a seeded random
    permutation of 0..size-1 (hypothesis' own permutations start near ascending order,
    where overlapping max-pool windows never share their maximum and bugs hide).
    """
    size = math.prod(shape)
    if unique:
        return st.integers(0, 2**16).map(
            lambda seed: np.random.RandomState(seed).permutation(size).astype(np.float64).reshape(shape))
    if high < low:
        raise ValueError(f"small_arrays: low {low} > high {high}")
    ladder = value_ladder(low, high)
    width = 1 if len(ladder) <= 1 << 8 else 2
    if len(ladder) > 1 << 16:
        raise ValueError(f"small_arrays: [{low}, {high}] has more than 65536 values")
    table = np.asarray(ladder, dtype=np.float64)
    dtype = np.uint8 if width == 1 else np.dtype("<u2")

    def values(raw: bytes) -> np.ndarray:
        return table[np.frombuffer(raw, dtype=dtype).astype(np.int64) % len(table)].reshape(shape)

    need = size * width
    arrays = st.binary(min_size=need, max_size=max(need, ARRAY_ROOM)).map(lambda raw: values(raw[:need]))
    return arrays.filter(lambda a: a.any()) if size > 1 else arrays


def value_ladder(low: int, high: int) -> list[int]:
    """The integers of [low, high], simplest first: the one nearest 0, then alternately above and
    below it (0, 1, -1, 2, -2, ... for [-9, 9]; 0, 1, 2, ... for [0, 255]). Each value of an array
    is ladder[b % len(ladder)] for its byte b (two bytes, little-endian, past 256 values), so the
    zero byte, where hypothesis shrinks to, is the simplest value."""
    origin = min(max(0, low), high)
    return sorted(range(low, high + 1), key=lambda v: (abs(v - origin), v < origin))
