"""Keras models cross the boundary as JSON architecture and are rebuilt here in safe mode."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
tf_keras = pytest.importorskip("tf_keras")

from grader import probe  # noqa: E402
from grader.checks import Case, Context, Failure  # noqa: E402
from grader.keras_checks import computes_like_reference, predicted_right, same_parameter_counts  # noqa: E402
from grader.keras_models import UnsafeModel, rebuild  # noqa: E402
from grader.spec import Tolerance  # noqa: E402

CTX = Context(Tolerance(), 5)


def tiny(wired_right: bool = True):
    """Two Dense layers and an Add: right = Add(x, dense2(dense1(x))); wrong adds dense1's output."""
    inp = tf_keras.Input((4,))
    h = tf_keras.layers.Dense(4, kernel_initializer=tf_keras.initializers.GlorotUniform(seed=0))(inp)
    out = tf_keras.layers.Dense(4, kernel_initializer=tf_keras.initializers.GlorotUniform(seed=1))(h)
    return tf_keras.Model(inp, tf_keras.layers.Add()([inp if wired_right else h, out]))


def test_a_returned_model_crosses_as_its_architecture(make_student):
    got = make_student({"build": tiny}).call("build")
    assert isinstance(got, probe.KerasModelConfig)
    model = rebuild(got)
    assert [type(layer).__name__ for layer in model.layers] == ["InputLayer", "Dense", "Dense", "Add"]
    assert model.count_params() == tiny().count_params()


def test_a_lambda_layer_is_refused_on_rebuild():
    inp = tf_keras.Input((3,))
    model = tf_keras.Model(inp, tf_keras.layers.Lambda(lambda x: x * 2)(inp))
    with pytest.raises(UnsafeModel, match="could not be rebuilt safely"):
        rebuild(probe.KerasModelConfig(model.to_json()))


def test_an_unknown_layer_class_is_refused_on_rebuild():
    config = tiny().to_json().replace('"class_name": "Add"', '"class_name": "os.system"')
    with pytest.raises(UnsafeModel):
        rebuild(probe.KerasModelConfig(config))


def test_a_model_description_that_is_not_json_is_a_protocol_error(tmp_path):
    (tmp_path / "out.json").write_text('{"ok": true, "value": {"$keras_model": "o0.json"}}')
    (tmp_path / "o0.json").write_text("not json")
    with pytest.raises(probe.ProbeError, match="not valid JSON"):
        probe.read_result(tmp_path, 1 << 20)


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
    and each check still gets its own freshly rebuilt copy."""
    from grader.keras_checks import student_model

    built = []

    def build(units=4):
        built.append(units)
        return tiny()

    student, other = make_student({"build": build}), make_student({"build": build})
    first, second = student_model(student, "build", Case(())), student_model(student, "build", Case(()))
    assert built == [4] and first is not second
    student_model(student, "build", Case((), {"units": 5}))
    student_model(other, "build", Case(()))
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
    assert isinstance(student_architecture(student, "flaky", Case(())), probe.KerasModelConfig)
    assert len(attempts) == 2


@pytest.mark.parametrize("out, labels, right", [
    # one sigmoid unit, labels 0/1 as a column: the side of 0.5 decides
    ([[0.9], [0.2], [0.6], [0.4]], [[1], [0], [0], [1]], [True, True, False, False]),
    # one-hot labels: the largest entry decides
    ([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]], [[0, 1, 0], [0, 0, 1]], [True, False]),
])
def test_training_accuracy_reads_one_unit_as_binary_and_more_as_classes(out, labels, right):
    assert predicted_right(np.array(out), np.array(labels)).tolist() == right
