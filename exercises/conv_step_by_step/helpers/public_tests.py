"""Public tests called from the conv_step_by_step notebook (course test-suite v3 API).

They run inside the student's kernel and only give feedback; grading happens elsewhere, on other
inputs. Each test prints "All tests passed!" on success and raises AssertionError otherwise.

Random inputs come from local np.random.RandomState(seed) generators, which give the same numbers
as np.random.seed(seed) followed by np.random.randn(...), without touching the notebook's global
random state.
"""
import numpy as np

from test_utils import single_test, multiple_test
from outputs import (
    conv_single_step_output0,
    conv_forward_z_mean,
    conv_forward_z_0_2_1,
    conv_forward_cache_0_1_2_3,
    conv_forward_output_mean,
    conv_forward_cache_0_1_2,
    pool_forward_output_max,
    pool_forward_output_average,
    pool_forward_case2_max,
    pool_forward_case2_average,
)

__all__ = [
    "zero_pad_test",
    "conv_single_step_test",
    "conv_forward_test_1",
    "conv_forward_test_2",
    "pool_forward_test_1",
    "pool_forward_test_2",
]

GREEN = "\033[92m"
RED = "\033[91m"
RESET = "\033[0m"


def _passed(label=""):
    print(GREEN + (label + ": " if label else "") + "All tests passed!" + RESET)


def _fail(failures, label=""):
    """Print every failure message and raise one AssertionError."""
    for message in failures:
        print(RED + (label + ": " if label else "") + message + RESET)
    raise AssertionError(failures[0])


def _unpack_pair(result, name):
    assert isinstance(result, tuple) and len(result) == 2, \
        "{} must return a tuple of 2 values ({}), got {!r}".format(
            name, "Z, cache" if name == "conv_forward" else "A, cache", type(result))
    return result


# ---------------------------------------------------------------------------------------------
def zero_pad_test(target):
    """Pads a batch with pad 3 and pad 2; checks type, shape, zero border and untouched interior."""
    for seed, shape, pad in ((1, (4, 3, 3, 2), 3), (1, (5, 4, 4, 3), 2)):
        x = np.random.RandomState(seed).randn(*shape)
        x_pad = target(x, pad)
        m, n_H, n_W, n_C = shape
        expected_shape = (m, n_H + 2 * pad, n_W + 2 * pad, n_C)
        assert isinstance(x_pad, np.ndarray), \
            "zero_pad must return a numpy array, got {}".format(type(x_pad))
        assert x_pad.shape == expected_shape, \
            "Wrong shape for pad={}: {} != {}".format(pad, x_pad.shape, expected_shape)
        assert np.allclose(x_pad[:, pad:pad + n_H, pad:pad + n_W, :], x), \
            "The interior of x_pad must be x (pad only the height and width axes)"
        border = np.ones(expected_shape, dtype=bool)
        border[:, pad:pad + n_H, pad:pad + n_W, :] = False
        assert np.all(x_pad[border] == 0), "The padding must be made of zeros"
    _passed()


# ---------------------------------------------------------------------------------------------
def conv_single_step_test(target):
    """Seed 3, a (5, 5, 3) window and filter and a (1, 1, 1) bias."""
    rng = np.random.RandomState(3)
    a_slice_prev = rng.randn(5, 5, 3)
    W = rng.randn(5, 5, 3)
    b = rng.randn(1, 1, 1)
    expected = np.float64(conv_single_step_output0)
    test_cases = [
        {"name": "datatype_check",
         "input": [a_slice_prev, W, b],
         "expected": expected,
         "error": "The output must be a numpy float (np.float64); cast b with float()"},
        {"name": "equation_output_check",
         "input": [a_slice_prev, W, b],
         "expected": expected,
         "error": "Wrong output: multiply element-wise, sum, then add the bias"},
    ]
    single_test(test_cases, target)


# ---------------------------------------------------------------------------------------------
def conv_forward_test_1(z_mean, z_0_2_1, cache_0_1_2_3):
    """Checks the values computed in the notebook cell (seed 1, pad 1, stride 2)."""
    failures = []
    if not np.isclose(z_mean, conv_forward_z_mean):
        failures.append("Z's mean is wrong. Expected {}, got {}. Did you use the stride?".format(
            conv_forward_z_mean, z_mean))
    if np.shape(z_0_2_1) != conv_forward_z_0_2_1.shape or not np.allclose(
            z_0_2_1, conv_forward_z_0_2_1):
        failures.append("Z[0,2,1] is wrong. Expected {}, got {}".format(
            conv_forward_z_0_2_1, z_0_2_1))
    if np.shape(cache_0_1_2_3) != conv_forward_cache_0_1_2_3.shape or not np.allclose(
            cache_0_1_2_3, conv_forward_cache_0_1_2_3):
        failures.append("cache_conv[0][1][2][3] is wrong. Expected {}, got {}. The cache must "
                        "hold the unpadded A_prev".format(conv_forward_cache_0_1_2_3,
                                                          cache_0_1_2_3))
    if failures:
        _fail(failures, "First test")
    _passed("First test")


