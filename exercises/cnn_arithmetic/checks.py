"""Checks of the cnn_arithmetic exercise: the lecture's examples, then sizes hypothesis draws.

Shapes and parameter counts are compared with what Keras itself says for the layers built with
the same sizes, here in the grader; multiplication counts (which Keras does not report) with
reference/cnn_arithmetic.py, whose formulas tests/ check against torch's FLOP counter. The two
block functions come back as Keras models (built in the kernel around an Input, see
kernel_prelude.py) whose descriptions the model worker builds (grader/model_worker.py): their
output shape and parameter counts, and what they compute once the reference's weights are copied
in, come back from it as plain data.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import strategies as st

from grader.checks import (Case, Check, Context, Failure, Student, agrees_with_reference, check_property, fixed)
from grader.keras_checks import call_text, model_property, parameter_counts, student_model
from grader.model_worker import ModelFacts, RemoteModel
from reference import cnn_arithmetic as ref

BLOCK = "__convgrade_block_model__"   # the kernel-side adapter of kernel_prelude.py
BLOCK_EXAMPLES = 5                    # drawn sizes per block check: each builds a model in the kernel


class InputShape(tuple):
    """A block's input shape, shown to the student as the Input it stands for."""

    def __repr__(self) -> str:
        return f"Input(shape={tuple(self)})"


# -- Keras as the oracle of shapes and parameter counts -----------------------------------------
def _layers() -> Any:
    return ref.tf_keras.layers


def keras_conv_output_shape(n_h: int, n_w: int, f: int, pad: int, stride: int) -> tuple[int, int]:
    """What ZeroPadding2D(pad) then Conv2D(f, strides=stride) make of an n_h x n_w input."""
    L = _layers()
    padded = L.ZeroPadding2D(pad).compute_output_shape((None, n_h, n_w, 1))
    out = L.Conv2D(1, f, strides=stride).compute_output_shape(padded)
    return int(out[1]), int(out[2])


def keras_same_padding(f: int) -> int:
    """The zero padding after which a 'valid' convolution gives what Keras' padding='same' gives."""
    n = 2 * f + 1
    same = _layers().Conv2D(1, f, padding="same").compute_output_shape((None, n, n, 1))[1:3]
    return next(p for p in range(f) if keras_conv_output_shape(n, n, f, p, 1) == tuple(same))


def keras_conv_params(f: int, n_c_prev: int, n_c: int) -> int:
    layer = _layers().Conv2D(n_c, f)
    layer.build((None, None, None, n_c_prev))
    return int(layer.count_params())


# -- drawn inputs ----------------------------------------------------------------------------------
@st.composite
def conv_geometry_cases(draw) -> Case:
    f, pad, stride = draw(st.integers(1, 7)), draw(st.integers(0, 3)), draw(st.integers(1, 4))
    low = max(1, f - 2 * pad)   # the filter must fit in the padded input
    return Case((draw(st.integers(low, 40)), draw(st.integers(low, 40)), f, pad, stride),
                names=("n_h", "n_w", "f", "pad", "stride"))


@st.composite
def multiplies_cases(draw) -> Case:
    geometry = draw(conv_geometry_cases())
    n_h, n_w, f, pad, stride = geometry.args
    return Case((n_h, n_w, draw(st.integers(1, 256)), f, draw(st.integers(1, 256))), {"pad": pad, "stride": stride},
                names=("n_h", "n_w", "n_c_prev", "f", "n_c"))


@st.composite
def separable_cases(draw) -> Case:
    f = draw(st.integers(1, 7))
    return Case((draw(st.integers(f, 40)), draw(st.integers(f, 40)), draw(st.integers(1, 256)), f,
                 draw(st.integers(1, 256))), names=("n_h", "n_w", "n_c_prev", "f", "n_c"))


_SHAPE_HINT = "n' = floor((n + 2*pad - f) / stride) + 1 on each axis: an integer (use //), height first"
CONV_HINTS = {"result": _SHAPE_HINT + ", as a tuple (n_h', n_w')", "result[0]": _SHAPE_HINT, "result[1]": _SHAPE_HINT}
PARAMS_HINT = "each of the n_c filters has f*f*n_c_prev weights and 1 bias"
MULTIPLIES_HINT = ("one multiplication per weight per output value: n_h' * n_w' * n_c * (f*f*n_c_prev), with n_h', "
                   "n_w' the output's size (padding and stride included), not the input's")
