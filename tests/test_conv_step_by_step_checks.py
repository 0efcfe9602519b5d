"""exercises/conv_step_by_step/checks.py and grader/checks.py against known-good and known-bad students.

No kernel: students are plain functions behind tests/conftest.py's InProcessStudent, whose calls
still round-trip through the real probe serialisation (write_call, the kernel-side runtime,
read_result). Bad students are the realistic mistakes of the course, planted one at a time into
course-style loop solutions (or the reference); each must fail exactly the expected checks, with
feedback that names the input, the output and what was expected vs got.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from itertools import takewhile
from typing import Any

import numpy as np
import pytest

from grader.checks import Case, Context, Failure, agrees_with_reference, compare, fixed, part
from grader.spec import Tolerance
from reference import conv_step_by_step as ref

from .course_loops import (COURSE, course_conv_backward, course_conv_forward, course_conv_single_step,  # noqa: F401
                           course_create_mask_from_window, course_distribute_value, course_pool_backward,
                           course_pool_forward, course_zero_pad)

REFERENCE = {name: getattr(ref, name) for name in ref.__all__}


def run_checks(student: Any, exercise: Any, ctx: Context, item: str) -> dict[str, str | None]:
    """aspect -> feedback of every check of `item` (None where the check passed). A context with
    an examples cache gives each check its own scope of it, as the grader's runner does."""
    outcome: dict[str, str | None] = {}
    for check in exercise.checks.CHECKS[item]:
        scoped = ctx if ctx.examples is None else replace(ctx, examples=ctx.examples.scoped(f"{item}: {check.aspect}"))
        try:
            check.run(student, scoped)
            outcome[check.aspect] = None
        except Failure as exc:
            outcome[check.aspect] = str(exc)
    return outcome


def failed(outcome: dict[str, str | None]) -> set[str]:
    return {aspect for aspect, message in outcome.items() if message is not None}


_SHAPE = re.compile(r"array of shape \(([\d, ]*)\)")


def input_array_sizes(message: str) -> list[int]:
    """Element counts of the arrays shown as the input (the indented block after "on input:")."""
    shown = message.split("on input:\n", 1)[1]
    block = "\n".join(takewhile(lambda line: line.startswith(" "), shown.splitlines()))
    return [math.prod(int(d) for d in m.group(1).split(",") if d.strip()) for m in _SHAPE.finditer(block)]




# --------------------------------------------------------------------------- correct students pass


def _all_checks() -> list[Any]:
    from grader.spec import load_exercise

    exercise = load_exercise("conv_step_by_step")
    return [pytest.param(item, check.aspect, id=f"{item}-{check.aspect}")
            for item, checks in exercise.checks.CHECKS.items() for check in checks]


def test_every_item_has_a_course_example_and_a_random_inputs_check(conv_exercise):
    for item in conv_exercise.items:
        aspects = [check.aspect for check in conv_exercise.checks.CHECKS[item.name]]
        assert "random inputs" in aspects and any(a.startswith("course example") for a in aspects), item.name


@pytest.mark.parametrize(("item", "aspect"), _all_checks())
def test_reference_passes(item, aspect, conv_exercise, conv_context, make_student):
    check, = [c for c in conv_exercise.checks.CHECKS[item] if c.aspect == aspect]
    check.run(make_student(REFERENCE), conv_context)


@pytest.mark.parametrize("item", list(COURSE))
def test_course_style_loop_solution_passes_every_check(item, conv_exercise, conv_context, make_student):
    """The control group of the mutants below: without a planted bug, the loop solution passes."""
    assert failed(run_checks(make_student({**REFERENCE, item: COURSE[item]}), conv_exercise, conv_context, item)) \
        == set()


# --------------------------------------------------------------------------- hard-coded answers


