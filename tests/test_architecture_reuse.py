"""Checks whose outcome depends only on a model's architecture (its structure, parameter counts,
and outputs with the reference's weights) run once per architecture in a grading process: a later
submission with the same model, up to layer names, passes them without the worker building it.
Failures are never reused (their messages quote the student's model)."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")   # before tf_keras imports TensorFlow
import tf_keras  # noqa: E402

from grader import keras_checks, keras_summary  # noqa: E402
from grader.checks import Case, Context, Failure  # noqa: E402
from grader.model_worker import RemoteModel  # noqa: E402
from grader.spec import Tolerance  # noqa: E402

CASE = Case((), {"units": 3})
INPUTS = np.random.RandomState(0).rand(5, 2).astype(np.float32)


def model(units: int = 3, activation: str = "relu") -> Any:
    return tf_keras.Sequential([tf_keras.Input((2,)), tf_keras.layers.Dense(units, activation=activation)])


REFERENCE = model()
REFERENCE.set_weights([np.arange(6, dtype=np.float32).reshape(2, 3) / 10, np.ones(3, np.float32)])


def renamed(description: str, prefix: str) -> str:
    """The same model with every layer and the model itself named otherwise."""
    doc = json.loads(description)
    doc["config"]["name"] = f"{prefix}_model"
    for layer in doc["config"]["layers"]:
        layer["config"]["name"] = f"{prefix}_{layer['config']['name']}"
    return json.dumps(doc)


class Worker:
    """A model worker that answers from a real Keras model built from the description, and
    counts what it was asked."""

    limits = SimpleNamespace(call_timeout=10)

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.known_passes: dict[str, float] = {}

    def request(self, message: dict[str, Any], timeout: float, what: str) -> dict[str, Any]:
        self.asked.append(message["op"])
        built = tf_keras.models.model_from_json(message["model"])
        if message["op"] == "facts":
            counts = keras_checks.parameter_counts(built)
            summary = json.loads(json.dumps(keras_summary.summary(built)))
            return {"facts": {"class": "Sequential", "name": built.name, "built": True, "trainable": True,
                              "layers": [], "summary": summary, "counts": counts}}
        built.set_weights(message["weights"])
        return {"output": np.asarray(built(message["X"], training=message["training"]))}


CHECKS = {
    "structure": keras_checks.same_structure("model", lambda: REFERENCE, CASE),
    "parameter counts": keras_checks.same_parameter_counts("model", lambda: REFERENCE, CASE),
    "forward": keras_checks.computes_like_reference("model", lambda: REFERENCE, CASE, INPUTS),
}


@pytest.fixture
def grade(monkeypatch):
    """grade(description, kind, worker): run one check on a student whose model is `description`."""
    def run(description: str, kind: str, worker: Worker, **context: Any) -> Context:
        remote = RemoteModel(worker, description, "on input model(units=3)", failure=Failure)
        monkeypatch.setattr(keras_checks, "student_model", lambda *a, **k: remote)
        ctx = Context(Tolerance(1e-5, 1e-6), 1, models=worker, **context)
        CHECKS[kind](object(), ctx)
        return ctx
    return run


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_the_same_architecture_under_other_names_passes_without_being_built(grade, kind: str) -> None:
    worker = Worker()
    first = grade(renamed(REFERENCE.to_json(), "alice"), kind, worker)
    assert worker.asked and first.reused == []
    asked = len(worker.asked)
    second = grade(renamed(REFERENCE.to_json(), "bob"), kind, worker)
    assert len(worker.asked) == asked, "bob's model was built although alice's, the same, passed"
    assert len(second.reused) == 1 and second.reused[0] >= 0   # what alice's check took


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_another_architecture_course_version_or_device_is_checked_again(grade, kind: str) -> None:
    worker = Worker()
    grade(renamed(REFERENCE.to_json(), "alice"), kind, worker)
    for other, context in [(model(activation="linear"), {}), (model(), {"version": "2024"}),
                           (model(), {"device": "gpu"})]:
        asked = len(worker.asked)
        try:
            grade(other.to_json(), kind, worker, **context)
        except Failure:
            pass
        assert len(worker.asked) > asked, (other.to_json()[:80], context)


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_a_failure_is_found_again_for_each_student(grade, kind: str) -> None:
    worker = Worker()
    wrong = model(units=4) if kind != "forward" else model(activation="tanh")
    for student in ("carol", "dave"):
        asked = len(worker.asked)
        with pytest.raises(Failure):
            grade(renamed(wrong.to_json(), student), kind, worker)
        assert len(worker.asked) > asked
    assert worker.known_passes == {}


def test_a_forward_pass_on_other_inputs_is_another_check() -> None:
    worker = Worker()
    ctx = Context(Tolerance(1e-5, 1e-6), 1, models=worker)
    first = RemoteModel(worker, REFERENCE.to_json(), "here", failure=Failure)
    key = keras_checks.pass_key(ctx, first, lambda: REFERENCE, "forward", "model", INPUTS.tobytes())
    other = keras_checks.pass_key(ctx, first, lambda: REFERENCE, "forward", "model", (INPUTS + 1).tobytes())
    renamed_key = keras_checks.pass_key(ctx, RemoteModel(worker, renamed(REFERENCE.to_json(), "x"), "here"),
                                        lambda: REFERENCE, "forward", "model", INPUTS.tobytes())
    assert key == renamed_key and key != other
    assert keras_checks.pass_key(ctx, RemoteModel(worker, "not json", "here"), lambda: REFERENCE, "forward") is None
