"""Keras models cross the boundary as JSON architecture; the allowlist is checked here, and the
model worker (its own sandbox) builds them and answers with plain data."""

from __future__ import annotations

import dataclasses
import os
import re
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
tf_keras = pytest.importorskip("tf_keras")

from grader import boundary  # noqa: E402
from grader.checks import Case, Context, Failure  # noqa: E402
from grader.keras_checks import computes_like_reference, same_parameter_counts  # noqa: E402
from grader.model_training import predicted_right  # noqa: E402
from grader.boundary import UnsafeModel, check_description  # noqa: E402
from grader.keras_models import rebuild  # noqa: E402
from grader.spec import Tolerance  # noqa: E402

CTX = Context(Tolerance(), 5)


@pytest.fixture(autouse=True)
def _models(model_worker, monkeypatch):
    """CTX with a model worker (no exercise's recipes), where students' models are built."""
    monkeypatch.setattr(sys.modules[__name__], "CTX", dataclasses.replace(CTX, models=model_worker()))


def tiny(wired_right: bool = True):
    """Two Dense layers and an Add: right = Add(x, dense2(dense1(x))); wrong adds dense1's output."""
    inp = tf_keras.Input((4,))
    h = tf_keras.layers.Dense(4, kernel_initializer=tf_keras.initializers.GlorotUniform(seed=0))(inp)
    out = tf_keras.layers.Dense(4, kernel_initializer=tf_keras.initializers.GlorotUniform(seed=1))(h)
    return tf_keras.Model(inp, tf_keras.layers.Add()([inp if wired_right else h, out]))


def test_a_returned_model_crosses_as_its_architecture(make_student):
    got = make_student({"build": tiny}).call("build")
    assert isinstance(got, boundary.KerasModelConfig)
    model = rebuild(got)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense", "Dense", "Add"]
    assert model.count_params() == tiny().count_params()


def test_a_lambda_layer_is_refused_on_rebuild():
    inp = tf_keras.Input((3,))
    model = tf_keras.Model(inp, tf_keras.layers.Lambda(lambda x: x * 2)(inp))
    with pytest.raises(UnsafeModel, match="could not be rebuilt safely"):
        rebuild(boundary.KerasModelConfig(model.to_json()))


def test_an_unknown_layer_class_is_refused_on_rebuild():
    config = tiny().to_json().replace('"class_name": "Add"', '"class_name": "os.system"')
    with pytest.raises(UnsafeModel):
        rebuild(boundary.KerasModelConfig(config))


def test_a_model_description_that_is_not_json_is_a_protocol_error(tmp_path):
    (tmp_path / "out.json").write_text('{"ok": true, "value": {"$keras_model": "o0.json"}}')
    (tmp_path / "o0.json").write_text("not json")
    with pytest.raises(boundary.ProbeError, match="not valid JSON"):
        boundary.read_result(tmp_path, 1 << 20)


def test_wiring_is_caught_even_when_layers_and_counts_agree(make_student):
    student = make_student({"build": lambda: tiny(wired_right=False)})
    same_parameter_counts("build", tiny, Case(()))(student, CTX)  # counts cannot see it
    with pytest.raises(Failure, match="computes something else .*: a layer is applied to the wrong tensor"):
        computes_like_reference("build", tiny, Case(()), np.ones((2, 4), np.float32))(student, CTX)
    computes_like_reference("build", tiny, Case(()), np.ones((2, 4), np.float32))(make_student({"build": tiny}), CTX)


def test_a_non_model_answer_is_a_failure_that_says_what_came_back(make_student):
    with pytest.raises(Failure, match="should return a Keras Model, got an array"):
        same_parameter_counts("build", tiny, Case(()))(make_student({"build": lambda: np.ones(3)}), CTX)


def test_a_model_is_asked_of_the_kernel_once_per_student_and_call(make_student):
    """Every check of an item asks for the model; the kernel builds it once per student and call,
    and the worker's description of it (its facts) is asked once too."""
    from grader.keras_checks import student_model

    built = []

    def build(units=4):
        built.append(units)
        return tiny()

    student, other = make_student({"build": build}), make_student({"build": build})
    first, second = student_model(student, CTX, "build", Case(())), student_model(student, CTX, "build", Case(()))
    assert built == [4] and first is second
    assert first.facts is second.facts and first.facts.counts["total"] == tiny().count_params()
    student_model(student, CTX, "build", Case((), {"units": 5}))
    student_model(other, CTX, "build", Case(()))
    assert built == [4, 5, 4]