def _course_answers() -> dict[str, Callable[..., Any]]:
    """Students that return the course notebook's printed answers, whatever the input.

    The inputs are rebuilt here from the notebook (np.random.seed(1), then randn in its order),
    independently of checks.py, so this also pins that the "course example" checks use them.
    """
    def seeded():
        return np.random.RandomState(1)

    X = seeded().randn(4, 3, 3, 2)
    r = seeded()
    A_prev, W, b = r.randn(2, 5, 7, 4), r.randn(3, 3, 4, 8), r.randn(1, 1, 1, 8)
    conv = ref.conv_forward(A_prev, W, b, {"pad": 1, "stride": 2})
    pools = {(mode, s): ref.pool_forward(seeded().randn(2, 5, 5, 3), {"stride": s, "f": 3}, mode)
             for mode in ("max", "average") for s in (1, 2)}
    r = seeded()
    A_prev, W, b = r.randn(10, 4, 4, 3), r.randn(2, 2, 3, 8), r.randn(1, 1, 1, 8)
    Z, cache = ref.conv_forward(A_prev, W, b, {"pad": 2, "stride": 2})
    conv_grads = ref.conv_backward(Z, cache)
    r = seeded()
    _, pool_cache = ref.pool_forward(r.randn(5, 5, 3, 2), {"stride": 1, "f": 2})
    dA = r.randn(5, 4, 2, 2)
    pool_grads = {mode: ref.pool_backward(dA, pool_cache, mode) for mode in ("max", "average")}
    mask = ref.create_mask_from_window(np.array([[-1.0, 2, 3], [2, -3, 2], [1, 5, -2]]))
    return {
        "zero_pad": lambda X_, pad: ref.zero_pad(X, 3),
        "conv_single_step": lambda a, W_, b_: np.float64(-6.999089450680221),
        "conv_forward": lambda *args: conv,
        "pool_forward": lambda A, hp, mode="max": pools[(mode, hp["stride"])],
        "conv_backward": lambda dZ, cache_: conv_grads,
        "create_mask_from_window": lambda x: mask,
        "distribute_value": lambda dz, shape: np.full((2, 2), 0.5),
        "pool_backward": lambda dA_, cache_, mode="max": pool_grads[mode],
    }


@pytest.mark.parametrize("item", list(REFERENCE))
def test_hard_coded_course_answers_pass_course_examples_only(item, conv_exercise, conv_context, make_student):
    outcome = run_checks(make_student(_course_answers()), conv_exercise, conv_context, item)
    course = {aspect for aspect in outcome if aspect.startswith("course example")}
    assert course, f"{item} has no course example check"
    assert failed(outcome) == set(outcome) - course
    assert "random inputs" in failed(outcome)
    assert f"{item} on input:" in outcome["random inputs"]


# --------------------------------------------------------------------------- planted bugs


def _zero_pad_returns_lambda(X, pad):
    return lambda: X


def _raises(X, pad):
    raise ValueError("operands could not be broadcast together")


def _argmax_mask(x):
    mask = np.zeros_like(x)
    mask[np.unravel_index(np.argmax(x), x.shape)] = 1
    return mask


def _pool_forward_only_example_0(A_prev, hparameters, mode="max"):
    return course_pool_forward(A_prev, hparameters, mode, same_example=True)


def mutant(item: str, function: Callable[..., Any], fails: set[str], fragments: tuple[str, ...], *,
           max_elements: int | None = None, id: str):
    """One planted bug: `fails` are the checks of `item` that must fail (all others must pass),
    each failing message must contain every fragment, and the shrunk input of a failing property
    check must have no array of more than max_elements values."""
    return pytest.param(item, function, fails, fragments, max_elements, id=id)


ALL = None  # every check of the item

