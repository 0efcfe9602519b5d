"""Checks of the conv_application exercise (course notebook Convolution_model_Application):
each model's architecture layer by layer, its parameter counts, what it computes, and training
by the grader; convolutional_model also on an input shape other than the notebook's.

Both graded functions return Keras models, which come back as their JSON architecture; the
model worker builds them (grader/model_worker.py) and every check works on its answers. The
grader's training is in model_recipes.py.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from grader.checks import Case, Check, Context, Failure, Student
from grader.keras_checks import (call_text, computes_like_reference, same_parameter_counts, same_structure,
                                 student_model, trains_like_reference)
from grader.spec import DATA_CACHE
from reference import conv_application as ref

CACHE = DATA_CACHE / "conv_application" / "reference_scores.json"
HAPPY_CASE = Case(())
SIGNS_CASE = Case((ref.SIGNS_INPUT_SHAPE,), names=("input_shape",))
# Another picture size, rectangular and grey: a model that ignores its input_shape argument, or
# whose pooling pads differently, is told apart here (on 64x64 both pools divide evenly, so 'valid'
# and 'same' pooling give the same shapes and outputs).
OTHER_SHAPE = (32, 48, 1)
OTHER_CASE = Case((OTHER_SHAPE,), names=("input_shape",))

# Forward passes: the reference's weights are copied into the student's model before the
# comparison (computes_like_reference), so the check does not depend on initial weights. That
# matters here: the course's layers use Keras' unseeded default initializers, so two correct
# models built one after the other do NOT start from the same weights (unlike resnet50's seeded
# ones). With the weights copied, the correct samples' outputs equal the reference's exactly.
HAPPY_INPUT = np.random.RandomState(0).rand(4, *ref.HAPPY_INPUT_SHAPE).astype(np.float32)
SIGNS_INPUT = np.random.RandomState(1).rand(4, *ref.SIGNS_INPUT_SHAPE).astype(np.float32)


@lru_cache(maxsize=None)
def _reference(which: str, shape: tuple[int, ...] | None = None) -> Any:
    """One reference model per call signature, for structure, counts and forward passes (never trained).

    Its kernels are redrawn from a fixed seed (Glorot-uniform, as Keras' default; biases and
    BatchNormalization as built), without touching the global generators: the forward pass's
    feedback (the largest difference) is then the same on every run.
    """
    model = ref.happyModel() if which == "happy" else ref.convolutional_model(shape)
    rng = np.random.RandomState(0)
    weights = []
    for w in model.get_weights():
        if w.ndim > 1:
            receptive = int(np.prod(w.shape[:-2]))
            limit = np.sqrt(6.0 / (receptive * (w.shape[-2] + w.shape[-1])))
            w = rng.uniform(-limit, limit, w.shape).astype(w.dtype)
        weights.append(w)
    model.set_weights(weights)
    return model


def happy_reference() -> Any:
    return _reference("happy")


def signs_reference() -> Any:
    return _reference("signs", ref.SIGNS_INPUT_SHAPE)


def other_reference() -> Any:
    return _reference("signs", OTHER_SHAPE)


# -- checks ---------------------------------------------------------------------------------------
def built(function: str, case: Case, check: Callable[[Student, Context], None]) -> Callable[[Student, Context], None]:
    """`check`, once the model is known to be built (its input shape known, weights created).

    A Sequential whose first layer has no input_shape (or that has no layers at all, as the
    template's happyModel returns) comes back unbuilt: it has no output shapes and no weights, and
    the keras_checks primitives would fail on it with Keras' own errors rather than feedback.
    """
    def run(student: Student, ctx: Context) -> None:
        facts = student_model(student, ctx, function, case).facts
        if not facts.built:
            where = f"on input {call_text(function, case)}"
            if not facts.layers:
                raise Failure(f"{where}: the model has no layers (expected {len(_reference_of(function).layers)})")
            shape = "(64, 64, 3)" if function == "happyModel" else "input_shape"
            raise Failure(f"{where}: the model has no input shape, so Keras has not built it (no output shapes, no "
                          f"weights): give the first layer of the Sequential input_shape={shape}")
        check(student, ctx)
    return run


def _reference_of(function: str) -> Any:
    return happy_reference() if function == "happyModel" else signs_reference()


happy_structure = built("happyModel", HAPPY_CASE, same_structure("happyModel", happy_reference, HAPPY_CASE))
signs_structure = built("convolutional_model", SIGNS_CASE, same_structure(
    "convolutional_model", signs_reference, SIGNS_CASE))
_other_structure = built("convolutional_model", OTHER_CASE, same_structure(
    "convolutional_model", other_reference, OTHER_CASE))
_other_counts = same_parameter_counts("convolutional_model", other_reference, OTHER_CASE)


# computes_like_reference's default guess at the cause is written for resnet50's graph (a shortcut
# added to the wrong tensor). Here the likely cause is a layer's setting that the summary shows too
# (an activation).
_FORWARD_HINT = "a layer's setting differs (e.g. its activation), or a layer is applied to the wrong tensor"


def forward_pass(function: str, reference: Callable[[], Any], case: Case, inputs: np.ndarray
                 ) -> Callable[[Student, Context], None]:
    return built(function, case, computes_like_reference(function, reference, case, inputs, likely=_FORWARD_HINT))


def other_input_shape(student: Student, ctx: Context) -> None:
    """convolutional_model((32, 48, 1)): the reference's layers and counts for that shape."""
    try:
        _other_structure(student, ctx)
        _other_counts(student, ctx)
    except Failure as exc:
        try:
            facts = student_model(student, ctx, "convolutional_model", OTHER_CASE).facts
        except Failure:
            raise exc from None
        got = facts.input_shape if facts.built else None
        if isinstance(got, list) and tuple(got[1:]) != OTHER_SHAPE:
            raise Failure(f"{exc}\n  The model's input has shape {tuple(got[1:])}, not the input_shape it was given: "
                          "build it on tf.keras.Input(shape=input_shape), so that it works for pictures of any size"
                          ) from None
        raise


CHECKS: dict[str, list[Check]] = {
    "happyModel": [
        Check("architecture", public=True, run=happy_structure),
        Check("parameter counts", run=built("happyModel", HAPPY_CASE, same_parameter_counts(
            "happyModel", happy_reference, HAPPY_CASE))),
        Check("forward pass", run=forward_pass("happyModel", happy_reference, HAPPY_CASE, HAPPY_INPUT)),
        # One sigmoid unit: the grader's accuracy counts an output above 0.5 as "happy" (model_training.predicted_right).
        Check("training", requires=("architecture",), run=trains_like_reference(
            "happyModel", ref.happyModel, HAPPY_CASE, "training_happy", recipe="happy", cache=CACHE)),
    ],
    "convolutional_model": [
        Check("architecture", public=True, run=signs_structure),
        Check("parameter counts", run=built("convolutional_model", SIGNS_CASE, same_parameter_counts(
            "convolutional_model", signs_reference, SIGNS_CASE))),
        Check("other input shape", run=other_input_shape),
        Check("forward pass", run=forward_pass("convolutional_model", signs_reference, SIGNS_CASE, SIGNS_INPUT)),
        Check("training", requires=("architecture",), run=trains_like_reference(
            "convolutional_model", lambda: ref.convolutional_model(ref.SIGNS_INPUT_SHAPE), SIGNS_CASE,
            "training_signs", recipe="signs", cache=CACHE)),
    ],
}