def test_a_failed_answer_is_asked_again(make_student):
    from grader.keras_checks import student_architecture

    attempts = []

    def flaky():
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("not yet")
        return tiny()

    student = make_student({"flaky": flaky})
    with pytest.raises(Failure, match="ValueError: not yet"):
        student_architecture(student, "flaky", Case(()))
    assert isinstance(student_architecture(student, "flaky", Case(())), boundary.KerasModelConfig)
    assert len(attempts) == 2


@pytest.mark.parametrize("out, labels, right", [
    # one sigmoid unit, labels 0/1 as a column: the side of 0.5 decides
    ([[0.9], [0.2], [0.6], [0.4]], [[1], [0], [0], [1]], [True, True, False, False]),
    # one-hot labels: the largest entry decides
    ([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], [[0, 1, 0], [0, 0, 1]], [True, False]),
])
def test_training_accuracy_reads_one_unit_as_binary_and_more_as_classes(out, labels, right):
    assert predicted_right(np.array(out), np.array(labels)).tolist() == right


# -- the allowlist: a description is code (issue #15) --------------------------------------------
def op_model(function: str = "math.add") -> str:
    """tiny() plus an op layer (what `tf.math.add(x, 1.0)` on a Keras tensor becomes), named `function`."""
    import tensorflow as tf
    inp = tf_keras.Input((4,))
    model = tf_keras.Model(inp, tf.math.add(tf_keras.layers.Dense(4)(inp), 1.0))
    text = model.to_json()
    assert '"function": "math.add"' in text
    return text.replace('"function": "math.add"', f'"function": "{function}"')


@pytest.mark.parametrize("function", ["io.read_file", "io.write_file", "io.decode_raw", "raw_ops.ReadFile",
                                      "py_function", "numpy_function", "print", "compat.v1.io.read_file"])
def test_op_layers_naming_anything_but_arithmetic_are_refused_before_anything_is_built(function, monkeypatch):
    monkeypatch.setattr(tf_keras.models, "model_from_json", lambda *a, **k: pytest.fail("built"))
    with pytest.raises(UnsafeModel, match=re.escape(f"calls tf.{function}")):
        rebuild(boundary.KerasModelConfig(op_model(function)))


def test_an_arithmetic_op_layer_is_rebuilt():
    assert rebuild(boundary.KerasModelConfig(op_model("math.add"))).count_params() == 20


@pytest.mark.parametrize("edit, refused", [
    (('"units": 4', '"units": 1000000000'), "units 1000000000"),
    (('"class_name": "Add"', '"class_name": "TextVectorization"'), "TextVectorization"),
    (('"module": "keras.layers", "class_name": "Add"', '"module": "os", "class_name": "Add"'), "module os"),
    (('"activation": "linear"', '"activation": {"module": "builtins", "class_name": "function", "config": "eval"}'),
     "(function)"),
    (('"activation": "linear"', '"activation": "deserialize"'), "activation deserialize"),
])
def test_descriptions_outside_the_allowlist_are_refused_with_what_and_where(edit, refused):
    text = tiny().to_json()
    assert edit[0] in text, edit[0]
    with pytest.raises(UnsafeModel, match=re.escape(refused)):
        rebuild(boundary.KerasModelConfig(text.replace(edit[0], edit[1], 1)))


def test_a_description_nested_past_the_limit_is_refused():
    text = tiny().to_json().replace('"dtype": "float32"', '"dtype": ' + "[" * 100 + "]" * 100, 1)
    with pytest.raises(UnsafeModel, match="nested too deeply"):
        rebuild(boundary.KerasModelConfig(text))


def test_the_reference_models_of_every_keras_exercise_are_in_the_allowlist():
    from grader.boundary import check_description
    from reference import conv_application, mobilenet_transfer, resnet50
    for model in (resnet50.ResNet50(), conv_application.happyModel(), conv_application.convolutional_model((64, 64, 3)),
                  mobilenet_transfer.alpaca_model(data_augmentation=mobilenet_transfer.data_augmenter())):
        check_description(model.to_json())


