"""reference/conv_step_by_step.py against independent oracles.

Three oracles: torch (forward ops and autograd gradients, float64, NCHW), the course's own published
numbers (docs/course_facts.md sections 2.2 and 2.3), and small plain-loop re-implementations written here
in the course's style, for the semantics torch does not share (tied maxima in pool_backward).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from reference import conv_step_by_step as ref

from .course_loops import course_conv_backward, course_pool_backward, course_pool_forward

EXAMPLES = settings(max_examples=75, deadline=None)


# --------------------------------------------------------------------------- torch oracle


def _nchw(x: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)), dtype=torch.float64, requires_grad=grad)


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.detach().numpy().transpose(0, 2, 3, 1)


def torch_conv(A, W, b, stride, pad, dZ):
    """Z and the gradients of sum(Z * dZ) w.r.t. A, W, b, in the course's layouts."""
    a = _nchw(A, grad=True)
    w = torch.tensor(np.ascontiguousarray(W.transpose(3, 2, 0, 1)), requires_grad=True)  # (C, C_prev, f, f)
    bias = torch.tensor(b.reshape(-1), requires_grad=True)
    z = F.conv2d(a, w, bias, stride=stride, padding=pad)
    (z * _nchw(dZ)).sum().backward()
    return _nhwc(z), _nhwc(a.grad), w.grad.numpy().transpose(2, 3, 1, 0), bias.grad.numpy().reshape(1, 1, 1, -1)


def torch_pool(A, f, stride, mode, dA):
    """Pooled output and the gradient of sum(out * dA) w.r.t. A."""
    a = _nchw(A, grad=True)
    pool = F.max_pool2d if mode == "max" else F.avg_pool2d
    out = pool(a, kernel_size=f, stride=stride)
    (out * _nchw(dA)).sum().backward()
    return _nhwc(out), _nhwc(a.grad)


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- course-style loop oracle


# --------------------------------------------------------------------------- strategies


@st.composite
def conv_cases(draw):
    m, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9))
    c_prev, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    pad, stride = draw(st.integers(0, 3)), draw(st.integers(1, 4))
    f = draw(st.integers(1, min(h, w) + 2 * pad))
    return dict(m=m, h=h, w=w, c_prev=c_prev, c=c, f=f, stride=stride, pad=pad, seed=draw(st.integers(0, 2**32 - 1)))


@st.composite
def pool_cases(draw):
    m, h, w, c = draw(st.integers(1, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 4))
    f, stride = draw(st.integers(1, min(h, w))), draw(st.integers(1, 4))
    mode = draw(st.sampled_from(["max", "average"]))
    return dict(m=m, h=h, w=w, c=c, f=f, stride=stride, mode=mode, seed=draw(st.integers(0, 2**32 - 1)))


def conv_arrays(case, integers=False):
    rng = np.random.default_rng(case["seed"])
    if integers:
        draw = lambda *shape: rng.integers(-3, 4, size=shape).astype(np.float64)  # noqa: E731
    else:
        draw = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    A = draw(case["m"], case["h"], case["w"], case["c_prev"])
    W = draw(case["f"], case["f"], case["c_prev"], case["c"])
    b = draw(1, 1, 1, case["c"])
    n_H = (case["h"] + 2 * case["pad"] - case["f"]) // case["stride"] + 1
    n_W = (case["w"] + 2 * case["pad"] - case["f"]) // case["stride"] + 1
    dZ = draw(case["m"], n_H, n_W, case["c"])
    return A, W, b, dZ


def check_conv_against_torch(case):
    A, W, b, dZ = conv_arrays(case)
    originals = [x.copy() for x in (A, W, b, dZ)]
    hp = {"stride": case["stride"], "pad": case["pad"]}
    Z_t, dA_t, dW_t, db_t = torch_conv(A, W, b, case["stride"], case["pad"], dZ)

    Z, cache = ref.conv_forward(A, W, b, hp)
    close(Z, Z_t)
    assert Z.dtype == np.float64
    assert cache[0] is A and cache[1] is W and cache[2] is b and cache[3] is hp

    dA, dW, db = ref.conv_backward(dZ, cache)
    assert (dA.shape, dW.shape, db.shape) == (A.shape, W.shape, (1, 1, 1, case["c"]))
    close(dA, dA_t)
    close(dW, dW_t)
    close(db, db_t)
    for before, after in zip(originals, (A, W, b, dZ)):
        np.testing.assert_array_equal(before, after)


