"""The cnn_arithmetic checks on in-process students (answers still cross the probe boundary).

The reference passes every check; each mistake fails the check meant to catch it, with feedback
that names the input and what was expected; fair variants (other spellings, the lecture's (n, 1)
vector shapes) pass.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest

from grader.checks import Context, Failure
from grader.spec import load_exercise
from reference import cnn_arithmetic as ref

EXERCISE = load_exercise("cnn_arithmetic")
CHECKS = EXERCISE.checks.CHECKS
CTX = Context(EXERCISE.tolerance, EXERCISE.max_examples, params=EXERCISE.params)
L = ref.tf_keras.layers
REFERENCE = {name: getattr(ref, name) for name in CHECKS}


@pytest.fixture(autouse=True)
def _models(model_worker, monkeypatch):
    """CTX with a model worker, where the blocks' models are built."""
    monkeypatch.setattr(sys.modules[__name__], "CTX", dataclasses.replace(CTX, models=model_worker("cnn_arithmetic")))


def failures(student, item: str) -> dict[str, str]:
    """aspect -> failure message, for the item's checks that fail."""
    out = {}
    for check in CHECKS[item]:
        try:
            check.run(student, CTX)
        except Failure as exc:
            out[check.aspect] = str(exc)
    return out


def student_with(make_student, **functions):
    """The reference's functions, some replaced, plus the kernel prelude's block adapter."""
    namespace = {**REFERENCE, **functions}

    def block_model(name, input_shape, **kwargs):
        return ref.block_model(namespace[name], input_shape, **kwargs)

    return make_student({**namespace, "__convgrade_block_model__": block_model})


@pytest.mark.parametrize("item", sorted(CHECKS))
def test_the_reference_passes_every_check(make_student, item):
    assert failures(student_with(make_student), item) == {}


def test_true_division_fails_with_the_smallest_uneven_stride(make_student):
    student = student_with(make_student, conv_output_shape=lambda n_h, n_w, f, pad, stride: (
        (n_h + 2 * pad - f) / stride + 1, (n_w + 2 * pad - f) / stride + 1))
    failed = failures(student, "conv_output_shape")
    assert set(failed) == {"against Keras"}   # the lecture's examples divide evenly
    assert "stride = 2" in failed["against Keras"] and "use //" in failed["against Keras"]


def test_params_without_the_bias_fail_with_the_formula_as_hint(make_student):
    failed = failures(student_with(make_student, conv_params=lambda f, c, n: f * f * c * n), "conv_params")
    assert "expected 280, got 270" in failed["lecture example"]
    assert "1 bias" in failed["against Keras"]


def test_counting_over_input_positions_passes_the_lecture_but_not_valid_convolutions(make_student):
    student = student_with(make_student, conv_multiplies=lambda n_h, n_w, c, f, n, pad=0, stride=1:
                           n_h * n_w * n * f * f * c)
    failed = failures(student, "conv_multiplies")
    assert set(failed) == {"random sizes"}
    assert "output's size" in failed["random sizes"]


def test_separable_counts_name_the_wrong_key(make_student):
    def wrong(n_h, n_w, c, f, n):
        counts = ref.depthwise_separable_multiplies(n_h, n_w, c, f, n)
        return {**counts, "total": counts["normal"] - counts["depthwise"]}
    failed = failures(student_with(make_student, depthwise_separable_multiplies=wrong),
                      "depthwise_separable_multiplies")
    assert "result['total']" in failed["lecture example"] and "depthwise + pointwise" in failed["lecture example"]


def test_a_table_copied_from_the_slide_is_told_the_slide_is_wrong(make_student):
    def slide():
        rows = ref.lenet5_param_table()
        return [(name, shape, size, ref.LECTURE_PRINTED.get(name, params)) for name, shape, size, params in rows]
    message = failures(student_with(make_student, lenet5_param_table=slide), "lenet5_param_table")["against Keras"]
    assert "expected 608, got 208" in message
    assert "lecture's table prints 208" in message and "Keras counts 608" in message


def test_the_lectures_vector_shapes_are_accepted(make_student):
    def lecture_shapes():
        return [(name, (shape[0], 1) if len(shape) == 1 else shape, size, params)
                for name, shape, size, params in ref.lenet5_param_table()]
    assert failures(student_with(make_student, lenet5_param_table=lecture_shapes), "lenet5_param_table") == {}


def inception(order=(0, 1, 2, 3), pool_projection=True, relu=True):
    def block(X):
        act = "relu" if relu else None
        b1 = L.Conv2D(64, 1, activation=act)(X)
        b3 = L.Conv2D(128, 3, padding="same", activation=act)(L.Conv2D(96, 1, activation=act)(X))
        b5 = L.Conv2D(32, 5, padding="same", activation=act)(L.Conv2D(16, 1, activation=act)(X))
        bp = L.MaxPooling2D(3, strides=1, padding="same")(X)
        if pool_projection:
            bp = L.Conv2D(32, 1, activation=act)(bp)
        branches = [b1, b3, b5, bp]
        return L.Concatenate()([branches[i] for i in order])
    return block


def test_an_inception_built_another_way_passes(make_student):
    assert failures(student_with(make_student, inception_module=inception()), "inception_module") == {}


@pytest.mark.parametrize("mistake, failing, phrase", [
    ({"order": (0, 2, 1, 3)}, {"computes the module"}, "in that order"),
    ({"relu": False}, {"computes the module"}, "each ending in a ReLU"),
    ({"pool_projection": False}, {"lecture example", "drawn input shapes", "computes the module"},
     "expected (None, 28, 28, 256)"),
])
def test_inception_mistakes_fail_the_check_that_sees_them(make_student, mistake, failing, phrase):
    failed = failures(student_with(make_student, inception_module=inception(**mistake)), "inception_module")
    assert set(failed) == failing
    assert any(phrase in message for message in failed.values()), failed


def bottleneck(bias=False, relu_max=6.0, final_relu=False, residual=True):
    def block(X, out_channels, expansion=6):
        n_c = X.shape[-1]
        Y = L.ReLU(relu_max)(L.BatchNormalization()(L.Conv2D(expansion * n_c, 1, use_bias=bias)(X)))
        Y = L.ReLU(relu_max)(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", use_bias=bias)(Y)))
        Y = L.BatchNormalization()(L.Conv2D(out_channels, 1, use_bias=bias)(Y))
        if final_relu:
            Y = L.ReLU(relu_max)(Y)
        return L.Add()([X, Y]) if residual and n_c == out_channels else Y
    return block


@pytest.mark.parametrize("mistake, failing, phrase", [
    ({"bias": True}, {"lecture example", "drawn input shapes", "computes the block (residual)",
                      "computes the block (projection)"}, "trainable: expected 8,832, got 9,144"),
    ({"final_relu": True}, {"computes the block (residual)", "computes the block (projection)"}, "linear"),
    ({"residual": False}, {"computes the block (residual)"}, "input added"),
    ({"relu_max": None}, {"computes the block (residual)", "computes the block (projection)"}, "ReLU6"),
])
def test_bottleneck_mistakes_fail_the_check_that_sees_them(make_student, mistake, failing, phrase):
    failed = failures(student_with(make_student, mobilenet_v2_bottleneck=bottleneck(**mistake)),
                      "mobilenet_v2_bottleneck")
    assert set(failed) == failing
    assert any(phrase in message for message in failed.values()), failed
    assert all("on input" in message for message in failed.values())
