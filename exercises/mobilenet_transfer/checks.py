"""Checks of the mobilenet_transfer exercise: the augmenter's layers and behaviour, the alpaca
model's architecture, counts, frozen base, inference-mode base and logit output, the fine-tuning
cell's choices, and training by the grader (head, then fine-tuning) against the reference.

Everything the kernel gives back is plain data: models as their JSON architecture (built by
the model worker, grader/model_worker.py, whose answers the checks read; the grader's training
is in model_recipes.py), the fine-tuning cell's loss and optimizer as class names and configs (see
kernel_prelude.py). alpaca_model is called with a correct augmenter of the grader's, so a wrong
data_augmenter costs its own point only.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import strategies as st

from grader.checks import (Case, Check, Context, Failure, GraderFault, Student, call_student, describe_type,
                           remembered, small_arrays)
from grader.keras_checks import (architecture_run, call_text, data_digest, model_property,
                                 reference_scores, remote_model,
                                 same_parameter_counts, same_structure, student_architecture, student_model)
from grader.model_worker import LayerFacts, ModelFacts, RemoteModel
from grader.boundary import KerasModelConfig
from grader.spec import DATA_CACHE
from reference import mobilenet_transfer as ref

ALPACA = "__convgrade_alpaca_model__"      # kernel_prelude.py: alpaca_model with a correct augmenter
FINGERPRINT = "__convgrade_base_fingerprint__"  # kernel_prelude.py: what the weights of its base sum to
FINE_TUNING = "__convgrade_fine_tuning__"  # kernel_prelude.py: the fine-tuning cell's globals
AUGMENTER_CASE = Case(())
ALPACA_CASE = Case((ref.IMG_SIZE,), names=("image_shape",))
ROTATION = 0.2


@lru_cache(maxsize=1)
def reference_model() -> Any:
    """The reference's alpaca model (random base weights: same architecture and counts)."""
    return ref.alpaca_model()


# -- data_augmenter -------------------------------------------------------------------------------
def _augmenter_layers(facts: ModelFacts) -> list[LayerFacts]:
    return [layer for layer in facts.layers if layer.class_name != "InputLayer"]


def _show_layer(layer: LayerFacts) -> str:
    name = layer.class_name
    config = layer.config
    if name == "RandomFlip":
        return f"RandomFlip({config.get('mode')!r})"
    if name == "RandomRotation":
        return f"RandomRotation({config.get('factor')!r})"
    return f"{name}(...)"


def _rotation_range(factor: Any) -> tuple[float, float] | None:
    if isinstance(factor, (int, float)):
        return (-abs(factor), abs(factor))
    if isinstance(factor, (list, tuple)) and len(factor) == 2:
        return (float(factor[0]), float(factor[1]))
    return None


def augmenter_layers(student: Student, ctx: Context) -> None:
    """Exactly RandomFlip('horizontal') then RandomRotation(0.2), as the course's test asks."""
    facts = student_model(student, ctx, "data_augmenter", AUGMENTER_CASE).facts
    if facts.class_name != "Sequential":
        raise Failure(f"on input data_augmenter(): it should return a tf.keras.Sequential, got a {facts.class_name}")
    layers = _augmenter_layers(facts)
    shown = "[" + ", ".join(_show_layer(layer) for layer in layers) + "]"
    expected = f"[RandomFlip('horizontal'), RandomRotation({ROTATION})]"
    problems = []
    if len(layers) != 2:
        problems.append(f"it has {len(layers)} layers, expected 2")
    if not layers or layers[0].class_name != "RandomFlip":
        problems.append("the first layer must be RandomFlip")
    elif layers[0].config.get("mode") != "horizontal":
        problems.append(f"the flip must be horizontal (mode is {layers[0].config.get('mode')!r}): "
                        "an alpaca upside down is not a photo the model will see")
    if len(layers) < 2 or layers[1].class_name != "RandomRotation":
        problems.append("the second layer must be RandomRotation")
    elif _rotation_range(layers[1].config.get("factor")) != (-ROTATION, ROTATION):
        problems.append(f"the rotation factor must be {ROTATION} (got {layers[1].config.get('factor')!r})")
    if problems:
        raise Failure(f"on input data_augmenter(): it gives {shown}, expected {expected}: " + "; ".join(problems))


