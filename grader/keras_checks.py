"""Check builders for exercises whose graded functions return Keras models.

The model comes back as its JSON architecture (see probe_runtime), is rebuilt here in
safe mode (keras_models.rebuild), and everything is derived from that rebuilt model:
layer-by-layer structure, parameter counts, and training, which the grader runs itself
with fixed seeds, data and budget, against the reference trained the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checks import (PROPERTY_SEED, Case, Context, Failure, Student, call_student, describe_type, remembered,
                     run_property, show)
from .keras_models import UnsafeModel, keras, rebuild
from .probe import KerasModelConfig


def call_text(function: str, case: Case) -> str:
    """The call as the student would write it, e.g. ResNet50(input_shape=(64, 64, 3), classes=6)."""
    parts = [repr(a) for a in case.args] + [f"{k}={v!r}" for k, v in case.kwargs.items()]
    return f"{function}({', '.join(parts)})"


def student_architecture(student: Student, function: str, case: Case, through: str | None = None
                         ) -> KerasModelConfig:
    """Call `function`, which must return a Keras model: its JSON architecture.

    Asked once per student and call (checks.remembered): the checks of one item ask for the same
    model several times, and building it in the kernel (e.g. MobileNetV2 with its weights) costs
    seconds. Each check still rebuilds its own model from the description, so a check that changes
    weights or trainability cannot affect the next one.
    """
    def ask() -> KerasModelConfig:
        try:
            got = call_student(student, function, case, through)
        except Failure as exc:
            raise Failure(f"on input {call_text(function, case)}: {exc}") from None
        if not isinstance(got, KerasModelConfig):
            raise Failure(f"{call_text(function, case)} should return a Keras Model, got {describe_type(got)}")
        return got
    return remembered(student, ("architecture", function, call_text(function, case), through), ask)


def student_model(student: Student, function: str, case: Case, through: str | None = None) -> Any:
    """Call `function`, which must return a Keras model; rebuild it here, safely."""
    return rebuilt(student_architecture(student, function, case, through), call_text(function, case))


def rebuilt(config: KerasModelConfig, where: str) -> Any:
    """A fresh model from `config`, in safe mode; a Failure naming `where` if it cannot be."""
    try:
        return rebuild(config)
    except UnsafeModel as exc:
        raise Failure(f"{where}: {exc}") from None


def same_structure(function: str, reference: Callable[[], Any], case: Case,
                   summarise: Callable[[Any], list], first_difference: Callable[[list, list], str | None],
                   through: str | None = None) -> Callable[[Student, Context], None]:
    """Layer by layer: class, output shape, parameters and per-class details; first difference named."""
    def run(student: Student, ctx: Context) -> None:
        model = student_model(student, function, case, through)
        difference = first_difference(summarise(model), summarise(reference()))
        if difference:
            raise Failure(f"on input {call_text(function, case)}: the model differs from the expected "
                          f"architecture at {difference}")
    return run


def parameter_counts(model: Any) -> dict[str, int]:
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"total": trainable + non_trainable, "trainable": trainable, "non-trainable": non_trainable}


def same_parameter_counts(function: str, reference: Callable[[], Any], case: Case, through: str | None = None
                          ) -> Callable[[Student, Context], None]:
    def run(student: Student, ctx: Context) -> None:
        got = parameter_counts(student_model(student, function, case, through))
        expected = parameter_counts(reference())
        wrong = [f"{k}: expected {expected[k]:,}, got {got[k]:,}" for k in expected if got[k] != expected[k]]
        if wrong:
            raise Failure(f"on input {call_text(function, case)}: parameter counts differ ({'; '.join(wrong)})")
    return run


def computes_like_reference(function: str, reference: Callable[[], Any], case: Case, inputs: np.ndarray,
                            rtol: float = 1e-4, atol: float = 1e-5,
                            likely: str = "a layer is applied to the wrong tensor (e.g. the shortcut), though every "
                                          "layer is the right kind") -> Callable[[Student, Context], None]:
    """With the reference's weights copied in, the student's model gives the reference's outputs
    (training=True: batch statistics). Catches wiring that structure and counts cannot see;
    `likely` is the feedback's guess at the cause, which depends on the exercise's model."""
    def run(student: Student, ctx: Context) -> None:
        model, expected_model = student_model(student, function, case), reference()
        try:
            model.set_weights(expected_model.get_weights())
        except ValueError as exc:
            raise Failure(f"on input {call_text(function, case)}: the reference's weights do not fit this model "
                          f"({str(exc)[:200]}); see the architecture check") from None
        got = np.asarray(model(inputs, training=True))
        expected = np.asarray(expected_model(inputs, training=True))
        if got.shape != expected.shape:
            raise Failure(f"on input {call_text(function, case)}: output shape {got.shape}, expected {expected.shape}")
        if not np.allclose(got, expected, rtol=rtol, atol=atol):
            worst = float(np.max(np.abs(got - expected)))
            raise Failure(f"on input {call_text(function, case)}: with the reference's weights, the model computes "
                          f"something else (largest difference {worst:.3g} on {len(inputs)} fixed images): {likely}")
    return run


def model_property(function: str, case: Case, inputs: "st.SearchStrategy[np.ndarray]",
                   prop: Callable[[Any, np.ndarray], str | None], *, through: str | None = None,
                   examples: int | None = None) -> Callable[[Student, Context], None]:
    """A property of what the student's model computes, on inputs hypothesis draws.

    The model is the one rebuilt here (standard Keras layers only, see keras_models), so it
    runs in this process: `prop(model, X)` says what is wrong on X, or None. A failure is
    shrunk to the smallest X, which is shown with the problem. A model that computes differently
    on the same X (checks.run_property) fails with that X.
    """
    from hypothesis import HealthCheck, Phase, given, seed, settings

    def run(student: Student, ctx: Context) -> None:
        model = student_model(student, function, case, through)
        tried: list[np.ndarray] = []  # the X tried last

        @seed(PROPERTY_SEED)
        @settings(max_examples=examples or ctx.max_examples, database=None, deadline=None, print_blob=False,
                  report_multiple_bugs=False, phases=(Phase.explicit, Phase.generate, Phase.shrink),
                  suppress_health_check=list(HealthCheck))
        @given(inputs)
        def holds(X: np.ndarray) -> None:
            tried[:] = [X]
            problem = prop(model, X)
            if problem:
                raise Failure(f"the model of {call_text(function, case)}, on input X of shape {X.shape}:\n"
                              f"  X = {show(X)}\n{problem}")

        run_property(holds, f"the model of {call_text(function, case)}", lambda: f"  X = {show(tried[0])}")
    return run


@dataclass(frozen=True)
class TrainingBudget:
    """What the grader trains for: the same for every student and for the reference."""

    epochs: int
    batch_size: int
    train_examples: int     # a fixed, seeded subset of the training set
    margin: float           # the student's accuracy may be this much below the reference's
    seed: int = 1

    def key(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)


def train_and_score(model: Any, data: tuple[np.ndarray, ...], budget: TrainingBudget,
                    compile_model: Callable[[Any], None]) -> dict[str, float]:
    """Train `model` (freshly built) under `budget`; its accuracy on the train subset and test set.

    Accuracy is measured with BatchNormalization using batch statistics (training=True), in
    batches of `budget.batch_size`: the 2021 course model hard-wires training=True in its
    blocks while the 2023 one does not, and after a short budget the moving statistics are
    far from converged, so inference-mode accuracy would compare the two notebooks unfairly.
    """
    import tensorflow as tf

    X_train, Y_train, X_test, Y_test = data
    tf.config.experimental.enable_tensor_float_32_execution(False)  # same numbers on GPU as on CPU
    tf.keras.utils.set_random_seed(budget.seed)
    subset = np.random.RandomState(budget.seed).permutation(len(X_train))[:budget.train_examples]
    compile_model(model)
    model.fit(X_train[subset], Y_train[subset], epochs=budget.epochs, batch_size=budget.batch_size,
              shuffle=True, verbose=0)
    return {"train_accuracy": _accuracy(model, X_train[subset], Y_train[subset], budget.batch_size),
            "test_accuracy": _accuracy(model, X_test, Y_test, budget.batch_size)}


def _accuracy(model: Any, X: np.ndarray, Y: np.ndarray, batch_size: int) -> float:
    hits = 0
    for start in range(0, len(X), batch_size):
        out = np.asarray(model(X[start:start + batch_size], training=True))
        hits += int(np.sum(predicted_right(out, Y[start:start + batch_size])))
    return hits / len(X)


def predicted_right(out: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Which rows of a model's output `out` predict their label in `Y`, as Keras' "accuracy" metric
    decides: a one-unit output (a sigmoid, labels 0/1) by the side of 0.5 it falls on, a wider one
    (one-hot labels) by its largest entry. The argmax of one unit is always 0, so one rule for
    both would score every binary classifier as guessing "0"."""
    if out.shape[-1] == 1:
        return (out.reshape(-1) > 0.5) == (Y.reshape(-1) > 0.5)
    return out.argmax(axis=1) == Y.argmax(axis=1)


