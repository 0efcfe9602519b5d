"""One check's surprise is that check's error, never the submission's failure.

No kernel: `_grade_item` runs with a fake kernel (every name defined) and a fake exercise,
and the non-deterministic students are plain functions behind tests/conftest.py's
InProcessStudent (their calls still cross the real probe boundary).
"""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.checks import Case, Check, Context, Failure, agrees_with_reference, run_property, small_arrays
from grader.grading import _grade_item
from grader.spec import Item, Tolerance
from reference import conv_step_by_step as ref


class EveryNameDefined:
    """A kernel stand-in: every name the item needs is defined."""

    def defined(self, names):
        return set(names)


def grade(checks: dict[str, list[Check]], item: Item):
    exercise = SimpleNamespace(checks=SimpleNamespace(CHECKS=checks), item_checks=checks.__getitem__)
    return _grade_item(item, exercise, EveryNameDefined(), run=None, nb=None, ctx=Context(Tolerance(1e-5, 1e-6), 1))


def passes(kernel, ctx) -> None:
    pass


def fails(kernel, ctx) -> None:
    raise Failure("expected 1, got 2")


def raises(exc: Exception):
    def run(kernel, ctx) -> None:
        raise exc
    return run


def recurses(kernel, ctx) -> None:
    def down(n):
        return down(n + 1) + 1
    down(0)


def test_a_check_that_raises_is_an_error_of_its_own_with_the_cause():
    item = Item("f", 4.0)
    tests = grade({"f": [Check("first", passes), Check("broken", raises(ValueError("setting an array element"))),
                         Check("recursive", recurses), Check("last", passes)]}, item)
    by_aspect = {t.name.split(": ", 1)[1]: t for t in tests}
    assert [t.status for t in tests] == ["passed", "error", "error", "passed"]
    assert by_aspect["first"].score == by_aspect["last"].score == 1.0
    broken, recursive = by_aspect["broken"], by_aspect["recursive"]
    assert broken.score == 0.0 and broken.output.startswith("this check could not be run: ")
    assert "ValueError: setting an array element" in broken.output
    assert recursive.score == 0.0 and "RecursionError" in recursive.output


def test_a_raising_check_does_not_stop_the_other_items():
    checks = {"f": [Check("broken", raises(TypeError("unhashable type: 'numpy.ndarray'")))],
              "g": [Check("fine", passes), Check("wrong", fails)]}
    f_tests, g_tests = grade(checks, Item("f", 2.0)), grade(checks, Item("g", 2.0))
    assert [(t.status, t.score) for t in f_tests] == [("error", 0.0)]
    assert "TypeError: unhashable type" in f_tests[0].output
    assert [(t.status, t.score, t.output) for t in g_tests] == [("passed", 1.0, ""), ("failed", 0.0, "expected 1, got 2")]


def test_the_cause_shown_is_bounded():
    tests = grade({"f": [Check("huge", raises(ValueError("x" * 100_000)))]}, Item("f", 1.0))
    assert tests[0].status == "error" and "ValueError" in tests[0].output
    assert len(tests[0].output) < 2000


def test_keyboard_interrupt_is_not_swallowed():
    with pytest.raises(KeyboardInterrupt):
        grade({"f": [Check("interrupted", raises(KeyboardInterrupt()))]}, Item("f", 1.0))


# -- non-deterministic student functions ---------------------------------------------------------------
def zero_pad_cases():
    return st.builds(lambda X, pad: Case((X, pad), names=("X", "pad")),
                     st.integers(1, 3).flatmap(lambda n: small_arrays((n, 2, 2, 1))), st.integers(0, 2))


def every_third_call_wrong():
    calls = itertools.count(1)

    def zero_pad(X, pad):
        return ref.zero_pad(X, pad) + (next(calls) % 3 == 0)
    return zero_pad