MUTANTS = [
    mutant("zero_pad", lambda X, pad: course_zero_pad(X, pad, channel_pad=pad), ALL,
           ("X_pad: expected shape",), max_elements=1, id="zero_pad-pads-channels-too"),
    mutant("zero_pad", lambda X, pad: course_zero_pad(X, pad, width=(0, 2 * pad)), ALL,
           ("X_pad:", "values differ; first at index", "expected"), max_elements=1,
           id="zero_pad-wrong-pad-on-width"),
    mutant("conv_single_step", lambda a, W, b: course_conv_single_step(a, W, b, as_scalar=False), ALL,
           ("Z: expected a scalar", "got an array of shape (1, 1, 1)"), max_elements=1,
           id="conv_single_step-returns-1x1x1-array"),
    mutant("conv_single_step", lambda a, W, b: course_conv_single_step(a, W, b, with_b=False), ALL,
           ("Z: value differs", "expected"), max_elements=1, id="conv_single_step-ignores-b"),
    mutant("conv_forward", lambda *a: course_conv_forward(*a, plus_one=0), {"course example", "random inputs"},
           ("Z: expected shape",), max_elements=1, id="conv_forward-missing-plus-1-in-n_H"),
    mutant("conv_forward", lambda *a: course_conv_forward(*a, stride_1=True), {"course example", "random inputs"},
           ("Z: expected shape",), max_elements=4, id="conv_forward-stride-always-1"),
    mutant("conv_forward", lambda *a: course_conv_forward(*a, cache_padded=True), {"cache"},
           ("cache[0]: expected shape", "Hint: the cache holds A_prev as it was passed in (before padding)"),
           max_elements=1, id="conv_forward-caches-padded-A_prev"),
    mutant("conv_forward", lambda *a: course_conv_forward(*a, with_cache=False), ALL,
           ("expected a tuple (Z, cache), got an array of shape",), max_elements=1, id="conv_forward-returns-only-Z"),
    mutant("pool_forward", _pool_forward_only_example_0, {"course examples", "random inputs"},
           ("A:", "values differ; first at index ("), max_elements=3,
           id="pool_forward-ignores-example-index"),
    mutant("pool_forward", lambda A, hp, mode="max": course_pool_forward(A, hp, mode, divisor=lambda f: f),
           {"course examples", "random inputs"}, ("A:", "mode = 'average'", "expected"), max_elements=4,
           id="pool_forward-average-divides-by-f"),
    mutant("pool_forward", lambda A, hp, mode="max": course_pool_forward(A, hp, mode, ignore_mode=True),
           {"course examples", "random inputs"}, ("A:", "mode = 'average'", "expected"), max_elements=4,
           id="pool_forward-ignores-mode"),
    mutant("pool_forward", lambda A, hp, mode="max": course_pool_forward(A, hp, mode, cache_hparameters=False),
           {"cache"}, ("cache: expected a tuple of 2 values, got 1 values", "Hint: cache = (A_prev, hparameters)"),
           max_elements=1, id="pool_forward-cache-without-hparameters"),
    mutant("conv_backward", lambda dZ, cache: course_conv_backward(dZ, cache, accumulate=False), ALL,
           ("dA_prev:", "differ", "expected"), max_elements=32, id="conv_backward-assigns-instead-of-adding"),
    mutant("conv_backward", lambda dZ, cache: course_conv_backward(dZ, cache, with_db=False), ALL,
           ("db:", "expected"), max_elements=9, id="conv_backward-forgets-db"),
    mutant("create_mask_from_window", _argmax_mask, ALL,
           ("mask: expected bool values (dtype bool), got dtype float64",), max_elements=1,
           id="create_mask-argmax-float-mask"),
    mutant("create_mask_from_window", lambda x: x > np.mean(x), ALL, ("mask:", "expected"),
           max_elements=1, id="create_mask-above-mean"),
    mutant("distribute_value", lambda dz, shape: np.ones(shape) * dz / shape[0], ALL, ("a:", "expected 0.5"),
           id="distribute_value-divides-by-n_H-only"),
    mutant("pool_backward", lambda dA, cache, mode="max": course_pool_backward(dA, cache, mode, accumulate=False),
           {"course examples", "random inputs"}, ("dA_prev:", "mode = 'max'", "expected"), max_elements=12,
           id="pool_backward-max-assigns-instead-of-adding"),
    mutant("pool_backward",
           lambda dA, cache, mode="max": course_pool_backward(dA, cache, mode, divide_average=False),
           {"course examples", "random inputs"}, ("dA_prev:", "mode = 'average'", "expected"), max_elements=4,
           id="pool_backward-average-not-divided-by-f-squared"),
    mutant("zero_pad", _raises, ALL, ("zero_pad raised ValueError: operands could not be broadcast together",),
           max_elements=1, id="raises"),
    mutant("zero_pad", lambda X, pad: None, ALL, ("X_pad: expected a numpy array of shape", "got None"),
           max_elements=1, id="returns-None"),
    mutant("conv_single_step", lambda a, W, b: None, ALL, ("Z: expected a number, got None",), max_elements=1,
           id="scalar-returns-None"),
    mutant("zero_pad", _zero_pad_returns_lambda, ALL, ("X_pad: expected an array of shape", "function",
                                                       "only arrays, numbers, tuples, lists and dicts can be graded"),
           max_elements=1, id="returns-a-lambda"),
    mutant("conv_forward", lambda *a: (course_conv_forward(*a)[0], lambda: None), {"cache"},
           ("cache: expected a tuple, got builtins.function", "can be graded"), max_elements=1,
           id="cache-is-a-lambda"),
]


