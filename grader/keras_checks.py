"""Check builders for exercises whose graded functions return Keras models.

The model comes back from the kernel as its JSON architecture (see probe_runtime). The grader
never builds it: the description is checked against the allowlist here
(keras_models.check_description), then the model worker (model_worker.py, in a sandbox of its
own) builds it and answers what the checks ask as plain data: its structure (ModelFacts), its
outputs, its training scores. The references are built here (trusted code) and compared with
those answers; the grader's training runs in the worker for the student's model and for the
reference alike, with the exercise's recipes (exercises/<name>/model_recipes.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import keras_summary
from .checks import (Case, Context, Failure, GraderFault, Student, call_student, check_property, describe_type,
                     remembered, show)
from .boundary import KerasModelConfig, UnsafeModel, check_description
from .keras_models import keras
from .model_training import TrainingBudget
from .model_worker import RemoteModel

if TYPE_CHECKING:
    from hypothesis import strategies as st

__all__ = ["TrainingBudget", "call_text", "student_architecture", "student_model", "remote_model", "same_structure",
           "pass_key", "passes_once", "parameter_counts", "same_parameter_counts", "computes_like_reference", "model_property",
           "trains_like_reference", "reference_scores", "reference_run", "data_digest", "cached_scores", "cached_run", "architecture_run", "initializer"]


def call_text(function: str, case: Case) -> str:
    """The call as the student would write it, e.g. ResNet50(input_shape=(64, 64, 3), classes=6)."""
    parts = [repr(a) for a in case.args] + [f"{k}={v!r}" for k, v in case.kwargs.items()]
    return f"{function}({', '.join(parts)})"


def student_architecture(student: Student, function: str, case: Case, through: str | None = None
                         ) -> KerasModelConfig:
    """Call `function`, which must return a Keras model: its JSON architecture.

    Asked once per student and call (checks.remembered): the checks of one item ask for the same
    model several times, and building it in the kernel (e.g. MobileNetV2 with its weights) costs
    seconds.
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


def remote_model(ctx: Context, config: KerasModelConfig, where: str) -> RemoteModel:
    """The student's model of `config`, as the model worker sees it. The description is checked
    against the allowlist here first: a refused one never reaches the worker. What the worker
    cannot do with the model (rebuild, call, train in time and memory) fails the check as a
    Failure that starts with `where`."""
    try:
        check_description(config.json, dict(ctx.trusted_layers))
    except UnsafeModel as exc:
        raise Failure(f"{where}: the returned model could not be rebuilt safely: {exc}") from None
    if ctx.models is None:
        raise GraderFault("no model worker was given to this check (Context.models)")
    return RemoteModel(ctx.models, config.json, where, failure=Failure, fault=GraderFault, version=ctx.version)


def student_model(student: Student, ctx: Context, function: str, case: Case, through: str | None = None
                  ) -> RemoteModel:
    """Call `function`, which must return a Keras model: the model, as the worker sees it (its
    facts asked once per student and call; outputs and training asked per check)."""
    config = student_architecture(student, function, case, through)
    return remembered(student, ("model", function, call_text(function, case), through),
                      lambda: remote_model(ctx, config, f"on input {call_text(function, case)}"))


def _built_facts(model: RemoteModel, function: str, case: Case):
    facts = model.facts
    if not facts.built or facts.summary is None or facts.counts is None:
        raise Failure(f"on input {call_text(function, case)}: the model is not built (its input shape is not "
                      "known, so it has no output shapes and no weights)")
    return facts


def pass_key(ctx: Context, model: RemoteModel, reference: Callable[[], Any], *check: Any) -> str | None:
    """Under which key a pass of `check` (its kind, call and inputs) on `model` is remembered in
    the grading process (ModelWorker.known_passes): the model's and the reference's canonical
    architectures (layer names do not count) with the course version, device and TensorFlow
    version. None when the description has no canonical form. Only passes are remembered: a
    failure's message may quote the student's own model, so it is found anew."""
    form = canonical_architecture(model.description)
    if form is None:
        return None
    parts = [form, canonical_architecture(reference().to_json()), ctx.version, ctx.device,
             importlib.metadata.version("tensorflow"), *check]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()


def passes_once(check: Callable[[RemoteModel, Context], None], key: str | None, model: RemoteModel, ctx: Context
                ) -> None:
    """Run `check` on `model` unless a model of the same architecture passed it before in this
    grading process (then it passes at once, and ctx.reused holds the seconds it took then)."""
    known = ctx.models.known_passes if ctx.models is not None else None
    if key is not None and known is not None and key in known:
        ctx.reused.append(known[key])
        return
    started = time.monotonic()
    check(model, ctx)
    if key is not None and known is not None:
        known[key] = round(time.monotonic() - started, 2)


