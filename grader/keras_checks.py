"""Check builders for exercises whose graded functions return Keras models.

The model comes back as its JSON architecture (see probe_runtime), is rebuilt here in
safe mode (keras_models.rebuild), and everything is derived from that rebuilt model:
layer-by-layer structure, parameter counts, and training, which the grader runs itself
with fixed seeds, data and budget, against the reference trained the same way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .checks import Case, Context, Failure, Student, call_student, describe_type
from .keras_models import UnsafeModel, keras, rebuild
from .probe import KerasModelConfig


def student_model(student: Student, function: str, case: Case) -> Any:
    """Call `function`, which must return a Keras model; rebuild it here, safely."""
    got = call_student(student, function, case)
    if not isinstance(got, KerasModelConfig):
        raise Failure(f"{function} should return a Keras Model, got {describe_type(got)}")
    try:
        return rebuild(got)
    except UnsafeModel as exc:
        raise Failure(f"{function}: {exc}") from None


def same_structure(function: str, reference: Callable[[], Any], case: Case,
                   summarise: Callable[[Any], list], first_difference: Callable[[list, list], str | None]
                   ) -> Callable[[Student, Context], None]:
    """Layer by layer: class, output shape, parameters and per-class details; first difference named."""
    def run(student: Student, ctx: Context) -> None:
        model = student_model(student, function, case)
        difference = first_difference(summarise(model), summarise(reference()))
        if difference:
            raise Failure(f"{function}: the model differs from the expected architecture at {difference}")
    return run


def parameter_counts(model: Any) -> dict[str, int]:
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"total": trainable + non_trainable, "trainable": trainable, "non-trainable": non_trainable}


def same_parameter_counts(function: str, reference: Callable[[], Any], case: Case
                          ) -> Callable[[Student, Context], None]:
    def run(student: Student, ctx: Context) -> None:
        got, expected = parameter_counts(student_model(student, function, case)), parameter_counts(reference())
        wrong = [f"{k}: expected {expected[k]:,}, got {got[k]:,}" for k in expected if got[k] != expected[k]]
        if wrong:
            raise Failure(f"{function}: parameter counts differ ({'; '.join(wrong)})")
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
    """Train `model` (freshly built) under `budget`; its accuracy on the train subset and test set."""
    import tensorflow as tf

    X_train, Y_train, X_test, Y_test = data
    tf.config.experimental.enable_tensor_float_32_execution(False)  # same numbers on GPU as on CPU
    tf.keras.utils.set_random_seed(budget.seed)
    subset = np.random.RandomState(budget.seed).permutation(len(X_train))[:budget.train_examples]
    compile_model(model)
    model.fit(X_train[subset], Y_train[subset], epochs=budget.epochs, batch_size=budget.batch_size,
              shuffle=True, verbose=0)
    _, train_acc = model.evaluate(X_train[subset], Y_train[subset], verbose=0)
    _, test_acc = model.evaluate(X_test, Y_test, verbose=0)
    return {"train_accuracy": float(train_acc), "test_accuracy": float(test_acc)}


def trains_like_reference(function: str, reference: Callable[[], Any], case: Case, budget: TrainingBudget,
                          load_data: Callable[[Path], tuple[np.ndarray, ...]],
                          compile_model: Callable[[Any], None], cache: Path, metric: str = "test_accuracy",
                          max_parameters: int | None = None) -> Callable[[Student, Context], None]:
    """The grader trains the student's model itself and compares with the reference's score
    under the same budget (the reference's is computed once and cached)."""
    def run(student: Student, ctx: Context) -> None:
        if ctx.data is None:
            raise Failure("no training data was given to the grader")
        model = student_model(student, function, case)
        if max_parameters and model.count_params() > max_parameters:
            raise Failure(f"{function}: the model has {model.count_params():,} parameters; not trained "
                          f"(more than {max_parameters:,})")
        data = load_data(ctx.data)
        expected = _cached_reference_score(cache, budget, ctx.data, reference, data, compile_model)[metric]
        got = train_and_score(model, data, budget, compile_model)[metric]
        if got < expected - budget.margin:
            raise Failure(f"{function}: trained by the grader ({budget.epochs} epochs on {budget.train_examples} "
                          f"examples), {metric.replace('_', ' ')} {got:.3f}; the reference reaches {expected:.3f} "
                          f"under the same budget (allowed margin {budget.margin:g})")
    return run


def _cached_reference_score(cache: Path, budget: TrainingBudget, data_dir: Path, reference: Callable[[], Any],
                            data: tuple[np.ndarray, ...], compile_model: Callable[[Any], None]) -> dict[str, float]:
    import tensorflow as tf

    digest = hashlib.sha256()
    for f in sorted(data_dir.rglob("*")):
        if f.is_file():
            digest.update(f.name.encode() + f.read_bytes())
    key = f"{tf.__version__}|{budget.key()}|{digest.hexdigest()[:16]}"
    scores = json.loads(cache.read_text()) if cache.is_file() else {}
    if key not in scores:
        scores[key] = train_and_score(reference(), data, budget, compile_model)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(scores, indent=1))
        tmp.replace(cache)
    return scores[key]


def initializer(class_name: str, **config: Any):
    """The grader-side twin of probe.KerasInitializer: a seed -> initializer factory."""
    k = keras()
    return lambda seed=None, **_: k.initializers.get({"class_name": class_name, "config": dict(config)})