SEPARABLE_HINTS = {
    "result['normal']": "normal: n_c filters of f x f x n_c_prev at every output position (no padding, stride 1)",
    "result['depthwise']": "depthwise: one f x f filter per input channel, at every output position",
    "result['pointwise']": "pointwise: a 1 x 1 convolution from n_c_prev to n_c channels, at every output position",
    "result['total']": "total = depthwise + pointwise",
}


# -- the LeNet-5 table ----------------------------------------------------------------------------------
def _vector_shapes(table: Any) -> Any:
    """The lecture writes vector shapes as (120, 1): read (n, 1) as (n,) on the rows of vectors."""
    if not isinstance(table, list | tuple):
        return table
    rows = []
    for row in table:
        if isinstance(row, list | tuple) and len(row) == 4 and isinstance(row[1], list | tuple) \
                and len(row[1]) == 2 and row[1][1] == 1 and str(row[0]).upper() in ("FC3", "FC4", "SOFTMAX"):
            row = (row[0], (row[1][0],), *row[2:])
        rows.append(row)
    return rows


def _lenet_hints() -> dict[str, str]:
    layers = [row[0] for row in ref.lenet5_param_table()]
    model = {layer.name: layer for layer in ref.lenet5().layers}
    hints = {}
    for i, name in enumerate(layers):
        if name in ref.LECTURE_PRINTED:
            hints[f"table[{i}][3]"] = (
                f"the lecture's table prints {ref.LECTURE_PRINTED[name]:,} for {name}, which is wrong; Keras "
                f"counts {model[name].count_params():,} for this layer (weights f*f*n_c_prev per filter, or "
                "n_in per unit, plus one bias each). The grade uses the true count.")
    hints["table[0][0]"] = "the rows are INPUT, CONV1, POOL1, CONV2, POOL2, FC3, FC4, SOFTMAX, in that order"
    return hints


def lenet_table_matches_keras(student: Student, ctx: Context) -> None:
    """The table against reference/'s, whose counts tests pin to Keras' (lenet5()'s layers)."""
    check = agrees_with_reference("lenet5_param_table", ref.lenet5_param_table, fixed(Case(())), output="table",
                                  select=_vector_shapes, hints=_lenet_hints())
    check(student, ctx)


# -- the block functions (Keras) ---------------------------------------------------------------------------
@lru_cache(maxsize=32)
def reference_block(function: str, input_shape: tuple[int, ...], kwargs: tuple = ()) -> Any:
    return ref.block_model(getattr(ref, function), input_shape, **dict(kwargs))


def _measured(model: Any) -> tuple[tuple, dict[str, int]]:
    return tuple(model.output_shape), parameter_counts(model)


def same_shape_and_counts(function: str, cases: st.SearchStrategy[Case] | tuple[Case, ...], examples: int | None = None):
    """A check: the student's block, wrapped in a Model, has the reference's output shape and
    parameter counts (total, trainable, non-trainable) for every case; hypothesis shrinks a failure
    to the smallest input shape (a block that differs on the same input: checks.check_property)."""
    def one(student: Student, ctx: Context, case: Case) -> None:
        facts = student_model(student, ctx, function, case, BLOCK).facts
        if not facts.built or facts.counts is None or not isinstance(facts.output_shape, list):
            raise Failure(f"on input {call_text(function, case)}: the block's model has no single output shape")
        got_shape, got_counts = tuple(facts.output_shape), facts.counts
        want_shape, want_counts = _measured(reference_block(function, tuple(case.args[0]),
                                                            tuple(sorted(case.kwargs.items()))))
        where = f"on input {call_text(function, case)}"
        if got_shape != want_shape:
            raise Failure(f"{where}: output shape {got_shape}, expected {want_shape}")
        wrong = [f"{k}: expected {want_counts[k]:,}, got {got_counts[k]:,}" for k in want_counts
                 if got_counts[k] != want_counts[k]]
        if wrong:
            raise Failure(f"{where}: parameter counts differ ({'; '.join(wrong)})")

    def run(student: Student, ctx: Context) -> None:
        if isinstance(cases, tuple):
            for case in cases:
                one(student, ctx, case)
            return
        check_property(cases, lambda case: one(student, ctx, case), examples=examples or ctx.max_examples,
                       what=function, show_input=lambda case: f"  {call_text(function, case)}")
    return run


