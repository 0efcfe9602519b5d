"""Checks of the conv_application exercise (course notebook Convolution_model_Application):
each model's architecture layer by layer, its parameter counts, what it computes, and training
by the grader; convolutional_model also on an input shape other than the notebook's.

Both graded functions return Keras models, which come back as their JSON architecture and are
rebuilt here in safe mode (grader/keras_models.py); every check works on the rebuilt model.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from grader.checks import Case, Check, Context, Failure, Student
from grader.keras_checks import (call_text, computes_like_reference, same_parameter_counts, same_structure,
                                 student_model, trains_like_reference)
from grader.keras_models import keras
from grader.spec import DATA_CACHE
from reference import conv_application as ref, keras_summary

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


# -- data -----------------------------------------------------------------------------------------
def _read(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """datasets/{train,test}_<name>.h5 as the course's loaders read them: uint8 images, int labels."""
    with h5py.File(folder / f"train_{name}.h5", "r") as f:
        X_train, y_train = np.array(f["train_set_x"]), np.array(f["train_set_y"]).reshape(-1)
    with h5py.File(folder / f"test_{name}.h5", "r") as f:
        X_test, y_test = np.array(f["test_set_x"]), np.array(f["test_set_y"]).reshape(-1)
    return X_train, y_train, X_test, y_test


def load_happy(folder: Path) -> tuple[np.ndarray, ...]:
    """Happy House as the notebook prepares it: X / 255, labels as a column (m, 1)."""
    X_train, y_train, X_test, y_test = _read(folder, "happy")
    return (X_train / 255.0, y_train.reshape(-1, 1).astype(np.float32),
            X_test / 255.0, y_test.reshape(-1, 1).astype(np.float32))


def load_signs(folder: Path) -> tuple[np.ndarray, ...]:
    """SIGNS as the notebook prepares it: X / 255, one-hot labels (m, 6)."""
    X_train, y_train, X_test, y_test = _read(folder, "signs")
    eye = np.eye(ref.SIGNS_CLASSES)
    return X_train / 255.0, eye[y_train], X_test / 255.0, eye[y_test]


# -- training -------------------------------------------------------------------------------------
def _fresh_start(model: Any) -> None:
    """Give `model` the initial weights of its architecture under the seed just set.

    Called right after the training seeds are set (in keras_checks.train_and_score): the weights
    of a clone built from the model's config (with the course's unseeded initializers, whose
    seeds come from the seeded generator) are copied in. So the grader's training of a model does not depend on what was built before
    it in this process, and a correct model starts, and ends, exactly where the reference does.
    """
    model.set_weights(keras().models.clone_model(model).get_weights())


def compile_happy(model: Any) -> None:
    _fresh_start(model)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])


def compile_signs(model: Any) -> None:
    _fresh_start(model)
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])


# -- checks ---------------------------------------------------------------------------------------
def built(function: str, case: Case, check: Callable[[Student, Context], None]) -> Callable[[Student, Context], None]:
    """`check`, once the model is known to be built (its input shape known, weights created).

    A Sequential whose first layer has no input_shape (or that has no layers at all, as the
    template's happyModel returns) comes back unbuilt: it has no output shapes and no weights, and
    the keras_checks primitives would fail on it with Keras' own errors rather than feedback.
    """
    def run(student: Student, ctx: Context) -> None:
        model = student_model(student, function, case)
        if not model.built:
            where = f"on input {call_text(function, case)}"
            if not model.layers:
                raise Failure(f"{where}: the model has no layers (expected {len(_summary_of(function))})")
            shape = "(64, 64, 3)" if function == "happyModel" else "input_shape"
            raise Failure(f"{where}: the model has no input shape, so Keras has not built it (no output shapes, no "
                          f"weights): give the first layer of the Sequential input_shape={shape}")
        check(student, ctx)
    return run


def _summary_of(function: str) -> list:
    return keras_summary.summary(happy_reference() if function == "happyModel" else signs_reference())


happy_structure = built("happyModel", HAPPY_CASE, same_structure(
    "happyModel", happy_reference, HAPPY_CASE, keras_summary.summary, keras_summary.first_difference))
signs_structure = built("convolutional_model", SIGNS_CASE, same_structure(
    "convolutional_model", signs_reference, SIGNS_CASE, keras_summary.summary, keras_summary.first_difference))
_other_structure = built("convolutional_model", OTHER_CASE, same_structure(
    "convolutional_model", other_reference, OTHER_CASE, keras_summary.summary, keras_summary.first_difference))
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
            model = student_model(student, "convolutional_model", OTHER_CASE)
        except Failure:
            raise exc from None
        got = model.input_shape if model.built else None
        if isinstance(got, tuple) and tuple(got[1:]) != OTHER_SHAPE:
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
        # One sigmoid unit: the grader's accuracy counts an output above 0.5 as "happy" (keras_checks.predicted_right).
        Check("training", run=trains_like_reference(
            "happyModel", ref.happyModel, HAPPY_CASE, "training_happy", load_happy, compile_happy, cache=CACHE,
            precondition=happy_structure)),
    ],
    "convolutional_model": [
        Check("architecture", public=True, run=signs_structure),
        Check("parameter counts", run=built("convolutional_model", SIGNS_CASE, same_parameter_counts(
            "convolutional_model", signs_reference, SIGNS_CASE))),
        Check("other input shape", run=other_input_shape),
        Check("forward pass", run=forward_pass("convolutional_model", signs_reference, SIGNS_CASE, SIGNS_INPUT)),
        Check("training", run=trains_like_reference(
            "convolutional_model", lambda: ref.convolutional_model(ref.SIGNS_INPUT_SHAPE), SIGNS_CASE,
            "training_signs", load_signs, compile_signs, cache=CACHE, precondition=signs_structure)),
    ],
}