def check_pool_against_torch(case):
    rng = np.random.default_rng(case["seed"])
    A_prev = rng.standard_normal((case["m"], case["h"], case["w"], case["c"]))  # continuous: no ties
    hp = {"f": case["f"], "stride": case["stride"]}
    A, cache = ref.pool_forward(A_prev, hp, mode=case["mode"])
    dA = rng.standard_normal(A.shape)
    A_t, dA_prev_t = torch_pool(A_prev, case["f"], case["stride"], case["mode"], dA)
    close(A, A_t)
    assert cache[0] is A_prev and cache[1] is hp
    close(ref.pool_backward(dA, cache, mode=case["mode"]), dA_prev_t)


# --------------------------------------------------------------------------- torch: property-based


@EXAMPLES
@given(case=conv_cases())
def test_conv_forward_and_backward_match_torch_autograd(case):
    check_conv_against_torch(case)


@EXAMPLES
@given(case=conv_cases(), block_elements=st.sampled_from([1, 7, 60, 500]))
def test_conv_results_do_not_depend_on_im2col_blocking(case, block_elements):
    # Tiny blocks force both block kinds: runs of rows of one example, and groups of whole examples.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ref, "_BLOCK_ELEMENTS", block_elements)
        check_conv_against_torch(case)


@EXAMPLES
@given(case=pool_cases())
def test_pool_forward_and_backward_match_torch_autograd_without_ties(case):
    check_pool_against_torch(case)


EDGE_CONV = [
    # (m, h, w, c_prev, c, f, stride, pad)
    (1, 1, 1, 1, 1, 1, 1, 0),  # single pixel
    (1, 5, 5, 2, 3, 5, 1, 0),  # f == input size, pad 0: one output pixel
    (2, 3, 8, 2, 2, 3, 1, 0),  # rectangular, pad 0
    (2, 9, 4, 3, 2, 2, 5, 0),  # stride > f, rows/cols skipped
    (1, 2, 3, 1, 2, 4, 2, 1),  # f larger than the unpadded input
    (3, 4, 7, 4, 1, 3, 2, 3),  # pad larger than f // 2: windows of pure padding
    (2, 7, 7, 2, 3, 3, 3, 0),  # stride == f, non-overlapping
]


@pytest.mark.parametrize("m,h,w,c_prev,c,f,stride,pad", EDGE_CONV)
def test_conv_edge_geometries_match_torch(m, h, w, c_prev, c, f, stride, pad):
    check_conv_against_torch(dict(m=m, h=h, w=w, c_prev=c_prev, c=c, f=f, stride=stride, pad=pad, seed=m * 100 + f))


@pytest.mark.parametrize("mode", ["max", "average"])
@pytest.mark.parametrize(
    "m,h,w,c,f,stride",
    [(1, 1, 1, 1, 1, 1), (1, 4, 6, 2, 4, 1), (2, 9, 3, 1, 2, 5), (2, 6, 6, 3, 3, 3), (1, 7, 5, 2, 3, 2)],
)
def test_pool_edge_geometries_match_torch(m, h, w, c, f, stride, mode):
    check_pool_against_torch(dict(m=m, h=h, w=w, c=c, f=f, stride=stride, mode=mode, seed=h * 10 + w))


def test_conv_backward_pad0_returns_the_unpadded_gradient():
    # The course's da_prev_pad[pad:-pad, pad:-pad] is empty for pad 0; the reference must not be.
    case = dict(m=2, h=5, w=6, c_prev=3, c=2, f=3, stride=1, pad=0, seed=7)
    A, W, b, dZ = conv_arrays(case)
    dA, _, _ = ref.conv_backward(dZ, ref.conv_forward(A, W, b, {"stride": 1, "pad": 0})[1])
    assert dA.shape == A.shape
    close(dA, torch_conv(A, W, b, 1, 0, dZ)[1])
    assert np.abs(dA).sum() > 0


