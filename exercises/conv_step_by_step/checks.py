"""Checks of the conv_step_by_step exercise: the course's examples, then random inputs.

Every function is called with inputs built here (never chained through the student's
other functions), and compared with reference/conv_step_by_step.py in the grader.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from grader.checks import Case, Check, agrees_with_reference, fixed, part, small_arrays
from reference import conv_step_by_step as ref


def _rng() -> np.random.RandomState:
    """The notebook's np.random.seed(1) stream."""
    return np.random.RandomState(1)


# -- the course's examples ----------------------------------------------------------------------
def _course_zero_pad() -> Case:
    return Case((_rng().randn(4, 3, 3, 2), 3), names=("X", "pad"))


def _course_conv_single_step() -> Case:
    r = _rng()
    return Case((r.randn(4, 4, 3), r.randn(4, 4, 3), r.randn(1, 1, 1)), names=("a_slice_prev", "W", "b"))


def _course_conv_forward() -> Case:
    r = _rng()
    return Case((r.randn(2, 5, 7, 4), r.randn(3, 3, 4, 8), r.randn(1, 1, 1, 8), {"pad": 1, "stride": 2}),
                names=("A_prev", "W", "b", "hparameters"))


def _course_pool_forward(mode: str, stride: int) -> Case:
    return Case((_rng().randn(2, 5, 5, 3), {"stride": stride, "f": 3}), {"mode": mode},
                names=("A_prev", "hparameters"))


def _course_conv_backward() -> Case:
    r = _rng()
    A_prev, W, b = r.randn(10, 4, 4, 3), r.randn(2, 2, 3, 8), r.randn(1, 1, 1, 8)
    Z, cache = ref.conv_forward(A_prev, W, b, {"pad": 2, "stride": 2})
    return Case((Z, cache), names=("dZ", "cache"))


def _course_pool_backward(mode: str) -> Case:
    r = _rng()
    A_prev = r.randn(5, 5, 3, 2)
    _, cache = ref.pool_forward(A_prev, {"stride": 1, "f": 2})
    return Case((r.randn(5, 4, 2, 2), cache), {"mode": mode}, names=("dA", "cache"))


# -- random inputs (small integers: exact, and they shrink to readable examples) -------------------
# Every strategy draws its sizes and options first and its arrays last: hypothesis shrinks the
# choices it drew, in order, so a smaller shape leaves every option after it as it was (an option
# drawn after an array would be read from the array's values once the shape shrinks, and the
# shrink would be undone). Drawn this way, a failure shrinks its shape in a few calls instead of
# first minimising every value of the big array.
@st.composite
def _image_shape(draw, min_side: int = 1) -> tuple[int, int, int, int]:
    return (draw(st.integers(1, 3)), draw(st.integers(min_side, min_side + 4)),
            draw(st.integers(min_side, min_side + 4)), draw(st.integers(1, 3)))


@st.composite
def zero_pad_cases(draw) -> Case:
    shape, pad = draw(_image_shape()), draw(st.integers(0, 3))
    return Case((draw(small_arrays(shape)), pad), names=("X", "pad"))


@st.composite
def conv_single_step_cases(draw) -> Case:
    f, c = draw(st.integers(1, 4)), draw(st.integers(1, 3))
    return Case((draw(small_arrays((f, f, c))), draw(small_arrays((f, f, c))), draw(small_arrays((1, 1, 1)))),
                names=("a_slice_prev", "W", "b"))


