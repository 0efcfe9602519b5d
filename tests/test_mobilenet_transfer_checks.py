"""The mobilenet_transfer checks on in-process students (answers still cross the probe boundary).

Each planted mistake fails the check meant to catch it, with a message that says what is wrong;
the reference's own code passes every check.
"""

from __future__ import annotations

import dataclasses
import os
import sys

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
tf_keras = pytest.importorskip("tf_keras")

from grader.checks import Context, Failure  # noqa: E402
from grader.spec import load_exercise  # noqa: E402
from reference import mobilenet_transfer as ref  # noqa: E402

EXERCISE = load_exercise("mobilenet_transfer")
CHECKS = {(item, c.aspect): c for item, checks in EXERCISE.checks.CHECKS.items() for c in checks}
CTX = Context(EXERCISE.tolerance, EXERCISE.max_examples, params=EXERCISE.params)
L = tf_keras.layers


@pytest.fixture(autouse=True)
def _models(model_worker, monkeypatch):
    """CTX with the exercise's model worker, where students' models are built."""
    monkeypatch.setattr(sys.modules[__name__], "CTX", dataclasses.replace(CTX, models=model_worker("mobilenet_transfer")))


def run(student, item: str, aspect: str) -> str | None:
    """The check's failure message, or None when it passes."""
    try:
        CHECKS[(item, aspect)].run(student, CTX)
    except Failure as exc:
        return str(exc)
    return None


def augmenter_student(make_student, build):
    return make_student({"data_augmenter": build})


def test_the_references_augmenter_passes_every_augmenter_check(make_student):
    student = augmenter_student(make_student, ref.data_augmenter)
    assert [run(student, "data_augmenter", a) for a in ("layers", "inference and shapes", "random in training")] \
        == [None, None, None]


@pytest.mark.parametrize("layers, expected", [
    (lambda: [L.RandomFlip("vertical"), L.RandomRotation(0.2)], "the flip must be horizontal"),
    (lambda: [L.RandomFlip("horizontal"), L.RandomRotation(0.1)], "rotation factor must be 0.2"),
    (lambda: [L.RandomFlip("horizontal")], "it has 1 layers, expected 2"),
    (lambda: [L.RandomRotation(0.2), L.RandomFlip("horizontal")], "the first layer must be RandomFlip"),
])
def test_wrong_augmenter_layers_are_named(make_student, layers, expected):
    student = augmenter_student(make_student, lambda: tf_keras.Sequential(layers()))
    message = run(student, "data_augmenter", "layers")
    assert message is not None and expected in message and "expected [RandomFlip('horizontal')" in message


def test_rotation_given_as_a_range_is_the_same_factor(make_student):
    student = augmenter_student(make_student, lambda: tf_keras.Sequential(
        [L.RandomFlip("horizontal"), L.RandomRotation((-0.2, 0.2))]))
    assert run(student, "data_augmenter", "layers") is None


def test_an_augmenter_that_changes_images_at_inference_fails_with_a_minimal_batch(make_student):
    student = augmenter_student(make_student, lambda: tf_keras.Sequential(
        [L.RandomFlip("horizontal"), L.RandomRotation(0.2), L.Rescaling(1 / 255.0)]))
    message = run(student, "data_augmenter", "inference and shapes")
    assert message is not None and "with training=False the images changed" in message
    assert "on input X of shape (1, 2, 2, 3)" in message  # shrunk to the smallest batch


def test_an_augmenter_that_never_changes_anything_is_not_random(make_student):
    student = augmenter_student(make_student, lambda: tf_keras.Sequential(
        [L.RandomFlip("horizontal_and_vertical", seed=1), L.RandomRotation(0.0)][1:]))
    assert "never changed it" in run(student, "data_augmenter", "random in training")


def alpaca_student(make_student, build):
    """A student whose alpaca_model is `build(image_shape, augmenter)`, called as the kernel prelude does."""
    return make_student({
        "alpaca_model": build,
        "__convgrade_alpaca_model__": lambda name, image_shape: build(tuple(image_shape), ref.data_augmenter()),
    })


def variant(*, trainable=False, training=False, activation=None, dropout=0.2):
    def build(image_shape=ref.IMG_SIZE, data_augmentation=None):
        shape = tuple(image_shape) + (3,)
        base = tf_keras.applications.MobileNetV2(input_shape=shape, include_top=False, weights=None)
        base.trainable = trainable
        inputs = tf_keras.Input(shape=shape)
        x = data_augmentation(inputs)
        x = tf_keras.applications.mobilenet_v2.preprocess_input(x)
        x = base(x, training=training)
        x = L.GlobalAveragePooling2D()(x)
        x = L.Dropout(dropout)(x)
        return tf_keras.Model(inputs, L.Dense(1, activation=activation)(x))
    return build


ALPACA_ASPECTS = ("architecture", "parameter counts", "frozen base", "base in inference mode", "logits output")


@pytest.mark.slow   # builds MobileNetV2 several times
def test_the_course_solution_passes_every_alpaca_check(make_student):
    student = alpaca_student(make_student, variant())
    assert {a: run(student, "alpaca_model", a) for a in ALPACA_ASPECTS} == dict.fromkeys(ALPACA_ASPECTS)


