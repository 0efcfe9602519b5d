"""The reference's answers remembered by input (checks.reference_by_input, content_key): a class that
repeats a mistake shrinks along the same inputs, and the reference answers each of them once."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

from grader import checks
from grader.boundary import KerasInitializer
from grader.checks import Case, Context, agrees_with_reference, content_key, reference_by_input, small_arrays
from grader.spec import Tolerance


@pytest.mark.parametrize("a, b", [
    (0.0, -0.0),
    (True, 1),
    (1, 1.0),
    (np.zeros(2, np.float32), np.zeros(2, np.float64)),
    (np.zeros((1, 2)), np.zeros((2, 1))),
    (np.array([1.0, 2.0]), np.array([1.0, 2.5])),
    ((1, 2), [1, 2]),
    ({"a": 1}, {"a": 2}),
    (KerasInitializer("Constant", {"value": 1}), KerasInitializer("Constant", {"value": 2})),
    (np.float32(1), np.float64(1)),
])
def test_different_data_has_different_keys(a, b):
    ka, kb = content_key(Case((a,))), content_key(Case((b,)))
    assert ka is not None and kb is not None and ka != kb


def test_the_same_data_has_one_key():
    x = np.arange(6.0).reshape(2, 3)
    assert content_key(Case((x, 2), {"s": 1, "f": [1, 2]})) == content_key(Case((x.copy(), 2), {"s": 1, "f": [1, 2]}))
    assert content_key(Case((KerasInitializer("RandomUniform", {"seed": 0}),))) == \
        content_key(Case((KerasInitializer("RandomUniform", {"seed": 0}),)))


@pytest.mark.parametrize("value", [
    object(),
    np.array([object()]),
    np.zeros(checks.MEMO_INPUT_BYTES // 8 + 1),
    np.zeros((4, 4))[:, 1],          # not contiguous
    (1, object()),
])
def test_what_is_not_plain_data_or_too_big_is_not_remembered(value):
    assert content_key(Case((value,))) is None


def counting_reference() -> tuple[list, Any]:
    asked: list = []

    def reference(x: np.ndarray, s: int = 1) -> np.ndarray:
        asked.append(x.copy())
        if s < 0:
            raise ValueError("s must be at least 0")
        return x * s
    return asked, reference


def test_an_input_asked_again_is_answered_from_memory_with_a_copy():
    asked, reference = counting_reference()
    answer = reference_by_input(reference)
    x = np.array([1.0, 2.0])
    first = answer(Case((x,), {"s": 3}))
    first[0] = 99.0                      # the caller's copy, not the remembered one
    again = answer(Case((x.copy(),), {"s": 3}))
    assert len(asked) == 1 and list(again) == [3.0, 6.0]
    answer(Case((x,), {"s": 2}))
    assert len(asked) == 2


def test_an_answer_the_reference_raised_is_asked_again():
    asked, reference = counting_reference()
    answer = reference_by_input(reference)
    for _ in range(2):
        with pytest.raises(ValueError):
            answer(Case((np.ones(1),), {"s": -1}))
    assert len(asked) == 2


def test_only_the_latest_inputs_are_kept(monkeypatch):
    monkeypatch.setattr(checks, "MEMO_ENTRIES", 2)
    asked, reference = counting_reference()
    answer = reference_by_input(reference)
    for v in (1.0, 2.0, 3.0, 1.0):
        answer(Case((np.array([v]),)))
    assert len(asked) == 4   # 1.0 had been dropped for 3.0


class Student:
    """A student whose function gets the sign wrong on inputs with a value above 3."""

    def call(self, function: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        x = args[0]
        return np.where(x > 3, -x, x) * (kwargs or {}).get("s", 1)

    def call_many(self, function: str, calls: list) -> list:
        return [self.call(function, args, kwargs) for args, kwargs in calls]


def test_a_second_submission_with_the_same_mistake_shrinks_without_asking_the_reference():
    asked, reference = counting_reference()
    strategy = small_arrays((3,)).map(lambda x: Case((x,), {"s": 1}, names=("x",)))
    check = agrees_with_reference("scale", reference, strategy)
    ctx = Context(Tolerance(1e-7, 1e-9), 20)
    feedback = []
    for submission in range(2):
        before = len(asked)
        with pytest.raises(AssertionError) as failed:
            check(Student(), ctx)
        feedback.append((str(failed.value), len(asked) - before))
    (first, asked_first), (second, asked_second) = feedback
    assert first == second and "x = " in first
    assert asked_first > 0 and asked_second == 0