# --------------------------------------------------------------------------- course-style loops: ties


@EXAMPLES
@given(case=pool_cases())
def test_pool_matches_course_loops_on_integer_inputs_with_ties(case):
    rng = np.random.default_rng(case["seed"])
    A_prev = rng.integers(-2, 3, size=(case["m"], case["h"], case["w"], case["c"])).astype(np.float64)
    hp = {"f": case["f"], "stride": case["stride"]}
    A, cache = ref.pool_forward(A_prev, hp, mode=case["mode"])
    np.testing.assert_allclose(A, course_pool_forward(A_prev, hp, case["mode"])[0], rtol=1e-12, atol=1e-12)
    dA = rng.integers(-3, 4, size=A.shape).astype(np.float64)
    np.testing.assert_allclose(
        ref.pool_backward(dA, cache, mode=case["mode"]),
        course_pool_backward(dA, cache, case["mode"]),
        rtol=1e-12,
        atol=1e-12,
    )


@EXAMPLES
@given(case=conv_cases().filter(lambda c: c["pad"] >= 1))
def test_conv_backward_matches_course_loops_when_pad_positive(case):
    A, W, b, dZ = conv_arrays(case, integers=True)
    cache = ref.conv_forward(A, W, b, {"stride": case["stride"], "pad": case["pad"]})[1]
    for got, want in zip(ref.conv_backward(dZ, cache), course_conv_backward(dZ, cache)):
        np.testing.assert_array_equal(got, want)  # integer-valued: exact in any summation order


def test_create_mask_marks_every_tied_maximum():
    x = np.array([[1.0, 3.0, 0.0], [3.0, -1.0, 3.0]])
    np.testing.assert_array_equal(ref.create_mask_from_window(x), [[False, True, False], [True, False, True]])
    np.testing.assert_array_equal(ref.create_mask_from_window(np.full((2, 2), 5.0)), np.ones((2, 2), bool))


def test_pool_backward_max_gives_full_gradient_to_every_tied_maximum():
    # Unlike torch (one argmax per window), the course sends dA to each tied position.
    A_prev = np.ones((1, 2, 2, 1))
    dA_prev = ref.pool_backward(np.full((1, 1, 1, 1), 1.5), (A_prev, {"f": 2, "stride": 1}), mode="max")
    np.testing.assert_array_equal(dA_prev, np.full((1, 2, 2, 1), 1.5))


def test_pool_backward_accumulates_over_overlapping_windows():
    # 3x3 input, f=2, stride=1: the centre (the max) lies in all four windows.
    A_prev = np.array([[0.0, 1.0, 0.0], [1.0, 9.0, 1.0], [0.0, 1.0, 0.0]]).reshape(1, 3, 3, 1)
    dA = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 2, 1)
    got = ref.pool_backward(dA, (A_prev, {"f": 2, "stride": 1}), mode="max")
    np.testing.assert_array_equal(got[0, :, :, 0], [[0, 0, 0], [0, 10, 0], [0, 0, 0]])
    got = ref.pool_backward(dA, (A_prev, {"f": 2, "stride": 1}), mode="average")
    np.testing.assert_allclose(got[0, :, :, 0], [[0.25, 0.75, 0.5], [1.0, 2.5, 1.5], [0.75, 1.75, 1.0]])


# --------------------------------------------------------------------------- the course's own numbers


def course_rng(seed):
    """Same stream as the notebook's np.random.seed(seed); np.random.randn(...), without global state."""
    return np.random.RandomState(seed)


def printed(actual, expected):
    """Values the notebook printed with numpy's default 8 decimals."""
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-8)


def test_course_zero_pad_notebook_case():
    x = course_rng(1).randn(4, 3, 3, 2)
    x_pad = ref.zero_pad(x, 3)
    assert x_pad.shape == (4, 9, 9, 2)
    printed(x[1, 1], [[0.90085595, -0.68372786], [-0.12289023, -0.93576943], [-0.26788808, 0.53035547]])
    np.testing.assert_array_equal(x_pad[1, 1], np.zeros((9, 2)))
    np.testing.assert_array_equal(x_pad[:, 3:6, 3:6, :], x)