def sequential_dense(key: str, value) -> str:
    """Dense(1) as a Sequential's first layer, with `key` (e.g. input_dim) set to `value`."""
    import json

    doc = json.loads(tf_keras.Sequential([tf_keras.layers.Dense(1)]).to_json())
    doc["config"]["layers"][0]["config"][key] = value
    return json.dumps(doc)


@pytest.mark.parametrize("key, value", [("input_dim", 10**9), ("input_shape", [10**9]), ("batch_size", 10**9)])
def test_sizes_given_as_a_first_layers_input_are_bounded_too(key, value):
    """Keras honours input_dim / input_shape on a Sequential's first layer (a 10^9 x 1 kernel)."""
    with pytest.raises(UnsafeModel, match=f"has {key}"):
        check_description(sequential_dense(key, value))


@pytest.mark.parametrize("text", ["[1, 2]", '{"config": {}}', '{"class_name": "Sequential", "x": ' + "9" * 5000 + "}"])
def test_a_description_that_is_not_a_models_object_is_refused_cleanly(text):
    with pytest.raises(UnsafeModel, match="not valid JSON|not a Keras model"):
        check_description(text)


def test_a_layer_left_trainable_none_is_rebuilt_frozen_as_keras_had_it():
    """The fine-tuning template's `layer.trainable = None`, left in real notebooks: Keras trains
    nothing of such a layer; the rebuilt model has it frozen (not refused as unrebuildable)."""
    model = tf_keras.Sequential([tf_keras.Input((8, 8, 3)), tf_keras.layers.Conv2D(2, 3), tf_keras.layers.Flatten(),
                                 tf_keras.layers.Dense(1)])
    model.layers[0].trainable = None
    assert len(model.trainable_weights) == 2          # the kernel's own view: the convolution is frozen
    text = model.to_json()
    assert '"trainable": null' in text
    rebuilt = rebuild(boundary.KerasModelConfig(text))
    assert [layer.trainable for layer in rebuilt.layers] == [False, True, True]
    assert len(rebuilt.trainable_weights) == 2