@st.composite
def image_batches(draw) -> np.ndarray:
    shape = (draw(st.integers(1, 2)), draw(st.integers(2, 12)), draw(st.integers(2, 12)), 3)
    return draw(small_arrays(shape, low=0, high=255)).astype(np.float32)


def _augmenter_behaviour(model: RemoteModel, X: np.ndarray) -> str | None:
    """Shape kept in both modes; identity in inference mode (augmentation is for training only)."""
    outputs = {training: model.outputs(X, training=training, seed=0)[0] for training in (False, True)}
    for training, out in outputs.items():
        if out.shape != X.shape:
            return f"with training={training} the output has shape {out.shape}, expected the input's {X.shape}"
    out = outputs[False]
    if not np.allclose(out, X, atol=1e-4):
        worst = float(np.max(np.abs(out - X)))
        return (f"with training=False the images changed (by up to {worst:.3g}): augmentation must only "
                "apply while training, so that validation and predictions see the real images")
    return None


ASYMMETRIC = np.arange(8 * 8 * 3, dtype=np.float32).reshape(1, 8, 8, 3)


def augmenter_is_random(student: Student, ctx: Context) -> None:
    """In training mode the augmenter changes an asymmetric image on some of 10 calls."""
    model = student_model(student, ctx, "data_augmenter", AUGMENTER_CASE)
    outputs = model.outputs(ASYMMETRIC, training=True, seed=0, repeat=10)
    if all(o.shape == ASYMMETRIC.shape and np.allclose(o, ASYMMETRIC) for o in outputs):
        raise Failure("on input data_augmenter(): its model, called 10 times with training=True on an asymmetric "
                      "8x8 image, never changed it: it should flip and rotate images at random")


# -- alpaca_model ---------------------------------------------------------------------------------
def _base(facts: ModelFacts, where: str) -> ModelFacts:
    """The MobileNetV2 base inside an alpaca model: its one nested model that is not a Sequential."""
    nested = [layer.model for layer in facts.layers if layer.model is not None and layer.class_name != "Sequential"]
    if len(nested) != 1:
        raise Failure(f"{where}: expected one nested base model, found {len(nested)} (the MobileNetV2 base, "
                      "called as one layer)")
    return nested[0]


def frozen_base(student: Student, ctx: Context) -> None:
    facts = student_model(student, ctx, "alpaca_model", ALPACA_CASE, ALPACA).facts
    where = f"on input {call_text('alpaca_model', ALPACA_CASE)}"
    base = _base(facts, where)
    trainable = [layer.name for layer in base.layers if layer.trainable and layer.weights]
    if trainable and base.trainable:
        raise Failure(f"{where}: the MobileNetV2 base must be frozen (base_model.trainable = False), so that "
                      f"only the new head learns at first; {len(trainable)} of its layers with weights are "
                      f"trainable ({', '.join(trainable[:4])}{', ...' if len(trainable) > 4 else ''})")


def _base_call_kwargs(config: KerasModelConfig) -> list[dict[str, Any]]:
    """The keyword arguments of every call of the nested base model, from the JSON architecture."""
    doc = json.loads(config.json)
    layers = doc.get("config", {}).get("layers", [])
    bases = [entry for entry in layers if entry.get("class_name") in ("Functional", "Model")]
    if len(bases) != 1:
        return []
    calls = []
    for node in bases[0].get("inbound_nodes", []):
        for inbound in node if isinstance(node, list) else []:
            if isinstance(inbound, list) and len(inbound) == 4 and isinstance(inbound[3], dict):
                calls.append(inbound[3])
    return calls