def test_course_zero_pad_v2_second_case():
    x = course_rng(1).randn(5, 4, 4, 3)
    x_pad = ref.zero_pad(x, 2)
    assert x_pad.shape == (5, 8, 8, 3)
    np.testing.assert_array_equal(x_pad[:, 2:6, 2:6, :], x)
    assert x_pad.sum() == pytest.approx(x.sum())


def test_course_conv_single_step_seed1_is_float64_minus_6_999():
    rng = course_rng(1)
    a_slice_prev, W, b = rng.randn(4, 4, 3), rng.randn(4, 4, 3), rng.randn(1, 1, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no float(b) DeprecationWarning
        Z = ref.conv_single_step(a_slice_prev, W, b)
    assert type(Z) is np.float64
    assert Z == pytest.approx(-6.999089450680221, rel=1e-13)


def test_course_conv_single_step_v2_seed3():
    rng = course_rng(3)
    a_slice_prev, W, b = rng.randn(5, 5, 3), rng.randn(5, 5, 3), rng.randn(1, 1, 1)
    assert ref.conv_single_step(a_slice_prev, W, b) == pytest.approx(-3.5443670581382474, rel=1e-13)


def test_course_conv_forward_notebook_case():
    rng = course_rng(1)
    A_prev, W, b = rng.randn(2, 5, 7, 4), rng.randn(3, 3, 4, 8), rng.randn(1, 1, 1, 8)
    Z, cache = ref.conv_forward(A_prev, W, b, {"pad": 1, "stride": 2})
    assert Z.shape == (2, 3, 4, 8)
    assert np.mean(Z) == pytest.approx(0.5511276474566768, rel=1e-12)
    printed(
        Z[0, 2, 1],
        [-2.17796037, 8.07171329, -0.5772704, 3.36286738, 4.48113645, -2.89198428, 10.99288867, 3.03171932],
    )
    printed(cache[0][1][2][3], [-1.1191154, 1.9560789, -0.3264995, -1.34267579])


def test_course_conv_forward_test_2_shapes_mean_and_unpadded_cache():
    rng = course_rng(3)
    A_prev, W, b = rng.randn(2, 5, 7, 4), rng.randn(3, 3, 4, 8), rng.randn(1, 1, 1, 8)
    assert ref.conv_forward(A_prev, W, b, {"pad": 3, "stride": 1})[0].shape == (2, 9, 11, 8)
    assert ref.conv_forward(A_prev, W, b, {"pad": 0, "stride": 2})[0].shape == (2, 2, 3, 8)
    W, b = rng.randn(5, 5, 4, 8), rng.randn(1, 1, 1, 8)
    Z, cache = ref.conv_forward(A_prev, W, b, {"pad": 6, "stride": 1})
    assert Z.shape == (2, 13, 15, 8)
    assert np.mean(Z) == pytest.approx(-0.5384027772160062, rel=1e-12)
    assert cache[0][1, 2].shape == (7, 4)
    printed(cache[0][1, 2][0], [1.98848968, 1.19505834, -0.0952376, -0.52718778])


def test_course_conv_forward_v1_shape_checks():
    rng = course_rng(1)
    A_prev, W, b = rng.randn(2, 5, 7, 4), rng.randn(3, 3, 4, 8), rng.randn(1, 1, 1, 8)
    W5, b5 = rng.randn(5, 5, 4, 8), rng.randn(1, 1, 1, 8)
    assert ref.conv_forward(A_prev, W, b, {"pad": 3, "stride": 1})[0].shape == (2, 9, 11, 8)
    assert ref.conv_forward(A_prev, W, b, {"pad": 0, "stride": 2})[0].shape == (2, 2, 3, 8)
    assert ref.conv_forward(A_prev, W5, b5, {"pad": 6, "stride": 1})[0].shape == (2, 13, 15, 8)


def test_course_pool_forward_case1_stride1_f3():
    A_prev = course_rng(1).randn(2, 5, 5, 3)
    hp = {"stride": 1, "f": 3}
    A, cache = ref.pool_forward(A_prev, hp)
    assert A.shape == (2, 3, 3, 3) and cache[0] is A_prev and cache[1] is hp
    printed(
        A[1, 1],
        [[1.96710175, 0.84616065, 1.27375593], [1.96710175, 0.84616065, 1.23616403],
         [1.62765075, 1.12141771, 1.2245077]],
    )
    A, _ = ref.pool_forward(A_prev, hp, mode="average")
    printed(
        A[1, 1],
        [[0.44497696, -0.00261695, -0.31040307], [0.50811474, -0.23493734, -0.23961183],
         [0.11872677, 0.17255229, -0.22112197]],
    )


def test_course_pool_forward_case2_stride2_f3_checks_every_example():
    A_prev = course_rng(1).randn(2, 5, 5, 3)
    hp = {"stride": 2, "f": 3}
    A, _ = ref.pool_forward(A_prev, hp, mode="max")
    assert A.shape == (2, 2, 2, 3)
    printed(
        A[0],
        [[[1.74481176, 0.90159072, 1.65980218], [1.74481176, 1.6924546, 1.65980218]],
         [[1.13162939, 1.51981682, 2.18557541], [1.13162939, 1.6924546, 2.18557541]]],
    )
    A, _ = ref.pool_forward(A_prev, hp, mode="average")
    printed(
        A[1],
        [[[-0.17313416, 0.32377198, -0.34317572], [0.02030094, 0.14141479, -0.01231585]],
         [[0.42944926, 0.08446996, -0.27290905], [0.15077452, 0.28911175, 0.00123239]]],
    )


def test_course_pool_forward_v2_test3_stride1_f2():
    A_prev = course_rng(1).randn(2, 5, 5, 3)
    hp = {"stride": 1, "f": 2}
    A, cache = ref.pool_forward(A_prev, hp, mode="max")
    assert A.shape == (2, 4, 4, 3)
    printed(
        A[1, 1],
        [[1.19891788, 0.74055645, 0.07734007], [0.31515939, 0.84616065, 0.07734007],
         [0.69803203, 0.84616065, 1.2245077], [0.69803203, 1.12141771, 1.2245077]],
    )
    printed(
        cache[0][1, 2],
        [[0.16938243, 0.74055645, -0.9537006], [-0.26621851, 0.03261455, -1.37311732],
         [0.31515939, 0.84616065, -0.85951594], [0.35054598, -1.31228341, -0.03869551],
         [-1.61577235, 1.12141771, 0.40890054]],
    )
    A, _ = ref.pool_forward(A_prev, hp, mode="average")
    printed(
        A[1, 1],
        [[0.11583785, 0.34545544, -0.6561907], [-0.2334108, 0.3364666, -0.69382351],
         [0.25497093, -0.21741362, -0.07342615], [-0.04092568, -0.01110394, 0.12495022]],
    )


@pytest.mark.parametrize(
    "shape,hp,mode,out_shape",
    [
        ((2, 5, 7, 3), {"stride": 2, "f": 2}, "average", (2, 2, 3, 3)),
        ((4, 5, 7, 4), {"stride": 1, "f": 5}, "max", (4, 1, 3, 4)),
    ],
)
def test_course_pool_forward_shape_checks(shape, hp, mode, out_shape):
    assert ref.pool_forward(np.random.default_rng(0).standard_normal(shape), hp, mode=mode)[0].shape == out_shape


def test_course_conv_backward_means():
    rng = course_rng(1)
    A_prev, W, b = rng.randn(10, 4, 4, 3), rng.randn(2, 2, 3, 8), rng.randn(1, 1, 1, 8)
    Z, cache = ref.conv_forward(A_prev, W, b, {"pad": 2, "stride": 2})
    assert Z.shape == (10, 4, 4, 8)
    dA, dW, db = ref.conv_backward(Z, cache)
    assert (dA.shape, dW.shape, db.shape) == ((10, 4, 4, 3), (2, 2, 3, 8), (1, 1, 1, 8))
    assert all(isinstance(x, np.ndarray) for x in (dA, dW, db))
    assert np.mean(dA) == pytest.approx(1.4524377775388075, rel=1e-12)
    assert np.mean(dW) == pytest.approx(1.7269914583139097, rel=1e-12)
    assert np.mean(db) == pytest.approx(7.839232564616838, rel=1e-12)


def test_course_create_mask_printed_and_asserted_cases():
    x = course_rng(1).randn(2, 3)
    np.testing.assert_array_equal(ref.create_mask_from_window(x), [[True, False, False], [False, False, False]])
    x = np.array([[-1, 2, 3], [2, -3, 2], [1, 5, -2]])
    mask = ref.create_mask_from_window(x)
    assert isinstance(mask, np.ndarray) and mask.shape == x.shape
    expected = np.zeros((3, 3), bool)
    expected[2, 1] = True
    np.testing.assert_array_equal(mask, expected)


def test_course_distribute_value():
    a = ref.distribute_value(2, (2, 2))
    assert isinstance(a, np.ndarray) and a.shape == (2, 2) and a.sum() == 2
    np.testing.assert_array_equal(a, [[0.5, 0.5], [0.5, 0.5]])
    a = ref.distribute_value(100, (10, 10))
    assert a.shape == (10, 10) and a.sum() == pytest.approx(100, rel=1e-15)


def test_course_pool_backward_max_and_average():
    rng = course_rng(1)
    A_prev = rng.randn(5, 5, 3, 2)
    A, cache = ref.pool_forward(A_prev, {"stride": 1, "f": 2})
    assert A.shape == (5, 4, 2, 2)
    dA = rng.randn(5, 4, 2, 2)
    assert np.mean(dA) == pytest.approx(0.14571390272918056, rel=1e-12)
    dA_prev1 = ref.pool_backward(dA, cache, mode="max")
    assert isinstance(dA_prev1, np.ndarray) and dA_prev1.shape == (5, 5, 3, 2)
    printed(dA_prev1[1, 1], [[0, 0], [5.05844394, -1.68282702], [0, 0]])
    dA_prev2 = ref.pool_backward(dA, cache, mode="average")
    printed(dA_prev2[1, 1], [[0.08485462, 0.2787552], [1.26461098, -0.25749373], [1.17975636, -0.53624893]])


# --------------------------------------------------------------------------- contract details


def test_outputs_are_float64_for_int_and_float32_inputs():
    A = np.arange(2 * 4 * 5 * 2).reshape(2, 4, 5, 2)
    W = np.ones((2, 2, 2, 3), dtype=np.float32)
    Z, cache = ref.conv_forward(A, W, np.zeros((1, 1, 1, 3), np.float32), {"stride": 1, "pad": 1})
    assert Z.dtype == np.float64 and all(x.dtype == np.float64 for x in ref.conv_backward(Z, cache))
    assert ref.zero_pad(A, 1).dtype == np.float64
    P, pcache = ref.pool_forward(A.astype(np.float32), {"f": 2, "stride": 2})
    assert P.dtype == np.float64 and ref.pool_backward(P, pcache).dtype == np.float64


def _conv(a_shape, w_shape, stride, pad):
    b = np.zeros((1, 1, 1, w_shape[3]))
    return ref.conv_forward(np.zeros(a_shape), np.zeros(w_shape), b, {"stride": stride, "pad": pad})


@pytest.mark.parametrize(
    "call",
    [
        lambda: _conv((1, 2, 5, 1), (3, 3, 1, 1), stride=2, pad=0),
        lambda: ref.pool_forward(np.zeros((1, 2, 5, 1)), {"f": 3, "stride": 1}),
        lambda: ref.pool_forward(np.zeros((1, 4, 4, 1)), {"f": 2, "stride": 1}, mode="min"),
        lambda: _conv((1, 4, 4, 2), (3, 3, 1, 1), stride=1, pad=0),
        lambda: _conv((1, 4, 4, 1), (3, 3, 1, 1), stride=0, pad=0),
    ],
    ids=["window-exceeds-conv-input", "window-exceeds-pool-input", "unknown-pool-mode", "channel-mismatch", "stride-0"],
)
def test_invalid_geometry_raises_value_error_instead_of_course_garbage(call):
    with pytest.raises(ValueError):
        call()