@pytest.mark.slow   # builds MobileNetV2 several times
@pytest.mark.parametrize("mistake, failing, phrase", [
    (dict(trainable=True), {"parameter counts", "frozen base"}, "must be frozen"),
    (dict(training=True), {"base in inference mode"}, "called with training=True"),
    (dict(training=None), {"base in inference mode"}, "called with training=not given"),
    (dict(activation="sigmoid"), {"architecture", "logits output"}, "must be a logit"),
    (dict(dropout=0.5), {"architecture"}, "rate"),
])
def test_alpaca_mistakes_fail_the_check_that_names_them(make_student, mistake, failing, phrase):
    student = alpaca_student(make_student, variant(**mistake))
    messages = {a: run(student, "alpaca_model", a) for a in ALPACA_ASPECTS}
    assert {a for a, m in messages.items() if m} == failing
    assert any(phrase in m for m in messages.values() if m), messages


def fine_tuning_student(make_student, *, fine_tune_at=120, loss=None, optimizer=None, metrics=("accuracy",),
                        unfreeze=True):
    """A student whose fine-tuning cell left these globals (read as the kernel prelude reads them)."""
    model2 = ref.alpaca_model()
    base = ref.base_of(model2)
    base.trainable = unfreeze
    for layer in base.layers[:fine_tune_at]:
        layer.trainable = False
    loss = loss if loss is not None else tf_keras.losses.BinaryCrossentropy(from_logits=True)
    optimizer = optimizer if optimizer is not None else tf_keras.optimizers.Adam(learning_rate=1e-4)

    def described(obj):
        config = {k: (v.item() if hasattr(v, "item") else v) for k, v in obj.get_config().items()
                  if isinstance(v, (str, int, float, bool)) or v is None or hasattr(v, "item")}
        return {"class": type(obj).__name__, "module": type(obj).__module__, "config": config}

    state = {"model": model2, "fine_tune_at": fine_tune_at, "loss": described(loss),
             "optimizer": described(optimizer), "metrics": list(metrics)}
    return make_student({"__convgrade_fine_tuning__": lambda: state})


FINE_ASPECTS = ("frozen below layer 120", "loss", "optimizer", "metrics")


@pytest.mark.slow   # builds MobileNetV2 several times
def test_the_course_fine_tuning_passes_every_fine_tuning_check(make_student):
    student = fine_tuning_student(make_student)
    assert {a: run(student, "fine_tuning", a) for a in FINE_ASPECTS} == dict.fromkeys(FINE_ASPECTS)


@pytest.mark.slow   # builds MobileNetV2 several times
def test_fine_tuning_from_layer_110_names_the_thawed_layers(make_student):
    message = run(fine_tuning_student(make_student, fine_tune_at=110), "fine_tuning", "frozen below layer 120")
    assert "layers 110-119 of model2's base" in message and "the notebook's fine_tune_at is 110" in message


@pytest.mark.slow   # builds MobileNetV2 several times
def test_a_base_left_frozen_is_not_fine_tuned(make_student):
    message = run(fine_tuning_student(make_student, unfreeze=False), "fine_tuning", "frozen below layer 120")
    assert "are frozen; the base is fine-tuned from layer 120 on" in message


@pytest.mark.slow   # builds MobileNetV2 several times
@pytest.mark.parametrize("kwargs, aspect, phrase", [
    (dict(loss=tf_keras.losses.BinaryCrossentropy()), "loss", "without from_logits=True"),
    (dict(loss=tf_keras.losses.MeanSquaredError()), "loss", "got a MeanSquaredError"),
    (dict(optimizer=tf_keras.optimizers.Adam(learning_rate=1e-3)), "optimizer", "learning rate is 0.001"),
    (dict(optimizer=tf_keras.optimizers.SGD(learning_rate=1e-4)), "optimizer", "got a SGD"),
    (dict(metrics=("mse",)), "metrics", "should be ['accuracy']"),
])
def test_fine_tuning_choices_are_checked(make_student, kwargs, aspect, phrase):
    student = fine_tuning_student(make_student, **kwargs)
    messages = {a: run(student, "fine_tuning", a) for a in FINE_ASPECTS}
    assert {a for a, m in messages.items() if m} == {aspect}
    assert phrase in messages[aspect]


@pytest.mark.slow   # builds MobileNetV2 three times
@pytest.mark.parametrize("weights, passes", [("file", True), (None, False)])
def test_a_base_that_was_never_pretrained_fails_alpaca_model(make_student, weights, passes):
    """weights=None: architecture, counts and freezing all right, yet nothing to transfer. The
    kernel sends what the base's weights sum to (kernel_prelude.py); they must be the file's."""
    checks = EXERCISE.checks
    _, files = EXERCISE.data.resolve()
    ctx = dataclasses.replace(CTX, files=files)

    def fingerprint(name, image_shape):
        base = tf_keras.applications.MobileNetV2(input_shape=(*image_shape, 3), include_top=False,
                                                 weights=str(files["weights"]) if weights == "file" else None)
        return checks.weights_fingerprint(base.get_weights())

    student = make_student({
        "alpaca_model": variant(),
        "__convgrade_alpaca_model__": lambda name, image_shape: variant()(tuple(image_shape), ref.data_augmenter()),
        "__convgrade_base_fingerprint__": fingerprint,
    })
    try:
        CHECKS[("alpaca_model", "pretrained base")].run(student, ctx)
        message = None
    except Failure as exc:
        message = str(exc)
    if passes:
        assert message is None
    else:
        assert "does not carry the pretrained weights" in message and "not weights=None" in message