def trains_like_reference(function: str, reference: Callable[[], Any], case: Case, budget_param: str,
                          load_data: Callable[[Path], tuple[np.ndarray, ...]],
                          compile_model: Callable[[Any], None], cache: Path, metric: str = "test_accuracy",
                          precondition: Callable[[Student, Context], None] | None = None
                          ) -> Callable[[Student, Context], None]:
    """The grader trains the student's model itself and compares with the reference's score
    under the same budget (the reference's is computed once and cached). The budget is the
    spec's [params.<budget_param>] (a TrainingBudget's fields). With a `precondition` (e.g.
    the architecture check), a model that fails it is not trained."""
    def run(student: Student, ctx: Context) -> None:
        budget = TrainingBudget(**ctx.params[budget_param])
        if ctx.data is None:
            raise Failure("no training data was given to the grader")
        if precondition is not None:
            try:
                precondition(student, ctx)
            except Failure as exc:
                raise Failure(f"not trained, the model must first pass its other checks: {exc}") from None
        model = student_model(student, function, case)
        data = load_data(ctx.data)
        expected = _cached_reference_score(cache, budget, ctx.data, reference, data, compile_model)[metric]
        got = train_and_score(model, data, budget, compile_model)[metric]
        if got < expected - budget.margin:
            raise Failure(f"on input {call_text(function, case)}: trained by the grader "
                          f"({budget.epochs} epochs on {budget.train_examples} "
                          f"examples), {metric.replace('_', ' ')} {got:.3f}; the reference reaches {expected:.3f} "
                          f"under the same budget (allowed margin {budget.margin:g})")
    return run