def base_in_inference_mode(student: Student, ctx: Context) -> None:
    """base_model(x, training=False): BatchNormalization keeps the pretrained statistics."""
    config = student_architecture(student, "alpaca_model", ALPACA_CASE, ALPACA)
    student_model(student, ctx, "alpaca_model", ALPACA_CASE, ALPACA)  # a description off the allowlist is refused
    where = f"on input {call_text('alpaca_model', ALPACA_CASE)}"
    calls = _base_call_kwargs(config)
    if not calls:
        raise Failure(f"{where}: the model should call a MobileNetV2 base model as one layer "
                      "(x = base_model(x, training=False))")
    wrong = [c.get("training", "not given") for c in calls if c.get("training") is not False]
    if wrong:
        raise Failure(f"{where}: the base is called with training={wrong[0]}; call it with training=False, so "
                      "that its BatchNormalization layers keep the statistics learned in pretraining (also when "
                      "the base is unfrozen for fine-tuning)")


def weights_fingerprint(weights: list[np.ndarray]) -> np.ndarray:
    """Per weight array, its sum and sum of squares in float64 (as kernel_prelude.py computes them)."""
    arrays = [np.asarray(w, dtype=np.float64) for w in weights]
    return np.array([[w.sum(), (w * w).sum()] for w in arrays], dtype=np.float64).reshape(-1, 2)


@lru_cache(maxsize=2)
def _pretrained_fingerprint(path: str, size: int, mtime: float) -> np.ndarray:
    """The fingerprint of MobileNetV2's base as the weights file the grader placed makes it (built
    here from the file: keras.applications' own code, not a student's description)."""
    import tf_keras

    base = tf_keras.applications.MobileNetV2(input_shape=(*ref.IMG_SIZE, 3), include_top=False, weights=path)
    return weights_fingerprint(base.get_weights())


def pretrained_base(student: Student, ctx: Context) -> None:
    """The base carries the pretrained weights (weights='imagenet', which the grader's kernel finds
    offline, or the path of the course's file), not weights=None: the grader's own training loads
    them itself, so only this check sees a base that would transfer nothing."""
    where = f"on input {call_text('alpaca_model', ALPACA_CASE)}"
    student_model(student, ctx, "alpaca_model", ALPACA_CASE, ALPACA)  # a description off the allowlist is refused
    got = call_student(student, "alpaca_model", ALPACA_CASE, FINGERPRINT)
    if "weights" not in ctx.files:
        raise GraderFault("no pretrained weights file was given to the grader")
    weights = ctx.files["weights"]
    info = weights.stat()
    expected = _pretrained_fingerprint(str(weights), info.st_size, info.st_mtime)
    if not isinstance(got, np.ndarray) or got.shape != expected.shape:
        raise Failure(f"{where}: the model's MobileNetV2 base could not be compared with the pretrained one "
                      "(see the architecture check)")
    differ = int(np.sum(~np.all(np.isclose(got, expected, rtol=1e-5, atol=1e-6), axis=1)))
    if differ:
        raise Failure(f"{where}: the MobileNetV2 base does not carry the pretrained weights ({differ} of its "
                      f"{len(expected)} weight arrays differ from the course's weights file): build it with "
                      "weights='imagenet' (or the path of the course's weights file), not weights=None; a base "
                      "that was never pretrained has nothing to transfer")


def logits_output(student: Student, ctx: Context) -> None:
    facts = student_model(student, ctx, "alpaca_model", ALPACA_CASE, ALPACA).facts
    where = f"on input {call_text('alpaca_model', ALPACA_CASE)}"
    if not facts.layers:
        raise Failure(f"{where}: the model has no layers")
    last = facts.layers[-1]
    shape = tuple(last.output_shape) if isinstance(last.output_shape, list) else last.output_shape
    if last.class_name != "Dense" or last.config.get("units") != 1:
        raise Failure(f"{where}: the last layer should be Dense(1) (one logit), got {last.class_name} "
                      f"with output shape {shape}")
    if last.config.get("activation") != "linear":
        raise Failure(f"{where}: the last layer's activation is {last.config.get('activation')!r}; the output must be "
                      "a logit (Dense(1), no activation), because the loss is "
                      "BinaryCrossentropy(from_logits=True)")


# -- fine_tuning ----------------------------------------------------------------------------------
def fine_tuning_state(student: Student) -> dict[str, Any]:
    """The fine-tuning cell's results (model2, fine_tune_at, loss, optimizer, metrics) as plain data,
    asked for once per student."""
    def ask() -> dict[str, Any]:
        got = call_student(student, FINE_TUNING, Case(()))
        if not isinstance(got, dict):
            raise Failure(f"the fine-tuning cell's results could not be read (got {describe_type(got)})")
        return got
    return remembered(student, FINE_TUNING, ask)