@st.composite
def conv_geometry(draw, min_pad: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    f, pad, stride = draw(st.integers(1, 4)), draw(st.integers(min_pad, 2)), draw(st.integers(1, 3))
    shape = draw(_image_shape(min_side=max(1, f - 2 * pad)))
    n_C = draw(st.integers(1, 3))
    A_prev = draw(small_arrays(shape))
    W = draw(small_arrays((f, f, shape[3], n_C)))
    b = draw(small_arrays((1, 1, 1, n_C)))
    return A_prev, W, b, {"pad": pad, "stride": stride}


@st.composite
def conv_forward_cases(draw) -> Case:
    return Case(draw(conv_geometry()), names=("A_prev", "W", "b", "hparameters"))


@st.composite
def pool_forward_cases(draw, unique: bool = False) -> Case:
    f, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    shape = draw(_image_shape(min_side=f))
    mode = draw(st.sampled_from(["max", "average"]))
    A_prev = draw(small_arrays(shape, unique=unique))
    return Case((A_prev, {"stride": stride, "f": f}), {"mode": mode}, names=("A_prev", "hparameters"))


@st.composite
def conv_backward_cases(draw) -> Case:
    # pad >= 1: the course's own formula, dA_prev[i] = da_prev_pad[pad:-pad, pad:-pad, :], is
    # empty for pad 0, so every course-style solution fails there; grading it would be unfair.
    A_prev, W, b, hp = draw(conv_geometry(min_pad=1))
    Z, cache = ref.conv_forward(A_prev, W, b, hp)
    return Case((draw(small_arrays(Z.shape)), cache), names=("dZ", "cache"))


@st.composite
def create_mask_cases(draw) -> Case:
    # Distinct values: with ties, x == max(x) marks every maximum; not what this check is about.
    h, w = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return Case((draw(small_arrays((h, w), unique=True)),), names=("x",))


@st.composite
def distribute_value_cases(draw) -> Case:
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    return Case((float(draw(st.integers(-20, 20))), shape), names=("dz", "shape"))


@st.composite
def pool_backward_cases(draw) -> Case:
    # Distinct values in A_prev, so each window has one maximum (see create_mask_cases).
    forward = draw(pool_forward_cases(unique=True))
    A_prev, hp = forward.args
    A, cache = ref.pool_forward(A_prev, hp)
    return Case((draw(small_arrays(A.shape)), cache), forward.kwargs, names=("dA", "cache"))


# -- the checks, per graded function --------------------------------------------------------------
CACHE_HINTS = {
    "cache[0]": "the cache holds A_prev as it was passed in (before padding)",
    "cache": "cache = (A_prev, W, b, hparameters)",
}
POOL_CACHE_HINTS = {"cache": "cache = (A_prev, hparameters)"}


ZC, AC = ("Z", "cache"), ("A", "cache")

CHECKS: dict[str, list[Check]] = {
    "zero_pad": [
        Check("course example", public=True, run=agrees_with_reference("zero_pad", ref.zero_pad, fixed(_course_zero_pad()),
                                                      output="X_pad")),
        Check("random inputs", agrees_with_reference("zero_pad", ref.zero_pad, zero_pad_cases(), output="X_pad")),
    ],
    "conv_single_step": [
        Check("course example", public=True, run=agrees_with_reference("conv_single_step", ref.conv_single_step,
                                                      fixed(_course_conv_single_step()), output="Z")),
        Check("random inputs", agrees_with_reference("conv_single_step", ref.conv_single_step,
                                                     conv_single_step_cases(), output="Z")),
    ],
    "conv_forward": [
        Check("course example", public=True, run=agrees_with_reference("conv_forward", ref.conv_forward,
                                                      fixed(_course_conv_forward()), output="Z", select=part(0, ZC))),
        Check("random inputs", agrees_with_reference("conv_forward", ref.conv_forward, conv_forward_cases(),
                                                     output="Z", select=part(0, ZC))),
        Check("cache", agrees_with_reference("conv_forward", ref.conv_forward, conv_forward_cases(),
                                             output="cache", select=part(1, ZC), hints=CACHE_HINTS, examples=10)),
    ],
    "pool_forward": [
        Check("course examples", public=True, run=agrees_with_reference(
            "pool_forward", ref.pool_forward,
            fixed(*(_course_pool_forward(mode, s) for mode in ("max", "average") for s in (1, 2))),
            output="A", select=part(0, AC))),
        Check("random inputs", agrees_with_reference("pool_forward", ref.pool_forward, pool_forward_cases(),
                                                     output="A", select=part(0, AC))),
        Check("cache", agrees_with_reference("pool_forward", ref.pool_forward, pool_forward_cases(),
                                             output="cache", select=part(1, AC), hints=POOL_CACHE_HINTS, examples=10)),
    ],
    "conv_backward": [
        Check("course example", public=True, run=agrees_with_reference("conv_backward", ref.conv_backward,
                                                      fixed(_course_conv_backward()), output=("dA_prev", "dW", "db"))),
        Check("random inputs", agrees_with_reference("conv_backward", ref.conv_backward, conv_backward_cases(),
                                                     output=("dA_prev", "dW", "db"))),
    ],
    "create_mask_from_window": [
        Check("course example", public=True, run=agrees_with_reference(
            "create_mask_from_window", ref.create_mask_from_window,
            fixed(Case((np.array([[-1.0, 2, 3], [2, -3, 2], [1, 5, -2]]),), names=("x",))), output="mask")),
        Check("random inputs", agrees_with_reference("create_mask_from_window", ref.create_mask_from_window,
                                                     create_mask_cases(), output="mask")),
    ],
    "distribute_value": [
        Check("course example", public=True, run=agrees_with_reference("distribute_value", ref.distribute_value,
                                                      fixed(Case((2.0, (2, 2)), names=("dz", "shape"))), output="a")),
        Check("random inputs", agrees_with_reference("distribute_value", ref.distribute_value,
                                                     distribute_value_cases(), output="a")),
    ],
    "pool_backward": [
        Check("course examples", public=True, run=agrees_with_reference(
            "pool_backward", ref.pool_backward, fixed(_course_pool_backward("max"), _course_pool_backward("average")),
            output="dA_prev")),
        Check("random inputs", agrees_with_reference("pool_backward", ref.pool_backward, pool_backward_cases(),
                                                     output="dA_prev")),
    ],
}