def paired_weights(source: Any, target: ModelFacts) -> tuple[list[np.ndarray], str | None]:
    """The weights of `source`'s layers (a model built here) for `target`'s (the student's, as the
    worker describes it), in the target's order: each weighted layer paired with the next unused
    one of the same class and weight shapes (branches may be built in any order); and what did
    not pair, or None."""
    unused = [layer for layer in source.layers if layer.weights]
    weights: list[np.ndarray] = []
    for layer in (layer for layer in target.layers if layer.weights):
        shapes = [tuple(s) for s in layer.weight_shapes]
        match = next((s for s in unused if type(s).__name__ == layer.class_name
                      and [tuple(w.shape) for w in s.weights] == shapes), None)
        if match is None:
            return [], f"its layer {layer.name} ({layer.class_name}, weights {shapes}) has no counterpart"
        unused.remove(match)
        weights += match.get_weights()
    return weights, None


def with_fixed_weights(model: Any, seed_value: int = 0) -> Any:
    """`model` with every weight drawn from one seed (the same on every run), batch-norm statistics
    and scales away from their identity values, so that each layer changes what the block computes."""
    rng = np.random.RandomState(seed_value)
    for weight in model.weights:
        name = weight.name.split("/")[-1]
        if name.startswith(("gamma", "moving_variance")):
            value = rng.uniform(0.5, 1.5, weight.shape)
        else:
            value = rng.uniform(-0.5, 0.5, weight.shape)
        weight.assign(value.astype(np.float32))
    return model


def computes_like_the_block(function: str, case: Case, side: int, channels: int, what: str):
    """A check: with the reference's weights copied in, the student's block computes what the
    reference computes (inference mode) on drawn inputs; catches wiring that counts cannot see."""
    state: dict[str, Any] = {}

    def prop(model: RemoteModel, X: np.ndarray) -> str | None:
        if "expected" not in state:  # built on first use: loading the checks builds no model
            state["expected"] = with_fixed_weights(ref.block_model(getattr(ref, function), tuple(case.args[0]),
                                                                   **case.kwargs))
        expected_model = state["expected"]
        if state.get("model") is not model:
            state["model"] = model
            state["weights"], state["problem"] = paired_weights(expected_model, model.facts)
        if state["problem"]:
            return f"the reference's weights cannot be copied in: {state['problem']}"
        got = model.forward(state["weights"], X, training=False)
        expected = np.asarray(expected_model(X, training=False))
        if got.shape != expected.shape:
            return f"output shape {got.shape}, expected {expected.shape}"
        if not np.allclose(got, expected, rtol=1e-4, atol=1e-4):
            index = tuple(int(i) for i in np.unravel_index(np.argmax(np.abs(got - expected)), got.shape))
            return (f"with the reference's weights copied in, output{list(index)} is {got[index]:.6g}, expected "
                    f"{expected[index]:.6g} (largest difference): {what}")
        return None

    inputs = st.builds(lambda values: np.asarray(values, dtype=np.float32).reshape(1, side, side, channels),
                       st.lists(st.integers(-9, 9), min_size=side * side * channels, max_size=side * side * channels))
    return model_property(function, case, inputs, prop, through=BLOCK, examples=2 * BLOCK_EXAMPLES)


LECTURE_INCEPTION = Case((InputShape((28, 28, 192)),), names=("X",))


@st.composite
def inception_cases(draw) -> Case:
    return Case((InputShape((draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 64)))),),
                names=("X",))


@st.composite
def bottleneck_cases(draw) -> Case:
    channels = draw(st.integers(1, 32))
    out = draw(st.one_of(st.just(channels), st.integers(1, 32)))   # residual or not, both drawn
    return Case((InputShape((draw(st.integers(1, 9)), draw(st.integers(1, 9)), channels)),),
                {"out_channels": out, "expansion": draw(st.integers(1, 6))}, names=("X",))


LECTURE_BOTTLENECK = (Case((InputShape((56, 56, 24)),), {"out_channels": 24}, names=("X",)),
                      Case((InputShape((56, 56, 24)),), {"out_channels": 32}, names=("X",)))


