"""The conv_application checks on in-process students (answers still cross the probe boundary).

The reference's own functions pass every check; planted mistakes fail the checks meant to catch
them, with messages that say what is wrong; the grader's training starts every model of one
architecture from the same weights, so a correct model scores exactly what the reference does.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
tf_keras = pytest.importorskip("tf_keras")

from grader.checks import Context, Failure  # noqa: E402
from grader.model_training import TrainingBudget, train_and_score  # noqa: E402
from grader.spec import load_exercise  # noqa: E402
from reference import conv_application as ref  # noqa: E402

EXERCISE = load_exercise("conv_application")
CHECKS = {(item, c.aspect): c for item, checks in EXERCISE.checks.CHECKS.items() for c in checks}
CTX = Context(EXERCISE.tolerance, EXERCISE.max_examples, params=EXERCISE.params)
L = tf_keras.layers
checks = EXERCISE.checks

HAPPY_ASPECTS = ("architecture", "parameter counts", "forward pass")
SIGNS_ASPECTS = ("architecture", "parameter counts", "other input shape", "forward pass")


def _recipes():
    """The exercise's training recipes (what the model worker runs), loaded here to test them."""
    spec = importlib.util.spec_from_file_location("conv_application_recipes", EXERCISE.recipes)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


recipes = _recipes()


@pytest.fixture(autouse=True)
def _models(model_worker, monkeypatch):
    """CTX with the exercise's model worker (stand-in data), where students' models are built."""
    data, _ = EXERCISE.data.resolve()
    monkeypatch.setattr(sys.modules[__name__], "CTX",
                        dataclasses.replace(CTX, data=data, models=model_worker("conv_application")))


def run(student, item: str, aspect: str, ctx: Context | None = None) -> str | None:
    """The check's failure message, or None when it passes."""
    try:
        CHECKS[(item, aspect)].run(student, ctx or CTX)
    except Failure as exc:
        return str(exc)
    return None


def signs_model(pool_padding="same", first_pool=8, fixed_shape=None):
    def build(input_shape):
        x = inp = tf_keras.Input(shape=fixed_shape or input_shape)
        x = L.ReLU()(L.Conv2D(8, 4, padding="same")(x))
        x = L.MaxPool2D(first_pool, first_pool, padding=pool_padding)(x)
        x = L.ReLU()(L.Conv2D(16, 2, padding="same")(x))
        x = L.MaxPool2D(4, 4, padding=pool_padding)(x)
        return tf_keras.Model(inp, L.Dense(6, activation="softmax")(L.Flatten()(x)))
    return build


def happy_model(*layers_):
    return lambda: tf_keras.Sequential(list(layers_))


def test_every_check_is_listed():
    assert {k for k in CHECKS} == {("happyModel", a) for a in (*HAPPY_ASPECTS, "training")} | {
        ("convolutional_model", a) for a in (*SIGNS_ASPECTS, "training")}


def test_the_reference_passes_every_model_check(make_student):
    student = make_student({"happyModel": ref.happyModel, "convolutional_model": ref.convolutional_model})
    assert [run(student, "happyModel", a) for a in HAPPY_ASPECTS] == [None] * 3
    assert [run(student, "convolutional_model", a) for a in SIGNS_ASPECTS] == [None] * 4


def test_a_hard_coded_input_shape_fails_only_on_another_shape(make_student):
    student = make_student({"convolutional_model": signs_model(fixed_shape=(64, 64, 3))})
    assert [run(student, "convolutional_model", a) for a in ("architecture", "parameter counts", "forward pass")] \
        == [None] * 3
    message = run(student, "convolutional_model", "other input shape")
    assert message.startswith("on input convolutional_model((32, 48, 1)): the model differs")
    assert "expected [(None, 32, 48, 1)], got [(None, 64, 64, 3)]" in message
    assert "not the input_shape it was given" in message


def test_valid_pooling_is_seen_in_the_summary_and_on_another_shape(make_student):
    student = make_student({"convolutional_model": signs_model(pool_padding="valid")})
    assert run(student, "convolutional_model", "parameter counts") is None
    assert run(student, "convolutional_model", "forward pass") is None  # 64 = 8 * 8: no padding either way
    assert "padding: expected 'same', got 'valid'" in run(student, "convolutional_model", "architecture")
    message = run(student, "convolutional_model", "other input shape")
    assert message.startswith("on input convolutional_model((32, 48, 1)): the model differs")
    assert "input_shape it was given" not in message
    # There the second pool's output is 1x1 instead of 1x2: the counts differ too.
    with pytest.raises(Failure, match="total: expected 862, got 766"):
        checks._other_counts(student, CTX)


def test_a_wrong_pool_size_changes_the_counts(make_student):
    student = make_student({"convolutional_model": signs_model(first_pool=4)})
    message = run(student, "convolutional_model", "parameter counts")
    assert message == ("on input convolutional_model((64, 64, 3)): parameter counts differ "
                       "(total: expected 1,310, got 2,462; trainable: expected 1,310, got 2,462)")
    assert "weights do not fit" in run(student, "convolutional_model", "forward pass")