@pytest.mark.parametrize(("item", "function", "fails", "fragments", "max_elements"), MUTANTS)
def test_planted_bug_fails_expected_checks(item, function, fails, fragments, max_elements, conv_exercise,
                                           conv_context, make_student):
    outcome = run_checks(make_student({**REFERENCE, item: function}), conv_exercise, conv_context, item)
    assert failed(outcome) == (set(outcome) if fails is ALL else fails), outcome
    for aspect in failed(outcome):
        message = outcome[aspect]
        assert message.startswith(f"{item} on input:\n"), message
        for fragment in fragments:
            assert fragment in message, f"{aspect}: {fragment!r} not in\n{message}"
        if max_elements is not None and not aspect.startswith("course"):
            sizes = input_array_sizes(message)
            assert sizes and max(sizes) <= max_elements, f"{aspect}: input not minimal:\n{message}"


def test_distribute_value_bug_is_shown_on_a_smallest_window(conv_exercise, conv_context, make_student):
    student = make_student({**REFERENCE, "distribute_value": lambda dz, shape: np.ones(shape) * dz / shape[0]})
    message = run_checks(student, conv_exercise, conv_context, "distribute_value")["random inputs"]
    shape = re.search(r"shape = \((\d+), (\d+)\)", message)
    assert shape and math.prod(map(int, shape.groups())) <= 2, message


def test_missing_function_is_reported_as_not_defined(conv_exercise, conv_context, make_student):
    functions = {name: f for name, f in REFERENCE.items() if name != "pool_forward"}
    outcome = run_checks(make_student(functions), conv_exercise, conv_context, "pool_forward")
    assert failed(outcome) == set(outcome)
    assert all("pool_forward raised NameError: pool_forward is not defined" in m for m in outcome.values())


def test_failing_backward_example_shows_the_cached_arrays_values(conv_exercise, conv_context, make_student):
    student = make_student({**REFERENCE, "pool_backward": lambda dA, cache, mode="max":
                            course_pool_backward(dA, cache, mode, accumulate=False)})
    message = run_checks(student, conv_exercise, conv_context, "pool_backward")["random inputs"]
    assert max(input_array_sizes(message)) <= 36, message  # small enough for show() to print in full
    assert "<array of shape" not in message, message


def test_non_data_answer_where_a_tuple_is_expected_says_what_it_was(conv_exercise, conv_context, make_student):
    student = make_student({**REFERENCE, "conv_forward": lambda *a: (lambda: None)})
    outcome = run_checks(student, conv_exercise, conv_context, "conv_forward")
    assert failed(outcome) == set(outcome)
    for message in outcome.values():
        assert "expected a tuple (Z, cache)" in message
        assert "function" in message and "can be graded" in message, message


# --------------------------------------------------------------------------- compare()

TOL = Tolerance(rtol=1e-5, atol=1e-7)


def compare_message(got: Any, expected: Any, where: str = "out", hints: dict | None = None) -> str:
    with pytest.raises(Failure) as info:
        compare(got, expected, where, TOL, hints)
    return str(info.value)


def test_compare_tuple_expected_array_got():
    assert compare_message(np.zeros(2), (np.zeros(2), np.zeros(2))) == \
        "out: expected a tuple of 2 values, got an array of shape (2,)"


def test_compare_array_expected_tuple_got():
    assert compare_message((np.zeros(2),), np.zeros(2)) == "out: expected a numpy array of shape (2,), got a tuple"


def test_compare_tuple_of_wrong_length():
    assert compare_message((1.0, 2.0, 3.0), (1.0, 2.0)) == "out: expected a tuple of 2 values, got 3 values"


def test_compare_accepts_a_list_for_a_tuple():
    compare([np.ones(2), 1.0], (np.ones(2), 1.0), "out", TOL)


def test_compare_names_the_differing_element_of_a_tuple():
    message = compare_message((np.ones(2), np.zeros(3)), (np.ones(2), np.zeros(2)), "cache")
    assert message == "cache[1]: expected shape (2,), got shape (3,)"


def test_compare_dict_keys():
    message = compare_message({"f": 2}, {"f": 2, "stride": 1}, "hparameters")
    assert message == "hparameters: expected keys ['f', 'stride'], got ['f']"


def test_compare_dict_values_named_by_key():
    assert compare_message({"f": 2, "stride": 3}, {"f": 2, "stride": 1}, "hp").startswith("hp['stride']: value differs")


def test_compare_dtype_kind_bool_vs_float():
    message = compare_message(np.array([1.0, 0.0]), np.array([True, False]), "mask")
    assert message == "mask: expected bool values (dtype bool), got dtype float64"


