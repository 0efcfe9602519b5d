"""Checks of the resnet50 exercise: block outputs on the course's inputs and on drawn ones,
the model's architecture layer by layer, its parameter counts, what it computes, and
training by the grader (in the model worker, exercises/resnet50/model_recipes.py).

Both signatures of the course grade: the blocks are called through the exercise's kernel
prelude (kernel_prelude.py), which passes `training` to 2021 blocks and sets Keras' learning
phase for 2023 ones, as the 2023 tests did.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

from grader.checks import Case, Check, agrees_with_reference, fixed, small_arrays
from grader.keras_checks import (computes_like_reference, initializer, same_parameter_counts, same_structure,
                                 trains_like_reference)
from grader.boundary import KerasInitializer
from grader.spec import DATA_CACHE
from reference import resnet50 as ref

CONSTANT_1 = KerasInitializer("Constant", {"value": 1})
X_COURSE = np.concatenate([np.ones((1, 4, 4, 3)) * -1, np.ones((1, 4, 4, 3)), np.ones((1, 4, 4, 3)) * 3]
                          ).astype(np.float32)


def _factory(value):
    return initializer(value.class_name, **value.config) if isinstance(value, KerasInitializer) else value


def ref_identity_block(X, f, filters, training=True, initializer=None, batch_norm=ref.BatchNormalization):
    kwargs = {"initializer": _factory(initializer)} if initializer is not None else {}
    return ref.identity_block(X, f, list(filters), training=training, batch_norm=batch_norm, **kwargs).numpy()


def ref_convolutional_block(X, f, filters, s=2, training=True, initializer=None, batch_norm=ref.BatchNormalization):
    kwargs = {"initializer": _factory(initializer)} if initializer is not None else {}
    return ref.convolutional_block(X, f, list(filters), s=s, training=training, batch_norm=batch_norm,
                                   **kwargs).numpy()


def _trusted_layers_2024():
    """exercises/resnet50/trusted_layers_2024.py (the 2024 version's BatchNormalization, trusted)."""
    path = Path(__file__).resolve().parent / "trusted_layers_2024.py"
    spec = importlib.util.spec_from_file_location("convgrade_exercises.resnet50.trusted_layers_2024", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _course_identity(f, filters, training) -> Case:
    return Case((X_COURSE, f, filters), {"initializer": CONSTANT_1, "training": training},
                names=("X", "f", "filters"))


@st.composite
def identity_cases(draw) -> Case:
    c = draw(st.integers(1, 3))
    X = draw(small_arrays((draw(st.integers(1, 2)), draw(st.integers(2, 5)), draw(st.integers(2, 5)), c),
                          low=-3, high=3)).astype(np.float32)
    filters = [draw(st.integers(1, 3)), draw(st.integers(1, 3)), c]
    init = KerasInitializer("RandomUniform", {"minval": -0.5, "maxval": 0.5, "seed": draw(st.integers(0, 9))})
    return Case((X, draw(st.integers(1, 3)), filters), {"initializer": init, "training": draw(st.booleans())},
                names=("X", "f", "filters"))


@st.composite
def convolutional_cases(draw) -> Case:
    X = draw(small_arrays((draw(st.integers(1, 2)), draw(st.integers(2, 6)), draw(st.integers(2, 6)),
                           draw(st.integers(1, 3))), low=-3, high=3)).astype(np.float32)
    filters = [draw(st.integers(1, 3)) for _ in range(3)]
    init = KerasInitializer("GlorotUniform", {"seed": draw(st.integers(0, 9))})
    return Case((X, draw(st.integers(1, 3)), filters),
                {"s": draw(st.integers(1, 3)), "initializer": init, "training": draw(st.booleans())},
                names=("X", "f", "filters"))


@lru_cache(maxsize=2)
def reference_model(batch_norm=ref.BatchNormalization):
    """One reference model per normalisation, built once per process (about 2 s) for structure,
    counts, forward passes and its description: never trained here (the model worker trains a
    model it builds from the description), so never mutated."""
    return ref.ResNet50(input_shape=(64, 64, 3), classes=6, batch_norm=batch_norm)


MODEL_CASE = Case((), {"input_shape": (64, 64, 3), "classes": 6})

PHASE = "__convgrade_with_phase__"   # the kernel-side adapter of kernel_prelude.py
FORWARD_INPUT = np.random.RandomState(0).rand(4, 64, 64, 3).astype(np.float32)

def make_checks(batch_norm=ref.BatchNormalization, scores: str = "reference_scores.json"
                ) -> dict[str, list[Check]]:
    """The checks of every item against the reference built with `batch_norm` (the graded
    version's normalisation layer); the reference's training scores cached in `scores`."""
    identity = partial(ref_identity_block, batch_norm=batch_norm)
    convolutional = partial(ref_convolutional_block, batch_norm=batch_norm)
    model = partial(reference_model, batch_norm)
    return {
        "identity_block": [
            Check("course examples", public=True, run=agrees_with_reference(
                "identity_block", identity,
                fixed(_course_identity(2, [4, 4, 3], False), _course_identity(3, [3, 3, 3], True),
                      _course_identity(2, [3, 3, 3], True)), output="A", through=PHASE)),
            Check("random inputs", run=agrees_with_reference(
                "identity_block", identity, identity_cases(), output="A", through=PHASE)),
        ],
        "convolutional_block": [
            Check("course examples", public=True, run=agrees_with_reference(
                "convolutional_block", convolutional,
                fixed(Case((X_COURSE, 2, [2, 4, 6]), {"training": False}, names=("X", "f", "filters")),
                      Case((X_COURSE, 2, [2, 4, 6]), {"training": True}, names=("X", "f", "filters")),
                      Case((X_COURSE, 2, [2, 4, 6]), {"s": 4, "training": False}, names=("X", "f", "filters"))),
                output="A", through=PHASE)),
            Check("random inputs", run=agrees_with_reference(
                "convolutional_block", convolutional, convolutional_cases(), output="A", through=PHASE)),
        ],
        "ResNet50": [
            Check("architecture", public=True, run=same_structure("ResNet50", model, MODEL_CASE)),
            Check("parameter counts", run=same_parameter_counts("ResNet50", model, MODEL_CASE)),
            # Same weights in both models: the wiring (e.g. which tensor the shortcut adds) must match.
            Check("forward pass", run=computes_like_reference("ResNet50", model, MODEL_CASE, FORWARD_INPUT)),
            # model_recipes.training fits and measures in training mode only (train_and_score).
            Check("training", requires=("architecture",), run=trains_like_reference(
                "ResNet50", model, MODEL_CASE, "training", recipe="training",
                cache=DATA_CACHE / "resnet50" / scores, training_mode_only=True)),
        ],
    }


CHECKS: dict[str, list[Check]] = make_checks()
# The 2024 version (spec.toml [[versions.graded_variant]] "2024"): the same checks against a
# reference normalised with that version's own BatchNormalization (trusted_layers_2024.py).
VERSION_CHECKS: dict[str, dict[str, list[Check]]] = {
    "2024": make_checks(_trusted_layers_2024().BatchNormalization, "reference_scores_2024.json"),
}
