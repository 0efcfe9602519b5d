"""The model worker: where student-described Keras models are built, called and trained.

Runs in a sandbox of its own (model_worker.py starts it), never in the grader's process:

    python -m grader.model_server [--trusted=MANIFEST] RECIPES DATA [NAME=FILE ...]

RECIPES is the exercise's model_recipes.py (its RECIPES dict: training recipes), DATA the
exercise's data folder, NAME=FILE its data files (e.g. weights=...), MANIFEST (trusted.json) the
trusted layer files of the versions the exercise grades, all read-only copies the grader made for
this worker. A request's "version" selects that version's trusted layers (keras_models.rebuild):
only for it are the course's own layer classes rebuilt, and only with the grader's implementation. Requests come on stdin and answers go out on the original stdout,
in model_wire's format; anything printed (TensorFlow, Keras) goes to stderr, the worker's log.

Every model is rebuilt from its description by keras_models.rebuild (the allowlist, then Keras's
safe mode), here as in the grader's checks before. Requests:

  facts     the model's structure as plain data (model_facts; rebuilt models kept for this)
  outputs   a fresh build under the seed, then model(X, training) `repeat` times
  forward   a fresh build, the given weights set, then model(X, training)
  train     a fresh build under the seed, then RECIPES[recipe](model, DATA, FILES, params)

Each request may carry cpu_seconds: the worker's CPU-time limit is raised to what it has used
plus that much (RLIMIT_CPU, soft; SIGXCPU ends it), so a limit holds per request while the worker
lives for many.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import resource
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

MODEL_CACHE = 8   # rebuilt models kept for facts requests (by description digest)


def plain(value: Any) -> Any:
    """JSON-able data from a Keras config or shape (tuples become lists, anything else its repr)."""
    return json.loads(json.dumps(value, default=lambda v: v.as_list() if hasattr(v, "as_list") else repr(v)))


def _shape(layer: Any, attribute: str) -> Any:
    try:
        return plain(getattr(layer, attribute))
    except (AttributeError, RuntimeError, ValueError):
        return None


def model_facts(model: Any, depth: int = 0) -> dict[str, Any]:
    """What the checks read about a model: its class, whether it is built, shapes, the course's
    summary, parameter counts, and each layer (class, name, config, trainable, number and shapes of
    its weights, output shape, and for a nested model its own facts, one level down)."""
    import numpy as np
    import tf_keras

    from grader import keras_summary

    built = bool(model.built)
    facts: dict[str, Any] = {"class": type(model).__name__, "name": model.name, "built": built,
                             "trainable": bool(model.trainable), "layers": []}
    if built:
        trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
        non_trainable = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
        facts.update(input_shape=_shape(model, "input_shape"), output_shape=_shape(model, "output_shape"),
                     summary=plain(keras_summary.summary(model)),
                     counts={"total": trainable + non_trainable, "trainable": trainable,
                             "non-trainable": non_trainable})
    for layer in model.layers:
        nested = isinstance(layer, tf_keras.Model)
        entry = {"name": layer.name, "class": type(layer).__name__, "trainable": bool(layer.trainable),
                 "weights": len(layer.weights), "weight_shapes": [[int(n) for n in w.shape] for w in layer.weights],
                 "output_shape": _shape(layer, "output_shape"),
                 "config": {} if nested else plain(layer.get_config())}
        if nested and depth < 1:
            entry["model"] = model_facts(layer, depth + 1)
        facts["layers"].append(entry)
    return facts


class Server:
    """The worker's state: the recipes, the data's paths, and a few rebuilt models."""

    def __init__(self, recipes: dict[str, Any], data: Path | None, files: dict[str, Path],
                 trusted: dict[str, dict[str, tuple[str, type]]] | None = None):
        self.recipes, self.data, self.files = recipes, data, files
        self.trusted = trusted or {}   # version -> keras_models.TrustedClasses
        self._models: OrderedDict[str, Any] = OrderedDict()

    def _described(self, description: str, version: str = "") -> Any:
        """The model of `description` for its facts: rebuilt once and kept (facts only read it)."""
        key = hashlib.sha256(f"{version}\0{description}".encode()).hexdigest()
        if key in self._models:
            self._models.move_to_end(key)
            return self._models[key]
        self._models[key] = model = _rebuild(description, self.trusted.get(version, {}))
        while len(self._models) > MODEL_CACHE:
            self._models.popitem(last=False)
        return model

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request's answer. Calls and trainings get a model rebuilt for them after the seed is
        set: nothing of an earlier request (weights, the state of random layers' generators) can
        change what a later one computes."""
        import numpy as np
        import tensorflow as tf

        op, description = request.get("op"), request.get("model", "")
        version = request.get("version") if isinstance(request.get("version"), str) else ""
        trusted = self.trusted.get(version, {})
        if op == "ping":
            return {"ok": True}
        if op == "facts":
            return {"ok": True, "facts": model_facts(self._described(description, version))}
        if op == "outputs":
            tf.keras.utils.set_random_seed(int(request.get("seed") or 0))
            model = _rebuild(description, trusted)
            X, training = np.asarray(request["X"]), bool(request.get("training"))
            return {"ok": True, "outputs": [np.asarray(model(X, training=training))
                                            for _ in range(int(request.get("repeat", 1)))]}
        if op == "forward":
            tf.keras.utils.set_random_seed(0)
            model = _rebuild(description, trusted)
            try:
                model.set_weights(list(request["weights"]))
            except ValueError as exc:  # Keras's message goes on to print every array: its first sentence
                return {"ok": False, "kind": "weights", "message": _first_line(exc).split(" Provided weights")[0]}
            return {"ok": True, "output": np.asarray(model(np.asarray(request["X"]),
                                                           training=bool(request.get("training"))))}
        if op == "train":
            recipe = self.recipes.get(request.get("recipe"))
            if recipe is None:
                return {"ok": False, "kind": "error", "message": f"no training recipe {request.get('recipe')!r}"}
            tf.keras.utils.set_random_seed(int(request.get("seed", 1)))
            model = _rebuild(description, trusted)
            scores = recipe(model, self.data, self.files, dict(request.get("params", {})))
            return {"ok": True, "scores": {str(k): float(v) for k, v in scores.items()}}
        return {"ok": False, "kind": "error", "message": f"unknown request {op!r}"}