def sometimes_wrong():
    rng = random.Random(0)

    def zero_pad(X, pad):
        return ref.zero_pad(X, pad) + (rng.random() < 0.3)
    return zero_pad


def random_answer():
    rng = np.random.RandomState(0)

    def zero_pad(X, pad):
        return ref.zero_pad(X, pad) + rng.rand()
    return zero_pad


def every_other_call_wrong():
    calls = itertools.count(0)

    def zero_pad(X, pad):
        return ref.zero_pad(X, pad) + (next(calls) % 2)
    return zero_pad


@pytest.mark.parametrize("student", [every_third_call_wrong, sometimes_wrong, random_answer, every_other_call_wrong])
def test_a_non_deterministic_function_is_told_so_with_the_input(student, make_student, conv_context):
    check = agrees_with_reference("zero_pad", ref.zero_pad, zero_pad_cases(), output="X_pad")
    with pytest.raises(Failure) as failure:
        check(make_student({"zero_pad": student()}), conv_context)
    message = str(failure.value)
    assert "zero_pad returns different results for the same input" in message
    assert "  X = array of shape" in message and "  pad = " in message


class BatchingStudent:
    """A student with the kernel's call_many (one call after another here)."""

    def __init__(self, student):
        self.call = student.call

    def call_many(self, function, calls):
        return [self.call(function, args, kwargs) for args, kwargs in calls]


def test_a_function_wrong_only_in_the_batch_is_told_it_is_not_deterministic(make_student, conv_context):
    calls = itertools.count(0)

    def zero_pad(X, pad):  # wrong on its first call only: the batch sees it, the call-by-call run does not
        return ref.zero_pad(X, pad) + (next(calls) == 0)
    check = agrees_with_reference("zero_pad", ref.zero_pad, zero_pad_cases(), output="X_pad")
    with pytest.raises(Failure) as failure:
        check(BatchingStudent(make_student({"zero_pad": zero_pad})), conv_context)
    assert "zero_pad returns different results for the same input:\n  X = array of shape" in str(failure.value)


def test_a_deterministic_wrong_answer_is_still_shown_as_a_difference(make_student, conv_context):
    def zero_pad(X, pad):
        return ref.zero_pad(X, pad) + 1
    check = agrees_with_reference("zero_pad", ref.zero_pad, zero_pad_cases(), output="X_pad")
    with pytest.raises(Failure) as failure:
        check(make_student({"zero_pad": zero_pad}), conv_context)
    assert "different results" not in str(failure.value) and "X_pad:" in str(failure.value)


def test_a_deterministic_nan_answer_is_not_called_non_deterministic(make_student, conv_context):
    def zero_pad(X, pad):
        return ref.zero_pad(X, pad) * np.nan
    check = agrees_with_reference("zero_pad", ref.zero_pad, zero_pad_cases(), output="X_pad")
    with pytest.raises(Failure) as failure:
        check(make_student({"zero_pad": zero_pad}), conv_context)
    assert "different results" not in str(failure.value)


def test_hypothesis_flakiness_becomes_a_failure_showing_the_input():
    """The message clean-up of the one property-check helper (checks.check_property)."""
    tried = []

    @settings(database=None, deadline=None, max_examples=20)
    @given(st.integers(0, 9))
    def prop(x: int) -> None:
        tried.append(x)
        if len(tried) == 1:  # fails on its first input only
            raise Failure(f"wrong on {x}")

    with pytest.raises(Failure) as failure:
        run_property(prop, "block", lambda: f"  x = {tried[-1]}")
    assert str(failure.value).startswith(f"block returns different results for the same input:\n  x = {tried[0]}\n")


def test_the_property_runner_passes_other_errors_on():
    @settings(database=None, deadline=None, max_examples=5)
    @given(st.integers(0, 9))
    def prop(x: int) -> None:
        raise ZeroDivisionError("a grader bug")

    with pytest.raises(ZeroDivisionError):
        run_property(prop, "block", lambda: "")