def _model2(student: Student, ctx: Context) -> RemoteModel:
    state = fine_tuning_state(student)
    if not isinstance(state.get("model"), KerasModelConfig):
        raise Failure(f"model2 should be a Keras model after the fine-tuning cell, got {describe_type(state.get('model'))}")
    return remembered(student, ("model2",), lambda: remote_model(ctx, state["model"], "model2"))


def _ranges(indices: list[int]) -> str:
    """[110, 111, 112, 130] -> '110-112, 130'."""
    parts, start = [], None
    for i, k in enumerate(indices):
        if start is None:
            start = k
        if i + 1 == len(indices) or indices[i + 1] != k + 1:
            parts.append(f"{start}-{k}" if k != start else f"{k}")
            start = None
    return ", ".join(parts)


def frozen_below_fine_tune_at(student: Student, ctx: Context) -> None:
    """Every layer of the base before 120 frozen (as the course's loop leaves them), those with
    weights from 120 on trainable."""
    base = _base(_model2(student, ctx).facts, "model2")
    at = ref.FINE_TUNE_AT
    layers = base.layers
    if len(layers) <= at:
        raise Failure(f"model2's base has {len(layers)} layers; MobileNetV2's has {len(ref.base_of(reference_model()).layers)}")
    thawed = [i for i, layer in enumerate(layers[:at]) if layer.trainable and layer.class_name != "InputLayer"]
    frozen = [i for i, layer in enumerate(layers) if i >= at and layer.weights
              and not (layer.trainable and base.trainable)]
    declared = fine_tuning_state(student).get("fine_tune_at")
    note = f" (the notebook's fine_tune_at is {declared})" if declared not in (None, at) else ""
    if thawed:
        raise Failure(f"after the fine-tuning cell, layers {_ranges(thawed)} of model2's base ({layers[thawed[0]].name}, ...) "
                      f"are trainable; every layer before layer {at} ({layers[at].name}) must stay frozen{note}")
    if frozen:
        raise Failure(f"after the fine-tuning cell, layers {_ranges(frozen)} of model2's base ({layers[frozen[0]].name}, "
                      f"...) are frozen; the base is fine-tuned from layer {at} on (base_model.trainable = True, "
                      f"then freeze only base_model.layers[:fine_tune_at]){note}")


def _described(state: dict[str, Any], key: str) -> dict[str, Any]:
    value = state.get(key)
    return value if isinstance(value, dict) else {}


def _what(d: dict[str, Any]) -> str:
    if "class" in d:
        return f"a {d['class']}"
    return repr(d.get("value"))


def fine_tuning_loss(student: Student, ctx: Context) -> None:
    loss = _described(fine_tuning_state(student), "loss")
    if loss.get("class") != "BinaryCrossentropy":
        raise Failure(f"loss_function should be tf.keras.losses.BinaryCrossentropy(from_logits=True), got {_what(loss)}")
    if loss.get("config", {}).get("from_logits") is not True:
        raise Failure("loss_function is BinaryCrossentropy without from_logits=True: the model outputs a logit "
                      "(Dense(1), no sigmoid), so the loss must apply the sigmoid itself")


def fine_tuning_optimizer(student: Student, ctx: Context) -> None:
    optimizer = _described(fine_tuning_state(student), "optimizer")
    expected = 0.1 * ref.BASE_LEARNING_RATE
    if optimizer.get("class") != "Adam":
        raise Failure(f"optimizer should be tf.keras.optimizers.Adam, got {_what(optimizer)}")
    rate = optimizer.get("config", {}).get("learning_rate")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool):
        raise Failure(f"the optimizer's learning rate should be the constant {expected:g}, got {rate!r}")
    if not np.isclose(rate, expected, rtol=1e-5, atol=0):
        raise Failure(f"the optimizer's learning rate is {rate:.6g}; fine-tuning uses a rate ten times smaller than "
                      f"the first training's: 0.1 * base_learning_rate = {expected:g}")