def same_structure(function: str, reference: Callable[[], Any], case: Case, through: str | None = None
                   ) -> Callable[[Student, Context], None]:
    """Layer by layer (the course's summary: class, output shape, parameters and per-class
    details); the first difference named. Passed once per architecture (passes_once)."""
    def compare(model: RemoteModel, ctx: Context) -> None:
        facts = _built_facts(model, function, case)
        difference = keras_summary.first_difference(keras_summary.from_data(facts.summary),
                                                    keras_summary.summary(reference()))
        if difference:
            raise Failure(f"on input {call_text(function, case)}: the model differs from the expected "
                          f"architecture at {difference}")

    def run(student: Student, ctx: Context) -> None:
        model = student_model(student, ctx, function, case, through)
        passes_once(compare, pass_key(ctx, model, reference, "structure", function, call_text(function, case), through),
                    model, ctx)
    return run


def parameter_counts(model: Any) -> dict[str, int]:
    """A model built here (a reference): its total, trainable and non-trainable parameters."""
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"total": trainable + non_trainable, "trainable": trainable, "non-trainable": non_trainable}


def same_parameter_counts(function: str, reference: Callable[[], Any], case: Case, through: str | None = None
                          ) -> Callable[[Student, Context], None]:
    def compare(model: RemoteModel, ctx: Context) -> None:
        got = _built_facts(model, function, case).counts
        expected = parameter_counts(reference())
        wrong = [f"{k}: expected {expected[k]:,}, got {got[k]:,}" for k in expected if got[k] != expected[k]]
        if wrong:
            raise Failure(f"on input {call_text(function, case)}: parameter counts differ ({'; '.join(wrong)})")

    def run(student: Student, ctx: Context) -> None:
        model = student_model(student, ctx, function, case, through)
        passes_once(compare, pass_key(ctx, model, reference, "parameter counts", function, call_text(function, case), through),
                    model, ctx)
    return run


def computes_like_reference(function: str, reference: Callable[[], Any], case: Case, inputs: np.ndarray,
                            rtol: float = 1e-4, atol: float = 1e-5,
                            likely: str = "a layer is applied to the wrong tensor (e.g. the shortcut), though every "
                                          "layer is the right kind") -> Callable[[Student, Context], None]:
    """With the reference's weights copied in, the student's model gives the reference's outputs
    (training=True: batch statistics). Catches wiring that structure and counts cannot see;
    `likely` is the feedback's guess at the cause, which depends on the exercise's model. Passed
    once per architecture (passes_once: the same wiring computes the same with the same weights)."""
    inputs_digest = hashlib.sha256(np.ascontiguousarray(inputs).tobytes() + repr((inputs.shape, inputs.dtype)).encode()
                                   ).hexdigest()

    def compare(model: RemoteModel, ctx: Context) -> None:
        expected_model = reference()
        got = model.forward(expected_model.get_weights(), inputs, training=True)
        expected = np.asarray(expected_model(inputs, training=True))
        if got.shape != expected.shape:
            raise Failure(f"on input {call_text(function, case)}: output shape {got.shape}, expected {expected.shape}")
        if not np.allclose(got, expected, rtol=rtol, atol=atol):
            worst = float(np.max(np.abs(got - expected)))
            raise Failure(f"on input {call_text(function, case)}: with the reference's weights, the model computes "
                          f"something else (largest difference {worst:.3g} on {len(inputs)} fixed images): {likely}")

    def run(student: Student, ctx: Context) -> None:
        model = student_model(student, ctx, function, case)
        passes_once(compare, pass_key(ctx, model, reference, "forward", function, call_text(function, case), inputs_digest,
                                      rtol, atol), model, ctx)
    return run