def test_compare_dtype_kind_float_vs_bool():
    assert "expected number values" in compare_message(np.array([True]), np.array([1.0]))


def test_compare_int_and_float_arrays_are_the_same_kind():
    compare(np.array([1, 2]), np.array([1.0, 2.0]), "out", TOL)


def test_compare_scalar_expected_array_got():
    assert compare_message(np.array([[[3.0]]]), np.float64(3.0), "Z") == \
        "Z: expected a scalar (a float64 scalar), got an array of shape (1, 1, 1)"


def test_compare_accepts_python_float_and_0d_array_for_a_scalar():
    compare(3.0, np.float64(3.0), "Z", TOL)
    compare(np.array(3.0), np.float64(3.0), "Z", TOL)


def test_compare_nan_never_equals_nan():
    assert "expected nan, got nan" in compare_message(np.array([1.0, np.nan]), np.array([1.0, np.nan]))
    assert "value differs" in compare_message(float("nan"), np.float64("nan"))


def test_compare_nan_where_a_number_is_expected():
    assert "expected 1, got nan" in compare_message(np.array([np.nan]), np.array([1.0]))


@pytest.mark.parametrize("relative", [0.0, 0.5e-5, 0.9e-5])
def test_compare_within_rtol_passes(relative):
    compare(np.array([1000.0 * (1 + relative)]), np.array([1000.0]), "out", TOL)


@pytest.mark.parametrize("relative", [1.2e-5, 1e-3])
def test_compare_beyond_rtol_fails(relative):
    assert "value differs at index (0,): expected 1000, got 10" in \
        compare_message(np.array([1000.0 * (1 + relative)]), np.array([1000.0]))


def test_compare_atol_near_zero():
    compare(np.array([0.5e-7]), np.array([0.0]), "out", TOL)
    assert "value differs" in compare_message(np.array([5e-7]), np.array([0.0]))


def test_compare_reports_count_and_first_differing_index():
    expected = np.arange(6.0).reshape(2, 3)
    got = expected.copy()
    got[1, 0], got[1, 2] = 30.0, 50.0
    assert compare_message(got, expected, "A") == "A: 2 of 6 values differ; first at index (1, 0): expected 3, got 30"


def test_compare_hint_is_keyed_by_the_differing_part():
    hints = {"cache[0]": "the cache holds A_prev unpadded"}
    message = compare_message((np.zeros((1, 3, 3, 1)), 1), (np.zeros((1, 1, 1, 1)), 1), "cache", hints)
    assert message.endswith("\n  Hint: the cache holds A_prev unpadded")
    assert "Hint" not in compare_message((np.zeros(1), 2), (np.zeros(1), 1), "cache", hints)


def test_compare_equal_structures_pass():
    value = (np.arange(4.0).reshape(2, 2), np.array([True, False]), {"pad": 1, "stride": 2}, 3.5)
    compare(value, value, "out", TOL)


# --------------------------------------------------------------------------- agrees_with_reference / part


def test_part_on_a_non_tuple_names_the_expected_parts(conv_context, make_student):
    run = agrees_with_reference("f", lambda x: (x, x), fixed(Case((np.zeros(2),), names=("x",))),
                                output="Z", select=part(0, ("Z", "cache")))
    with pytest.raises(Failure) as info:
        run(make_student({"f": lambda x: x}), conv_context)
    assert str(info.value) == ("f on input:\n  x = array of shape (2,), dtype float64:\n      [0., 0.]\n"
                               "expected a tuple (Z, cache), got an array of shape (2,)")


def test_fixed_cases_run_in_order_and_stop_at_the_first_failure(conv_context, make_student):
    seen = []

    def student(x):
        seen.append(float(x))
        return x if x < 2 else -x

    cases = fixed(*(Case((float(v),), names=("x",)) for v in range(4)))
    with pytest.raises(Failure, match=r"\n  x = 2\n"):
        agrees_with_reference("f", lambda x: x, cases)(make_student({"f": student}), conv_context)
    assert seen == [0.0, 1.0, 2.0]


def test_student_cannot_corrupt_the_reference_inputs(conv_context, make_student):
    """The student's function gets its own copy of the inputs (through the probe); an in-place edit
    there must not change what the reference sees."""
    def vandal(x):
        x[...] = 0
        return x

    run = agrees_with_reference("f", lambda x: x * 1.0, fixed(Case((np.ones(3),), names=("x",))))
    with pytest.raises(Failure, match="expected 1, got 0"):
        run(make_student({"f": vandal}), conv_context)
