"""Strings in a model description that Keras resolves by name (regularizers, constraints,
initializers) are Keras's own names only, and a class_name that is not a string is refused as
such: the allowlist in grader/boundary.py, checked in the grader and again in the model worker.
(Found by a red-team pass: tf-keras looks such strings up among its modules' globals and its
custom objects, so `"kernel_regularizer": "deserialize_keras_object"` reached a function.)"""

from __future__ import annotations

import json

import pytest

from grader.boundary import UnsafeModel, check_description


def dense(**config: object) -> str:
    return json.dumps({"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "i"}},
        {"class_name": "Dense", "config": {"name": "d", "units": 2, **config}}]}})


@pytest.mark.parametrize("key, name", [
    ("kernel_regularizer", "OrthogonalRegularizer"),
    ("bias_regularizer", "deserialize_keras_object"),
    ("kernel_constraint", "RadialConstraint"),
    ("bias_constraint", "keras_export"),
    ("activity_regularizer", "Custom>SGD"),
    ("kernel_initializer", "deserialize_keras_object"),
    ("depthwise_initializer", "get"),
])
def test_a_name_keras_would_look_up_is_refused_unless_it_is_kerass_own(key: str, name: str) -> None:
    with pytest.raises(UnsafeModel, match=f"{key}.*{name}|{name}.*{key}"):
        check_description(dense(**{key: name}))
    with pytest.raises(UnsafeModel):
        check_description(dense(**{key: name}), {"BatchNormalization": "resnets_utils"})


@pytest.mark.parametrize("key, name", [
    ("kernel_regularizer", "l2"), ("bias_regularizer", "l1_l2"), ("kernel_constraint", "max_norm"),
    ("bias_constraint", "non_neg"), ("kernel_initializer", "glorot_uniform"), ("bias_initializer", "zeros"),
    ("kernel_initializer", "HeNormal"), ("kernel_regularizer", None),
])
def test_kerass_own_names_are_accepted(key: str, name: str | None) -> None:
    check_description(dense(**{key: name}))


@pytest.mark.parametrize("class_name", [{"a": 1}, ["Dense"], 3, True])
def test_a_class_name_that_is_not_a_string_is_refused_as_such(class_name: object) -> None:
    doc = json.loads(dense())
    doc["config"]["layers"][1]["config"]["kernel_initializer"] = {"class_name": class_name, "config": {}}
    with pytest.raises(UnsafeModel, match="class_name"):
        check_description(json.dumps(doc))