def model_property(function: str, case: Case, inputs: "st.SearchStrategy[np.ndarray]",
                   prop: Callable[[RemoteModel, np.ndarray], str | None], *, through: str | None = None,
                   examples: int | None = None) -> Callable[[Student, Context], None]:
    """A property of what the student's model computes, on inputs hypothesis draws.

    `prop(model, X)` says what is wrong on X, or None; it asks the worker for the model's
    outputs (RemoteModel.outputs). A failure is shrunk to the smallest X, which is shown with the
    problem. A model that computes differently on the same X fails with that X (checks.check_property).
    """
    def run(student: Student, ctx: Context) -> None:
        model = student_model(student, ctx, function, case, through)

        def holds(X: np.ndarray) -> None:
            problem = prop(model, X)
            if problem:
                raise Failure(f"the model of {call_text(function, case)}, on input X of shape {X.shape}:\n"
                              f"  X = {show(X)}\n{problem}")

        check_property(inputs, holds, examples=examples or ctx.max_examples,
                       what=f"the model of {call_text(function, case)}", show_input=lambda X: f"  X = {show(X)}")
    return run


def reference_scores(ctx: Context, cache: Path, key_parts: Sequence[str], reference: Any, recipe: str,
                     params: Mapping[str, Any], seed: int) -> dict[str, float]:
    """The reference model's (built here) training scores under `recipe`, trained by the worker
    exactly as a student's model is (from its description, under the same seed); cached."""
    return reference_run(ctx, cache, key_parts, reference, recipe, params, seed)[0]


def reference_run(ctx: Context, cache: Path, key_parts: Sequence[str], reference: Any, recipe: str,
                  params: Mapping[str, Any], seed: int) -> tuple[dict[str, float], bool]:
    """reference_scores' (scores, whether they were known before this call: False when this
    call trained the reference). Keyed by `key_parts` (budget, data) with the recipe, the course
    version, the reference's canonical architecture and the device: two references sharing a
    cache file and a budget (conv_application's two models) never read each other's score."""
    if ctx.models is None:
        raise GraderFault("no model worker was given to this check (Context.models)")
    description = reference.to_json()
    form = canonical_architecture(description) or description
    return cached_run(cache, [*key_parts, f"recipe {recipe}", f"version {ctx.version}",
                              f"reference {hashlib.sha256(form.encode()).hexdigest()[:32]}", f"device {ctx.device}",
                              f"code {ctx.models.code}"],
                      lambda: RemoteModel(ctx.models, description, "training the reference", fault=GraderFault,
                                          version=ctx.version).train(recipe, params, seed))


def architecture_run(ctx: Context, cache: Path, key_parts: Sequence[str], model: RemoteModel, recipe: str,
                     params: Mapping[str, Any], seed: int, training_mode_only: bool = False) -> dict[str, float]:
    """`model` trained by the worker under `recipe`, `params` and `seed`: once per canonical
    architecture (layer names aside; see canonical_architecture for `training_mode_only`) for the
    same key_parts (budget, data), recipe, course version and device, across submissions and runs
    (then ctx.reused holds the seconds the stored run took). A description without a canonical
    form is trained every time. The key holds the worker's code (ModelWorker.code): recipes and
    grader included."""
    form = canonical_architecture(model.description, training_mode_only)
    if form is None:
        return model.train(recipe, params, seed)
    architecture = hashlib.sha256(form.encode()).hexdigest()[:32]
    scores, known = cached_run(cache, [*key_parts, recipe, ctx.version, f"student architecture {architecture}",
                                       f"device {ctx.device}", f"code {ctx.models.code}"],
                               lambda: model.train(recipe, params, seed))
    if known:
        ctx.reused.append(scores.get("seconds", 0.0))
    return scores


def trains_like_reference(function: str, reference: Callable[[], Any], case: Case, budget_param: str,
                          recipe: str, cache: Path, metric: str = "test_accuracy",
                          training_mode_only: bool = False) -> Callable[[Student, Context], None]:
    """The grader trains the student's model (in the model worker, with the exercise's `recipe`)
    and compares with the reference's score under the same budget (the reference's is computed
    once and cached). The budget is the spec's [params.<budget_param>] (a TrainingBudget's
    fields). A model that must first pass other checks (e.g. its architecture) declares them on
    its Check (`requires=`): it is not trained otherwise.

    `training_mode_only`: the recipe runs the model with training=True and never otherwise (as
    model_training.train_and_score does, fit and accuracy alike). Then a BatchNormalization
    called with training=True is the same computation as one left to inherit it, and models that
    differ only there share one training (canonical_architecture says where that holds)."""
    def run(student: Student, ctx: Context) -> None:
        params = dict(ctx.params[budget_param])
        budget = TrainingBudget(**params)
        if ctx.data is None:
            raise Failure("no training data was given to the grader")
        model = student_model(student, ctx, function, case)
        trusted = reference()
        scores_of_reference, reference_known = reference_run(
            ctx, cache, [budget.key(), data_digest(ctx.data), "batch-statistics accuracy"], trusted, recipe, params,
            budget.seed)
        expected = scores_of_reference[metric]
        form = canonical_architecture(model.description, training_mode_only)
        if form is not None and form == canonical_architecture(trusted.to_json(), training_mode_only):
            # The worker trains both from their descriptions under the same seed and budget: the
            # same architecture (up to layer names) gives the reference's own run, already known.
            got = expected
            if reference_known:   # (not when this very check trained it)
                ctx.reused.append(scores_of_reference.get("seconds", 0.0))
        else:  # a class shares architectures (one mistake, made by many): each is trained once
            got = architecture_run(ctx, cache, [budget.key(), data_digest(ctx.data)], model, recipe, params,
                                   budget.seed, training_mode_only)[metric]
        if got < expected - budget.margin:
            raise Failure(f"on input {call_text(function, case)}: trained by the grader "
                          f"({budget.epochs} epochs on {budget.train_examples} "
                          f"examples), {metric.replace('_', ' ')} {got:.3f}; the reference reaches {expected:.3f} "
                          f"under the same budget (allowed margin {budget.margin:g})")
    return run