def _rebuild(description: str, trusted: dict[str, tuple[str, type]] | None = None) -> Any:
    from grader.boundary import KerasModelConfig
    from grader.keras_models import rebuild

    return rebuild(KerasModelConfig(description), trusted)


def load_trusted(manifest: str) -> dict[str, dict[str, tuple[str, type]]]:
    """version -> {class name: (the course's module, the trusted class)} from trusted.json (see
    model_worker.py): each version's file is loaded on its own, and only its listed classes taken."""
    doc = json.loads(Path(manifest).read_text())
    out: dict[str, dict[str, tuple[str, type]]] = {}
    for n, (version, entry) in enumerate(sorted(doc.items())):
        spec = importlib.util.spec_from_file_location(f"convgrade_trusted_layers_{n}",
                                                      Path(manifest).parent / entry["file"])
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out[version] = {name: (entry["module"], getattr(module, name)) for name in entry["classes"]}
    return out


def _first_line(exc: BaseException) -> str:
    return ((str(exc).strip().splitlines() or [type(exc).__name__])[0])[:500]


def _limit_cpu(seconds: float | None) -> None:
    if not seconds:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    wanted = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (wanted, hard))


def load_recipes(path: str) -> dict[str, Any]:
    if not path or path == "-":
        return {}
    spec = importlib.util.spec_from_file_location("convgrade_model_recipes", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(getattr(module, "RECIPES", {}))


def main(argv: list[str]) -> int:
    from grader.boundary import UnsafeModel
    from grader.model_wire import Closed, read_message, write_message

    answers = os.dup(1)          # the protocol's channel; fd 1 becomes the log, for whatever prints
    os.dup2(2, 1)
    requests = os.dup(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    import tensorflow as tf
    import tf_keras  # imported before the first request: the worker is ready to build

    del tf_keras

    trusted = {}
    while argv and argv[0].startswith("--trusted="):
        trusted = load_trusted(argv.pop(0).split("=", 1)[1])
    tf.config.experimental.enable_tensor_float_32_execution(False)
    data = Path(argv[1]) if len(argv) > 1 and argv[1] != "-" else None
    files = {k: Path(v) for k, v in (a.split("=", 1) for a in argv[2:])}
    server = Server(load_recipes(argv[0] if argv else "-"), data, files, trusted)
    write_message(answers, {"ok": True, "ready": True, "tensorflow": tf.__version__})
    while True:
        try:
            request = read_message(requests, limit=1 << 36)
        except Closed:
            return 0
        _limit_cpu(request.get("cpu_seconds"))
        try:
            reply = server.handle(request)
        except UnsafeModel as exc:
            reply = {"ok": False, "kind": "unsafe", "message": str(exc)}
        except (MemoryError, tf.errors.ResourceExhaustedError):
            reply = {"ok": False, "kind": "failed", "message": "the model needs more memory than the grader allows"}
        except Exception as exc:  # the model could not do what was asked: say what happened
            reply = {"ok": False, "kind": "failed", "message": f"{type(exc).__name__}: {_first_line(exc)}"}
        write_message(answers, reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
