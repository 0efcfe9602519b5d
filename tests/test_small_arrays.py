"""The property checks' array strategy (grader.checks.small_arrays): what it draws, and that a
failure shrinks to a small, readable input in few calls of the student's function."""

from __future__ import annotations

import numpy as np
import pytest

from exercises.conv_step_by_step import checks as cc
from grader.checks import Case, Failure, check_property, draw_examples, small_arrays, value_ladder
from reference import conv_step_by_step as ref


def test_the_ladder_lists_every_value_of_the_range_once_simplest_first():
    assert value_ladder(-3, 3) == [0, 1, -1, 2, -2, 3, -3]
    assert value_ladder(0, 4) == [0, 1, 2, 3, 4]
    assert value_ladder(2, 4) == [2, 3, 4]          # 0 not in the range: the bound nearest it first
    assert value_ladder(-5, -2) == [-2, -3, -4, -5]
    assert sorted(value_ladder(-9, 9)) == list(range(-9, 10))


@pytest.mark.parametrize("low, high", [(-9, 9), (0, 255), (-3, 3), (1, 1), (-300, 300)])
def test_drawn_arrays_have_the_shape_and_only_values_of_the_range(low, high):
    drawn = draw_examples(small_arrays((2, 3), low=low, high=high), 60)
    values = np.stack(drawn)
    assert all(a.shape == (2, 3) and a.dtype == np.float64 for a in drawn)
    assert values.min() >= low and values.max() <= high
    assert (values == np.round(values)).all()
    if high - low >= 6:   # spread over the range, not stuck at its simplest values
        assert len(np.unique(values)) > (high - low + 1) // 2 or len(np.unique(values)) > 40


def test_drawn_arrays_are_not_all_zeros():
    """hypothesis, while generating, copies one part of an input over another of the same kind; a
    byte string that no longer fits would become the simplest one, all zeros (half of conv_backward's
    examples were, before strings could be longer than their array and zero arrays were refused)."""
    for strategy in (cc.conv_backward_cases(), cc.pool_backward_cases(), cc.conv_forward_cases()):
        drawn = draw_examples(strategy, 25)
        arrays = [a for case in drawn for a in _arrays(case.args) if a.size > 1]
        assert all(a.any() for a in arrays)
        if "pool" not in repr(strategy):   # (pool_backward's A_prev: a permutation)
            values = np.concatenate([a.ravel() for a in arrays])
            assert 0.3 < (values < 0).mean() < 0.6 and (values == 0).mean() < 0.15


def _arrays(value) -> list[np.ndarray]:
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, tuple | list):
        return [a for v in value for a in _arrays(v)]
    return []


def test_when_a_shape_shrinks_the_array_keeps_its_first_values():
    """A ReLU applied to conv_single_step's output (a mistake only negative sums show): the shrink
    must be able to make the window smaller without losing the negative value, or it stays at the
    largest window (97 values shown, unreadable, before byte strings could outlast their array)."""
    def holds(case: Case) -> None:
        a, W, b = case.args
        if ref.conv_single_step(a, W, b) < 0:
            raise Failure("negative output clipped")

    calls, reported = [0], []

    def counted(case: Case) -> None:
        calls[0] += 1
        holds(case)

    with pytest.raises(Failure):
        check_property(cc.conv_single_step_cases(), counted, examples=25, what="conv_single_step", show_input=str,
                       report=lambda failure, case: (reported.append(case), failure)[1])
    assert sum(np.asarray(a).size for a in reported[0].args) <= 6, reported[0].args


def test_a_range_that_cannot_be_drawn_is_refused():
    with pytest.raises(ValueError, match="low 3 > high 2"):
        small_arrays((2,), low=3, high=2)
    with pytest.raises(ValueError, match="more than 65536"):
        small_arrays((2,), low=0, high=1 << 17)


def _shrunk(strategy, holds) -> tuple[Case, int]:
    """The input check_property reports for `holds`, and how many calls it made in all."""
    calls, reported = [0], []

    def counted(case: Case) -> None:
        calls[0] += 1
        holds(case)

    with pytest.raises(Failure):
        check_property(strategy, counted, examples=25, what="pool_forward", show_input=str,
                       report=lambda failure, case: (reported.append(case), failure)[1])
    return reported[0], calls[0]


def _pool(case: Case, A_prev: np.ndarray) -> np.ndarray:
    return ref.pool_forward(A_prev, case.args[1], **case.kwargs)[0]


# Two mistakes of the course's pool_forward, as plain functions, on the exercise's own strategy
# (it draws sizes, stride, window and mode, then the array). With one hypothesis choice per array
# value they took 120 and 70 calls to shrink (each value of the first big failing array was tried
# at zero, one call each, before its shape could shrink); a student's kernel answers each call.
def test_a_mistake_that_ignores_the_example_index_shrinks_in_few_calls():
    def holds(case: Case) -> None:
        A_prev = case.args[0]
        if not np.array_equal(_pool(case, np.repeat(A_prev[:1], len(A_prev), axis=0)), _pool(case, A_prev)):
            raise Failure("only the first example is pooled")

    minimal, calls = _shrunk(cc.pool_forward_cases(), holds)
    A_prev = minimal.args[0]
    # a few one-pixel examples, zeros but for the simplest value in a later one (no array of the
    # random inputs is all zeros: see test_drawn_arrays_are_not_all_zeros)
    assert A_prev.shape[1:] == (1, 1, 1) and 2 <= len(A_prev) <= 3
    assert A_prev[-1].item() == 1.0 and not A_prev[:-1].any()
    assert minimal.args[1] == {"stride": 1, "f": 1}
    assert calls <= 70, calls


def test_a_mistake_in_average_pooling_shrinks_in_few_calls():
    def holds(case: Case) -> None:
        if case.kwargs["mode"] == "average" and _pool(case, case.args[0]).any():
            raise Failure("the average is twice what it should be")

    minimal, calls = _shrunk(cc.pool_forward_cases(), holds)
    assert minimal.args[0].tolist() == [[[[1.0]]]] and minimal.kwargs == {"mode": "average"}
    assert calls <= 40, calls