def fine_tuning_metrics(student: Student, ctx: Context) -> None:
    metrics = fine_tuning_state(student).get("metrics")
    if not isinstance(metrics, list) or not metrics or metrics[0] != "accuracy":
        raise Failure(f"metrics should be ['accuracy'], got {metrics!r}")


# -- training -------------------------------------------------------------------------------------
def _reference_fine_tuned() -> Any:
    model = ref.alpaca_model()
    ref.unfreeze_top(model)
    return model


def trains_like_reference(student: Student, ctx: Context) -> None:
    params = dict(ctx.params["training"])
    if ctx.data is None or "weights" not in ctx.files:
        raise Failure("no training data or base weights were given to the grader")
    rate = float(_described(fine_tuning_state(student), "optimizer")["config"]["learning_rate"])
    key = [json.dumps(params, sort_keys=True), data_digest(ctx.data, ctx.files["weights"]), "logit accuracy, seeded head"]
    # Both models are built by the worker from their descriptions under the same seed (the new
    # head starts from the same weights), then trained by the same recipe.
    expected = reference_scores(ctx, DATA_CACHE / "mobilenet_transfer" / "reference_scores.json", key,
                                _reference_fine_tuned(), "fine_tuning",
                                {**params, "fine_rate": 0.1 * ref.BASE_LEARNING_RATE}, params["seed"]
                                )["validation_accuracy"]
    own = {**params, "fine_rate": rate}
    # The worker trains from the description alone: one run per architecture (names aside) and rate.
    got = architecture_run(ctx, DATA_CACHE / "mobilenet_transfer" / "reference_scores.json",
                           [json.dumps(own, sort_keys=True), key[1]], _model2(student, ctx), "fine_tuning", own,
                           params["seed"])["validation_accuracy"]
    if got < expected - params["margin"]:
        raise Failure(f"model2, trained by the grader ({params['head_epochs']} epochs of the head, then "
                      f"{params['fine_epochs']} of fine-tuning, on the notebook's training split), reaches a "
                      f"validation accuracy of {got:.3f}; the reference reaches {expected:.3f} under the same "
                      f"budget (allowed margin {params['margin']:g})")


def _summary_check(student: Student, ctx: Context) -> None:
    same_structure("alpaca_model", reference_model, ALPACA_CASE, through=ALPACA)(student, ctx)


ALPACA_CHECKS = [
    Check("architecture", public=True, run=_summary_check),
    Check("parameter counts", run=same_parameter_counts("alpaca_model", reference_model, ALPACA_CASE, through=ALPACA)),
    Check("frozen base", run=frozen_base),
    Check("pretrained base", run=pretrained_base),
    Check("base in inference mode", run=base_in_inference_mode),
    Check("logits output", run=logits_output),
]
FINE_TUNING_CHECKS = [
    Check("frozen below layer 120", run=frozen_below_fine_tune_at),
    Check("loss", public=True, run=fine_tuning_loss),
    Check("optimizer", public=True, run=fine_tuning_optimizer),
    Check("metrics", public=True, run=fine_tuning_metrics),
]
# What model2's training depends on: every fine-tuning check, and alpaca_model's other than its
# counts, its freezing (the grader freezes the base itself for the head's training, and model2's
# flags after the fine-tuning cell count) and its pretrained weights (the grader loads them itself).
TRAINING_REQUIRES = (*(f"alpaca_model: {c.aspect}" for c in ALPACA_CHECKS
                       if c.aspect not in ("parameter counts", "frozen base", "pretrained base")),
                     *(c.aspect for c in FINE_TUNING_CHECKS))

CHECKS: dict[str, list[Check]] = {
    "data_augmenter": [
        Check("layers", public=True, run=augmenter_layers),
        Check("inference and shapes", run=model_property("data_augmenter", AUGMENTER_CASE, image_batches(),
                                                         _augmenter_behaviour)),
        Check("random in training", run=augmenter_is_random),
    ],
    "alpaca_model": ALPACA_CHECKS,
    "fine_tuning": [*FINE_TUNING_CHECKS, Check("training", weight=2, run=trains_like_reference,
                                               requires=TRAINING_REQUIRES)],
}