CHECKS: dict[str, list[Check]] = {
    "conv_output_shape": [
        Check("lecture examples", public=True, run=agrees_with_reference(
            "conv_output_shape", keras_conv_output_shape,
            fixed(Case((6, 6, 3, 0, 1), names=("n_h", "n_w", "f", "pad", "stride")),
                  Case((6, 6, 3, 1, 1), names=("n_h", "n_w", "f", "pad", "stride")),
                  Case((7, 7, 3, 0, 2), names=("n_h", "n_w", "f", "pad", "stride"))), hints=CONV_HINTS)),
        Check("against Keras", run=agrees_with_reference(
            "conv_output_shape", keras_conv_output_shape, conv_geometry_cases(), hints=CONV_HINTS)),
    ],
    "same_padding": [
        Check("against Keras", public=True, run=agrees_with_reference(
            "same_padding", keras_same_padding, fixed(*(Case((f,), names=("f",)) for f in (1, 3, 5, 7, 9, 11))),
            hints={"result": "a 'same' convolution (stride 1) keeps n: n + 2*pad - f + 1 = n"})),
    ],
    "conv_params": [
        Check("lecture example", public=True, run=agrees_with_reference(
            "conv_params", keras_conv_params, fixed(Case((3, 3, 10), names=("f", "n_c_prev", "n_c"))),
            hints={"result": PARAMS_HINT})),
        Check("against Keras", run=agrees_with_reference(
            "conv_params", keras_conv_params,
            st.builds(lambda f, c, n: Case((f, c, n), names=("f", "n_c_prev", "n_c")),
                      st.integers(1, 7), st.integers(1, 64), st.integers(1, 64)),
            hints={"result": PARAMS_HINT}, examples=15)),
    ],
    "conv_multiplies": [
        Check("lecture examples", public=True, run=agrees_with_reference(
            "conv_multiplies", ref.conv_multiplies,
            fixed(Case((28, 28, 192, 5, 32), {"pad": 2}, names=("n_h", "n_w", "n_c_prev", "f", "n_c")),
                  Case((28, 28, 192, 1, 16), names=("n_h", "n_w", "n_c_prev", "f", "n_c")),
                  Case((28, 28, 16, 5, 32), {"pad": 2}, names=("n_h", "n_w", "n_c_prev", "f", "n_c"))),
            hints={"result": MULTIPLIES_HINT})),
        Check("random sizes", run=agrees_with_reference(
            "conv_multiplies", ref.conv_multiplies, multiplies_cases(), hints={"result": MULTIPLIES_HINT})),
    ],
    "depthwise_separable_multiplies": [
        Check("lecture example", public=True, run=agrees_with_reference(
            "depthwise_separable_multiplies", ref.depthwise_separable_multiplies,
            fixed(Case((6, 6, 3, 3, 5), names=("n_h", "n_w", "n_c_prev", "f", "n_c"))), hints=SEPARABLE_HINTS)),
        Check("random sizes", run=agrees_with_reference(
            "depthwise_separable_multiplies", ref.depthwise_separable_multiplies, separable_cases(),
            hints=SEPARABLE_HINTS)),
    ],
    "inception_module": [
        Check("lecture example", public=True, run=same_shape_and_counts("inception_module", (LECTURE_INCEPTION,))),
        Check("drawn input shapes", run=same_shape_and_counts("inception_module", inception_cases(),
                                                              examples=BLOCK_EXAMPLES)),
        Check("computes the module", run=computes_like_the_block(
            "inception_module", Case((InputShape((4, 4, 3)),), names=("X",)), 4, 3,
            "the branches are concatenated as 1x1, 3x3, 5x5, pool (in that order), each ending in a ReLU, and "
            "the 3x3 and 5x5 convolutions and the pool keep the size ('same')")),
    ],
    "mobilenet_v2_bottleneck": [
        Check("lecture example", public=True, run=same_shape_and_counts("mobilenet_v2_bottleneck", LECTURE_BOTTLENECK)),
        Check("drawn input shapes", run=same_shape_and_counts("mobilenet_v2_bottleneck", bottleneck_cases(),
                                                              examples=BLOCK_EXAMPLES)),
        Check("computes the block (residual)", run=computes_like_the_block(
            "mobilenet_v2_bottleneck", Case((InputShape((3, 3, 2)),), {"out_channels": 2}, names=("X",)), 3, 2,
            "ReLU6 after the expansion and the depthwise convolution, none after the projection (a linear "
            "bottleneck), and the block's input added to its output when the channels agree")),
        Check("computes the block (projection)", run=computes_like_the_block(
            "mobilenet_v2_bottleneck", Case((InputShape((3, 3, 2)),), {"out_channels": 3}, names=("X",)), 3, 2,
            "ReLU6 after the expansion and the depthwise convolution, none after the projection (a linear "
            "bottleneck), and no residual when the channels differ")),
    ],
    "lenet5_param_table": [
        Check("against Keras", public=True, run=lenet_table_matches_keras),
    ],
}