# -- a published version's own layer class (resnet50's 2024 BatchNormalization) --------------------
def trusted_layers_2024():
    """exercises/resnet50/trusted_layers_2024.py, the grader's implementation of the 2024 layer."""
    import importlib.util

    from grader.spec import EXERCISES_DIR

    spec = importlib.util.spec_from_file_location("test_trusted_layers_2024",
                                                  EXERCISES_DIR / "resnet50" / "trusted_layers_2024.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class StudentBatchNormalization(tf_keras.layers.Layer):
    """A student's `resnets_utils.BatchNormalization` that computes something else (x * 1000): the
    grader must never run it, only its own implementation of the class the description names."""

    __module__ = "resnets_utils"

    def __init__(self, axis=-1, momentum=0.9, name=None, synchronized=False, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis, self.momentum = axis, momentum

    def call(self, inputs, training=None):
        return inputs * 1000.0


StudentBatchNormalization.__name__ = StudentBatchNormalization.__qualname__ = "BatchNormalization"


def course_layer_model() -> str:
    inp = tf_keras.Input((4, 4, 2))
    x = tf_keras.layers.Conv2D(3, 1, kernel_initializer=tf_keras.initializers.GlorotUniform(seed=0))(inp)
    return tf_keras.Model(inp, StudentBatchNormalization(axis=3)(x, training=True)).to_json()


def test_the_course_layer_is_described_with_its_module_and_refused_without_its_version():
    text = course_layer_model()
    assert '"module": "resnets_utils"' in text and '"class_name": "BatchNormalization"' in text
    with pytest.raises(UnsafeModel, match="module resnets_utils"):
        check_description(text)
    with pytest.raises(UnsafeModel, match="module resnets_utils"):
        rebuild(boundary.KerasModelConfig(text))
    check_description(text, {"BatchNormalization": "resnets_utils"})


def test_the_course_layer_is_rebuilt_with_the_graders_implementation_never_the_students():
    trusted = trusted_layers_2024().BatchNormalization
    model = rebuild(boundary.KerasModelConfig(course_layer_model()), {"BatchNormalization": ("resnets_utils", trusted)})
    layer = model.layers[-1]
    assert isinstance(layer, trusted) and type(layer).__name__ == "BatchNormalization" and layer.axis == 3
    X = np.random.RandomState(0).rand(2, 4, 4, 2).astype(np.float32)
    out = np.asarray(model(X, training=True))
    h = np.asarray(model.layers[1](X))
    expected = (h - h.mean(axis=(0, 1, 2))) / np.sqrt(h.var(axis=(0, 1, 2)) + 1e-6)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)   # not x * 1000


@pytest.mark.parametrize("edit, refused", [
    # a class the version does not list, though from the course's module
    (('"class_name": "BatchNormalization"', '"class_name": "Evil"'), "Evil"),
    # the listed class, but from another module than the course's
    (('"module": "resnets_utils"', '"module": "os"'), "module os"),
    # the listed class and module, registered under another name
    (('"registered_name": "BatchNormalization"', '"registered_name": "os.system"'), "registered as os.system"),
])
def test_a_custom_class_off_the_versions_allowlist_is_refused(edit, refused):
    text = course_layer_model()
    assert edit[0] in text, edit[0]
    trusted = {"BatchNormalization": ("resnets_utils", trusted_layers_2024().BatchNormalization)}
    with pytest.raises(UnsafeModel, match=re.escape(refused)):
        rebuild(boundary.KerasModelConfig(text.replace(edit[0], edit[1], 1)), trusted)


def test_the_worker_registers_a_versions_layers_for_that_version_only(tmp_path):
    """The model worker's files hold each version's trusted layers (a copy, with a manifest), and a
    request rebuilds the course's class only when it names that version."""
    from grader.model_server import Server, load_trusted
    from grader.model_worker import ModelWorker, WorkerSettings
    from grader.spec import Limits, load_exercise

    variant = load_exercise("resnet50").variants[0]
    worker = ModelWorker(WorkerSettings("none", Limits(), trusted={variant.name: variant.trusted_layers}))
    try:
        argument = next(a for a in worker.command() if a.startswith("--trusted="))
        trusted = load_trusted(argument.split("=", 1)[1])
    finally:
        worker.close()
    assert set(trusted) == {"2024"} and set(trusted["2024"]) == {"BatchNormalization"}
    server = Server({}, None, {}, trusted)
    facts = server.handle({"op": "facts", "model": course_layer_model(), "version": "2024"})["facts"]
    assert [layer["class"] for layer in facts["layers"]] == ["InputLayer", "Conv2D", "BatchNormalization"]
    assert facts["counts"] == {"total": 9 + 12, "trainable": 9 + 6, "non-trainable": 6}
    for version in ("", "2021-2023"):
        with pytest.raises(UnsafeModel, match="module resnets_utils"):
            server.handle({"op": "facts", "model": course_layer_model(), "version": version})


@pytest.mark.parametrize("key, value", [("units", 1e9), ("units", 1e9 + 0.5), ("input_dim", 1e9),
                                        ("input_shape", [1e9]), ("units", float("nan")), ("units", float("inf")),
                                        ("units", "20000"), ("units", " 2_0000 "), ("units", "\uff12\uff10\uff10\uff10\uff10"),
                                        ("units", "1e9"), ("input_shape", ["20000000"]), ("units", "nan")])
def test_sizes_written_as_floats_or_text_are_bounded_like_integers(key, value):
    """Keras turns a size written as a float, or as text int() reads, into an int (Dense(1e9) or
    Dense("1000000000") allocates 10^9 weights): such a size past the bound, or one that is not
    finite, is refused like the integer (text found by a red-team helper)."""
    with pytest.raises(UnsafeModel, match=f"has {key}"):
        boundary.check_description(sequential_dense(key, value))


def test_a_size_written_as_text_is_the_size_keras_builds():
    """Why text sizes are bounded: Keras builds Dense(units="20") with 20 units."""
    import json

    doc = json.loads(tf_keras.Sequential([tf_keras.Input((2,)), tf_keras.layers.Dense(1)]).to_json())
    doc["config"]["layers"][-1]["config"]["units"] = "20"
    assert rebuild(boundary.KerasModelConfig(json.dumps(doc))).layers[-1].units == 20
    doc["config"]["layers"][-1]["config"]["padding"] = "same"   # text that is not a number stays allowed
    boundary.check_description(json.dumps(doc))