# The layer and model names TensorFlow accepts as name scopes ("" too: Keras names it). Any other
# name fails the build (and Keras reads a reference to "_CONSTANT_VALUE" as a constant).
_BUILDABLE_NAME = re.compile(r"(?:[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*)?")


# Layer classes whose calls may drop a stated training=True under training_mode_only: Keras's
# BatchNormalization and the course's own (the only ones a description may name: the model
# worker's allowlist). Neither draws random numbers, nor keeps state that its call at rebuild
# time changes (tests/test_model_training.py trains both ways and compares the weights).
TRAINING_NEUTRAL = frozenset({"BatchNormalization"})


def canonical_architecture(description: str, training_mode_only: bool = False) -> str | None:
    """A model description with the names of its layers and models replaced by their order of
    appearance (names are labels: they change neither the weights a seeded build draws nor the
    computation), as canonical JSON; None if it is not a JSON object. Two descriptions with the
    same canonical form build, under one seed, the same model.

    Only names are replaced, where they stand: a model config's "name", a layer entry's "name"
    and its config's "name", and the layer references of "inbound_nodes", "input_layers" and
    "output_layers". Any other string stays as written, even one spelled like a name: a layer
    named "relu" with a relu activation and one named "tanh" with a tanh activation are two
    architectures, not one. A description with a name that is not a string or that TensorFlow
    refuses as a scope (_BUILDABLE_NAME), a reference to a layer it does not have, or one whose
    node or tensor index is not an integer (Keras reads 0.0 as 0; the name it holds would stay as
    written), has no canonical form: nothing of another model's may stand for it.

    `training_mode_only`: for a model that is only ever run with training=True (the caller's
    promise, e.g. a training recipe that fits and measures in training mode). If every call in the
    description that names `training` passes exactly true, the argument is dropped from the calls
    of BatchNormalization layers (TRAINING_NEUTRAL): such a layer inherits training=True from the
    call of its model, so stating it changes nothing (the 2021 course ResNet50 passes
    training=True to each BatchNormalization, the 2023 one leaves it to the call: one training
    serves both). Only there: when the worker rebuilds a model, each layer is called once with
    what its call states, else in inference mode, and a seeded Dropout called in training mode
    then advances its seed, so it trains differently afterwards (red-team finding; a nested model
    passes its mode to such layers). Any other value anywhere (false, null, 1) keeps every
    argument as written."""
    try:
        doc = json.loads(description)
    except (TypeError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    names: dict[str, str] = {}

    class Irregular(Exception):
        pass

    def token(name: Any) -> str:
        if not (isinstance(name, str) and _BUILDABLE_NAME.fullmatch(name)):
            raise Irregular
        return names.setdefault(name, f"\x00layer{len(names)}")

    stated_training: list[Any] = []   # every call's `training` argument (training_mode_only)

    def reference(node: Any, neutral: bool = False) -> Any:
        """A layer reference ([layer name, node index, tensor index, kwargs?]) or lists of them;
        `neutral`: they are the calls of a TRAINING_NEUTRAL layer."""
        if isinstance(node, list):
            if len(node) in (3, 4) and isinstance(node[0], str):   # what Keras reads as a reference
                if node[0] not in names or not all(type(i) is int for i in node[1:3]):
                    raise Irregular
                out = [names[node[0]], *(reference(v) for v in node[1:])]
                if training_mode_only and neutral and len(out) == 4 and isinstance(out[3], dict):
                    out[3] = {k: v for k, v in out[3].items() if k != "training"}
                return out
            return [reference(v, neutral) for v in node]
        if isinstance(node, dict):
            if "training" in node:   # a call's arguments, in any shape: every value counts
                stated_training.append(node["training"])
            return {k: reference(v) for k, v in node.items()}
        return node

    def layer_entry(entry: Any) -> Any:
        if not isinstance(entry, dict):
            return entry
        out = dict(entry)
        if "name" in out:
            out["name"] = token(out["name"])
        if isinstance(out.get("config"), dict):
            out["config"] = model_config(out["config"])
        return out

    def model_config(config: dict[str, Any]) -> dict[str, Any]:
        """A model's (or a layer's) config: its name, its layers, then the references to them."""
        out = dict(config)
        if "name" in out:
            out["name"] = token(out["name"])
        if isinstance(out.get("layers"), list):
            out["layers"] = [layer_entry(e) for e in out["layers"]]
            for i, entry in enumerate(out["layers"]):
                if isinstance(entry, dict) and "inbound_nodes" in entry:
                    neutral = entry.get("class_name") in TRAINING_NEUTRAL
                    out["layers"][i] = {**entry, "inbound_nodes": reference(entry["inbound_nodes"], neutral)}
            for key in ("input_layers", "output_layers"):
                if key in out:
                    out[key] = reference(out[key])
        return out

    canonical = dict(doc)
    try:
        if isinstance(doc.get("config"), dict):
            canonical["config"] = model_config(doc["config"])
    except (Irregular, RecursionError):
        return None
    if training_mode_only and any(value is not True for value in stated_training):
        return canonical_architecture(description)
    return json.dumps(canonical, sort_keys=True)


def data_digest(*paths: Path) -> str:
    """A short hash of the files under `paths` (names and bytes): what a cached score was computed on."""
    digest = hashlib.sha256()
    for root in paths:
        for f in sorted([root] if root.is_file() else root.rglob("*")):
            if f.is_file():
                digest.update(f.name.encode() + f.read_bytes())
    return digest.hexdigest()[:16]


def cached_scores(cache: Path, key_parts: Sequence[str], compute: Callable[[], dict[str, float]]) -> dict[str, float]:
    """Training scores (the reference's, or those of a student architecture), computed once per
    TensorFlow version and key, kept in `cache` (a JSON file): training the reference for every
    submission would double the time. Graders sharing the cache (a batch's jobs) never compute one
    key twice: the second waits for the first's scores."""
    return cached_run(cache, key_parts, compute)[0]


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """An exclusive flock on `lock` (made if missing) for the block: across processes and threads."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _stored(cache: Path) -> dict[str, Any]:
    """The cache's entries; none when it is missing or unreadable (e.g. cut short by a crash:
    what it held is computed again, and the next write replaces it whole)."""
    try:
        stored = json.loads(cache.read_text()) if cache.is_file() else {}
    except (OSError, ValueError, RecursionError):
        return {}
    return stored if isinstance(stored, dict) else {}


def cached_run(cache: Path, key_parts: Sequence[str], compute: Callable[[], dict[str, float]]
            ) -> tuple[dict[str, float], bool]:
    """cached_scores' (scores, whether they were known before this call: computed by another
    grader, maybe while this one waited); the scores hold the seconds their computation took
    ("seconds"), so a reuse can say what it saved. One lock per key (held while computing) and
    one for the file (held while adding a key to it): no key is computed twice or lost."""
    key = "|".join([importlib.metadata.version("tensorflow"), *key_parts])
    if key in (known := _stored(cache)):
        return known[key], True
    locks = cache.parent / ".locks"
    with _exclusive(locks / f"{cache.name}.{hashlib.sha256(key.encode()).hexdigest()[:24]}"):
        if key in (known := _stored(cache)):
            return known[key], True
        started = time.monotonic()
        result = {**compute(), "seconds": round(time.monotonic() - started, 2)}
        with _exclusive(locks / cache.name):
            scores = _stored(cache)
            scores[key] = result
            tmp = cache.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(scores, indent=1))
            tmp.replace(cache)
    return result, False


def initializer(class_name: str, **config: Any):
    """The grader-side twin of probe.KerasInitializer: a seed -> initializer factory."""
    k = keras()
    return lambda seed=None, **_: k.initializers.get({"class_name": class_name, "config": dict(config)})