def _cached_reference_score(cache: Path, budget: TrainingBudget, data_dir: Path, reference: Callable[[], Any],
                            data: tuple[np.ndarray, ...], compile_model: Callable[[Any], None]) -> dict[str, float]:
    return cached_scores(cache, [budget.key(), data_digest(data_dir), "batch-statistics accuracy"],
                         lambda: train_and_score(reference(), data, budget, compile_model))


def data_digest(*paths: Path) -> str:
    """A short hash of the files under `paths` (names and bytes): what a cached score was computed on."""
    digest = hashlib.sha256()
    for root in paths:
        for f in sorted([root] if root.is_file() else root.rglob("*")):
            if f.is_file():
                digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:16]


def cached_scores(cache: Path, key_parts: Sequence[str], compute: Callable[[], dict[str, float]]) -> dict[str, float]:
    """The reference's training scores, computed once per TensorFlow version and key, kept in `cache`
    (a JSON file written atomically): training the reference for every submission would double the time."""
    import tensorflow as tf

    key = "|".join([tf.__version__, *key_parts])
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in scores:
        scores[key] = compute()
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(scores, indent=1))
        tmp.replace(cache)
    return scores[key]


def initializer(class_name: str, **config: Any):
    """The grader-side twin of probe.KerasInitializer: a seed -> initializer factory."""
    k = keras()
    return lambda seed=None, **_: k.initializers.get({"class_name": class_name, "config": dict(config)})