def conv_forward_test_2(target):
    """Seed 3: output shapes for three (pad, stride, f) settings, the mean and the cache."""
    rng = np.random.RandomState(3)
    A_prev = rng.randn(2, 5, 7, 4)
    W = rng.randn(3, 3, 4, 8)
    b = rng.randn(1, 1, 1, 8)

    Z, cache_conv = _unpack_pair(target(A_prev, W, b, {"pad": 3, "stride": 1}), "conv_forward")
    assert np.shape(Z) == (2, 9, 11, 8), \
        "Wrong shape with pad=3, stride=1: {} != (2, 9, 11, 8)".format(np.shape(Z))

    Z, cache_conv = _unpack_pair(target(A_prev, W, b, {"pad": 0, "stride": 2}), "conv_forward")
    assert np.shape(Z) == (2, 2, 3, 8), \
        "Wrong shape with pad=0, stride=2: {} != (2, 2, 3, 8)".format(np.shape(Z))

    W = rng.randn(5, 5, 4, 8)
    b = rng.randn(1, 1, 1, 8)
    Z, cache_conv = _unpack_pair(target(A_prev, W, b, {"pad": 6, "stride": 1}), "conv_forward")
    assert np.shape(Z) == (2, 13, 15, 8), \
        "Wrong shape with f=5, pad=6, stride=1: {} != (2, 13, 15, 8)".format(np.shape(Z))
    assert np.isclose(np.mean(Z), conv_forward_output_mean), \
        "Wrong values: mean(Z) should be {}, got {}".format(conv_forward_output_mean, np.mean(Z))
    assert len(cache_conv) == 4, "The cache must be (A_prev, W, b, hparameters)"
    cache_A_prev = np.asarray(cache_conv[0])
    assert cache_A_prev.shape == A_prev.shape and np.allclose(
        cache_A_prev[1, 2], conv_forward_cache_0_1_2), \
        "cache[0] must be the unpadded input A_prev"
    _passed("Second test")


# ---------------------------------------------------------------------------------------------
def pool_forward_test_1(target):
    """Output shapes for two settings, then seed 1, f=2, stride 1: full output and cache."""
    rng = np.random.RandomState(0)
    shape_cases = [
        (rng.randn(2, 5, 7, 3), {"stride": 2, "f": 2}, "average", (2, 2, 3, 3)),
        (rng.randn(4, 5, 7, 4), {"stride": 1, "f": 5}, "max", (4, 1, 3, 4)),
    ]
    for A_prev, hparameters, mode, expected_shape in shape_cases:
        A, cache = _unpack_pair(target(A_prev, hparameters, mode), "pool_forward")
        assert np.shape(A) == expected_shape, \
            "Wrong shape for {} (mode={}): {} != {}".format(hparameters, mode, np.shape(A),
                                                          expected_shape)

    A_prev = np.random.RandomState(1).randn(2, 5, 5, 3)
    hparameters = {"stride": 1, "f": 2}
    test_cases = []
    for mode, expected_A in (("max", pool_forward_output_max),
                             ("average", pool_forward_output_average)):
        expected = (expected_A, (A_prev, hparameters))
        test_cases += [
            {"name": "datatype_check",
             "input": [A_prev, hparameters, mode],
             "expected": expected,
             "error": "pool_forward must return (A, cache) with A a numpy array and "
                      "cache = (A_prev, hparameters) (mode {})".format(mode)},
            {"name": "shape_check",
             "input": [A_prev, hparameters, mode],
             "expected": expected,
             "error": "Wrong shape of A or of the cache (mode {})".format(mode)},
            {"name": "equation_output_check",
             "input": [A_prev, hparameters, mode],
             "expected": expected,
             "error": "Wrong values of A or of the cache (mode {})".format(mode)},
        ]
    multiple_test(test_cases, target)


def pool_forward_test_2(target):
    """Seed 1, f=3, stride 2, both modes, every example of the batch."""
    A_prev = np.random.RandomState(1).randn(2, 5, 5, 3)
    hparameters = {"stride": 2, "f": 3}
    failures = []
    for mode, expected in (("max", pool_forward_case2_max),
                           ("average", pool_forward_case2_average)):
        A, cache = _unpack_pair(target(A_prev, hparameters, mode), "pool_forward")
        if np.shape(A) != expected.shape:
            failures.append("Wrong shape for mode {}: {} != {}".format(mode, np.shape(A),
                                                                     expected.shape))
            continue
        for i in range(expected.shape[0]):
            if not np.allclose(A[i], expected[i]):
                failures.append("Wrong values for mode {} in example {}: A[{}] should be\n{}\n"
                                "got\n{}".format(mode, i, i, expected[i], A[i]))
    if failures:
        _fail(failures)
    _passed()