def test_happy_without_batchnorm(make_student):
    student = make_student({"happyModel": happy_model(
        L.ZeroPadding2D(3, input_shape=(64, 64, 3)), L.Conv2D(32, 7), L.ReLU(), L.MaxPool2D(), L.Flatten(),
        L.Dense(1, activation="sigmoid"))})
    assert "expected a BatchNormalization layer, got ReLU" in run(student, "happyModel", "architecture")
    assert run(student, "happyModel", "parameter counts") == (
        "on input happyModel(): parameter counts differ (total: expected 37,633, got 37,505; "
        "trainable: expected 37,569, got 37,505; non-trainable: expected 64, got 0)")


def test_happy_with_same_padding_instead_of_zero_padding_computes_the_same(make_student):
    student = make_student({"happyModel": happy_model(
        L.Conv2D(32, 7, padding="same", input_shape=(64, 64, 3)), L.BatchNormalization(axis=3), L.ReLU(),
        L.MaxPool2D(), L.Flatten(), L.Dense(1, activation="sigmoid"))})
    assert run(student, "happyModel", "parameter counts") is None
    assert run(student, "happyModel", "forward pass") is None
    assert "expected a ZeroPadding2D layer, got Conv2D" in run(student, "happyModel", "architecture")


@pytest.mark.parametrize("activation", [None, "softmax", "relu"])
def test_happy_output_activation_is_named(make_student, activation):
    student = make_student({"happyModel": happy_model(
        L.ZeroPadding2D(3, input_shape=(64, 64, 3)), L.Conv2D(32, 7), L.BatchNormalization(axis=3), L.ReLU(),
        L.MaxPool2D(), L.Flatten(), L.Dense(1, activation=activation))})
    message = run(student, "happyModel", "architecture")
    assert message.endswith(f"(Dense): activation: expected 'sigmoid', got {activation or 'linear'!r}")
    message = run(student, "happyModel", "forward pass")
    assert "the model computes something else" in message and "(e.g. its activation)" in message
    assert "shortcut" not in message  # computes_like_reference's hint is resnet50's


def test_an_empty_sequential_fails_cleanly(make_student):
    student = make_student({"happyModel": happy_model()})
    for aspect in HAPPY_ASPECTS:
        assert run(student, "happyModel", aspect) == "on input happyModel(): the model has no layers (expected 7)"


def test_a_sequential_without_input_shape_fails_cleanly(make_student):
    student = make_student({"happyModel": happy_model(
        L.ZeroPadding2D(3), L.Conv2D(32, 7), L.BatchNormalization(axis=3), L.ReLU(), L.MaxPool2D(), L.Flatten(),
        L.Dense(1, activation="sigmoid"))})
    for aspect in HAPPY_ASPECTS:
        message = run(student, "happyModel", aspect)
        assert message.startswith("on input happyModel(): the model has no input shape, so Keras has not built it")
        assert message.endswith("input_shape=(64, 64, 3)")


def test_fresh_start_gives_every_model_of_an_architecture_the_same_weights():
    # The course's initializers are unseeded: two models built one after the other differ.
    a, b = ref.convolutional_model((64, 64, 3)), ref.convolutional_model((64, 64, 3))
    assert not all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))
    starts = []
    for model in (a, b, ref.happyModel(), ref.happyModel()):
        tf_keras.utils.set_random_seed(1)
        recipes.fresh_start(model)
        starts.append(model.get_weights())
    for first, second in (starts[:2], starts[2:]):
        assert all(np.array_equal(x, y) for x, y in zip(first, second))


# --------------------------------------------------------------------------- training (slow)


@pytest.mark.slow
def test_happy_training_is_deterministic_and_clearly_above_chance():
    budget = TrainingBudget(**EXERCISE.params["training_happy"])
    data = recipes.load_happy(CTX.data)
    scores = [train_and_score(ref.happyModel(), data, budget, recipes.compile_happy) for _ in range(2)]
    assert scores[0] == scores[1]
    assert scores[0]["test_accuracy"] > 0.8  # chance is 0.5


@pytest.mark.slow
def test_training_checks_pass_the_reference_and_refuse_a_wrong_model(make_student):
    # The reference's scores go to the grader's cache (.data-cache/conv_application/), under the key
    # the grader computes for the stand-in files; both are trained by the model worker.
    ctx = CTX
    student = make_student({"happyModel": ref.happyModel, "convolutional_model": ref.convolutional_model})
    assert run(student, "happyModel", "training", ctx) is None
    assert run(student, "convolutional_model", "training", ctx) is None
    # A model whose architecture is wrong is not trained: the runner skips its training check,
    # naming the precondition (Check.requires), and scores it 0.
    from grader import grading

    wrong = make_student({"convolutional_model": signs_model(first_pool=4)})
    wrong.defined = lambda names: list(names)
    item = next(i for i in EXERCISE.items if i.name == "convolutional_model")
    tests = {t.name.split(": ", 1)[1]: t for t in grading._grade_item(item, EXERCISE, wrong, None, None, ctx)}
    assert tests["architecture"].status == "failed"
    assert tests["training"].status == "skipped" and tests["training"].score == 0
    assert "not checked because convolutional_model: architecture failed" in tests["training"].output
