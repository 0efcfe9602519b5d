"""Student models are built only in the model worker (issue #15): hostile descriptions for every
Keras exercise, the worker's sandbox, its limits, and proof that the grader's process never
builds a student-described graph.

Every hostile description is returned by an in-process student (its answer crosses the real
probe boundary as a Keras model description) and graded by the exercise's real checks; each
check must fail alone, saying why, with a folder of the grader's (the canary) untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
tf_keras = pytest.importorskip("tf_keras")

from grader import grading  # noqa: E402
from grader.checks import Context, Failure  # noqa: E402
from grader.grading import grade_submission  # noqa: E402
from grader.model_worker import ModelWorker, RemoteModel, WorkerFault, WorkerSettings  # noqa: E402
from grader.spec import Limits, load_exercise  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-c4n4ry"
pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


class Described:
    """What the kernel-side probe takes for a Keras model: it sends whatever to_json() returns
    (a student can replace to_json on a real model just as well)."""

    layers: list = []

    def __init__(self, text: str):
        self.text = text

    def to_json(self) -> str:
        return self.text

    def count_params(self) -> int:
        return 0


def tiny_functional() -> tf_keras.Model:
    inputs = tf_keras.Input((4,))
    return tf_keras.Model(inputs, tf_keras.layers.Dense(2)(inputs))


def with_op(function: str, canary: Path) -> str:
    """A model with an op layer that names `function` (e.g. io.read_file) on a path in the canary."""
    import tensorflow as tf

    inputs = tf_keras.Input((4,))
    model = tf_keras.Model(inputs, tf.math.add(tf_keras.layers.Dense(4)(inputs), 1.0))
    text = replaced(model.to_json(), '"function": "math.add"', f'"function": "{function}"')
    return replaced(text, '"y": 1.0', f'"y": "{canary / "secret.txt"}"')


def replaced(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def hostile(kind: str, canary: Path) -> str:
    base = tiny_functional().to_json()
    if kind == "op_layer_reads_a_file":
        return with_op("io.read_file", canary)
    if kind == "op_layer_writes_a_file":
        return with_op("io.write_file", canary)
    if kind == "unknown_class":
        return replaced(base, '"class_name": "Dense"', '"class_name": "PyFunc"')
    if kind == "custom_object_by_module_path":
        return replaced(base, '"class_name": "Dense"', '"module": "os", "class_name": "Dense"')
    if kind == "huge_layer":
        return replaced(base, '"units": 2', '"units": 1000000000')
    if kind == "deeply_nested_config":
        return replaced(base, '"units": 2', '"units": 2, "extra": ' + "[" * 5000 + "]" * 5000)
    raise AssertionError(kind)


KINDS = {  # kind -> what the feedback must say
    "op_layer_reads_a_file": "calls tf.io.read_file",
    "op_layer_writes_a_file": "calls tf.io.write_file",
    "unknown_class": "(PyFunc), which the grader does not rebuild",
    "custom_object_by_module_path": "comes from module os",
    "huge_layer": "units 1000000000",
    "deeply_nested_config": "nested too deeply",
}
# Every Keras exercise's model-returning items, and how its checks call them.
ITEMS = {
    "conv_application": ["happyModel", "convolutional_model"],
    "resnet50": ["ResNet50"],
    "mobilenet_transfer": ["data_augmenter", "alpaca_model"],
    "cnn_arithmetic": ["inception_module", "mobilenet_v2_bottleneck"],
}


@pytest.fixture
def canary(tmp_path):
    folder = tmp_path / "canary"
    folder.mkdir(mode=0o700)
    (folder / "secret.txt").write_text(SECRET)

    def state():
        return sorted((p.name, p.lstat().st_mode, p.read_bytes() if p.is_file() else b"") for p in [folder, *folder.iterdir()])
    before = state()
    yield folder
    assert state() == before, "something outside the worker was read into feedback, written or created"


@pytest.fixture
def never_built_here(monkeypatch):
    """Fails the test if anything in this (the grader's) process deserializes a model."""
    built = []

    def refuse(*args, **kwargs):
        built.append(args[:1])
        raise AssertionError("a student-described model was built in the grader's process")

    from grader import keras_models
    from tf_keras.src.engine import functional, sequential

    monkeypatch.setattr(tf_keras.models, "model_from_json", refuse)
    monkeypatch.setattr(tf_keras.models, "model_from_config", refuse)
    monkeypatch.setattr(keras_models, "rebuild", refuse)
    monkeypatch.setattr(functional.Functional, "from_config", classmethod(refuse))
    monkeypatch.setattr(sequential.Sequential, "from_config", classmethod(refuse))
    yield built
    assert built == []


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("exercise_name", sorted(ITEMS))
def test_hostile_descriptions_fail_each_check_alone_and_touch_nothing(exercise_name, kind, make_student, canary,
                                                                      model_worker, never_built_here):
    exercise = load_exercise(exercise_name)
    data, files = exercise.data.resolve() if exercise.data else (None, {})
    ctx = Context(exercise.tolerance, exercise.max_examples, data, exercise.params, files,
                  model_worker(exercise_name))
    text = hostile(kind, canary)

    def answer(*args, **kwargs):
        return Described(text)
    # the items' own names, and the kernel-side adapters the checks call them through
    functions = {name: answer for name in [*ITEMS[exercise_name], "__convgrade_with_phase__",
                                           "__convgrade_alpaca_model__", "__convgrade_block_model__"]}
    functions["__convgrade_fine_tuning__"] = lambda: {"model": Described(text), "fine_tune_at": 120}
    student = make_student(functions)
    student.defined = lambda names: list(names)
    items = [*ITEMS[exercise_name], *(["fine_tuning"] if exercise_name == "mobilenet_transfer" else [])]
    tests: list = []  # graded by the runner, which skips a check whose precondition (requires=) failed
    for item in [i for i in exercise.items if i.name in items]:
        tests += grading._grade_item(item, exercise, student, None, None, ctx, earlier=tests)
    for t in tests:
        if t.item == "fine_tuning" and t.name.split(": ", 1)[1] in ("loss", "optimizer", "metrics"):
            continue  # the fine-tuning cell's settings, not its model
        if t.status == "skipped":
            assert t.output.startswith("not checked because ") and SECRET not in t.output, t.output
            continue
        assert t.status == "failed" and KINDS[kind] in t.output and SECRET not in t.output, (t.name, t.output)


def test_op_layers_are_refused_by_the_worker_too(model_worker, canary):
    """The worker checks the allowlist itself: a description that did not pass the grader's check
    (here sent directly) is refused there, with the same reason."""
    from grader.model_worker import ModelRefused

    worker = model_worker()
    with pytest.raises(ModelRefused, match="calls tf.io.read_file"):
        worker.request({"op": "facts", "model": with_op("io.read_file", canary)}, timeout=60, what="building")


SANDBOX_PROBE = r"""
import json, os, socket, sys
canary, project = sys.argv[1], sys.argv[2]
seen = {}
for name, path in [("canary", canary + "/secret.txt"), ("reference", project + "/reference"),
                   ("samples", project + "/exercises"), ("tests", project + "/tests")]:
    try:
        open(path).read() if name == "canary" else os.listdir(path)
        seen[name] = "visible"
    except OSError as exc:
        seen[name] = type(exc).__name__
for folder in ("/convgrade/code", "/convgrade/data", "/convgrade/files"):
    try:
        open(folder + "/x", "w").write("x")
        seen[folder] = "writable"
    except OSError as exc:
        seen[folder] = type(exc).__name__
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    seen["network"] = "reachable"
except OSError as exc:
    seen["network"] = type(exc).__name__
seen["uid"] = os.getuid()
seen["code"] = sorted(os.listdir("/convgrade/code"))
print(json.dumps(seen))
"""


def test_the_worker_sandbox_holds_only_its_own_read_only_folder(canary):
    """The worker's command line, with this probe in place of the server: no canary, no
    reference/, samples or tests, nothing writable of its folder, no network; nobody as root."""
    exercise = load_exercise("conv_application")
    data, files = exercise.data.resolve()
    with ModelWorker(WorkerSettings("bwrap", exercise.limits, exercise.recipes, data, files)) as worker:
        command = worker.command()
        server = command.index("-m")
        probe = [*command[:server], "-c", SANDBOX_PROBE, str(canary), str(ROOT)]
        out = subprocess.run(probe, capture_output=True, text=True, timeout=120)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert {k: seen[k] for k in ("canary", "reference", "samples", "tests")} == {
        "canary": "FileNotFoundError", "reference": "FileNotFoundError", "samples": "FileNotFoundError",
        "tests": "FileNotFoundError"}, seen
    assert all(seen[f] in ("OSError", "PermissionError") for f in ("/convgrade/code", "/convgrade/data",
                                                                  "/convgrade/files")), seen
    assert seen["network"] != "reachable"
    assert seen["code"] == ["grader", "model_recipes.py"]
    if os.geteuid() == 0:
        assert seen["uid"] == 65534


def heavy_model(filters: int = 512) -> str:
    """Allowed layers only, but far too much work: 64 convolutions of `filters` filters on 64x64
    pictures (the description of a 2-filter model with its filters raised: nothing is allocated
    here)."""
    inputs = tf_keras.Input((64, 64, 3))
    x = inputs
    for _ in range(64):
        x = tf_keras.layers.Conv2D(2, 3, padding="same")(x)
    text = tf_keras.Model(inputs, tf_keras.layers.Dense(1)(tf_keras.layers.GlobalAveragePooling2D()(x))).to_json()
    return text.replace('"filters": 2,', f'"filters": {filters},')


def memory_hog() -> str:
    """Allowed layers, bounded sizes each, but 16 GB of weights together (a description only:
    built small here, its units raised in the text)."""
    inputs = tf_keras.Input((4096,))
    x = inputs
    for _ in range(16):
        x = tf_keras.layers.Dense(3)(x)
    return tf_keras.Model(inputs, x).to_json().replace('"units": 3,', '"units": 16384,')


@pytest.mark.slow
def test_a_model_over_its_time_or_memory_fails_its_own_request_and_the_worker_goes_on():
    """Out of time (a call, then a training) and out of memory: each request fails with the
    cause, as a Failure of the student's check; the next model is built by a fresh worker."""
    limits = Limits(memory_mb=6144, call_timeout=20, train_timeout=20)
    exercise = load_exercise("conv_application")
    data, files = exercise.data.resolve()
    with ModelWorker(WorkerSettings("bwrap", limits, exercise.recipes, data, files, exercise.kernel_env)) as worker:
        slow = RemoteModel(worker, heavy_model(), "on input happyModel()", failure=Failure)
        with pytest.raises(Failure, match=r"on input happyModel\(\): calling the model did not finish within 20 s"):
            slow.outputs(np.ones((8, 64, 64, 3), np.float32), training=True)
        params = dict(exercise.params["training_happy"])
        # 32 filters: minutes of training, but its activations for backpropagation (about 1 GB at
        # the exercise's batch size) stay well inside the memory limit, so time runs out first
        # (512 filters would need ~16 GB: a race between the two limits)
        with pytest.raises(Failure, match="training the model did not finish within 20 s"):
            RemoteModel(worker, heavy_model(32), "on input happyModel()", failure=Failure).train("happy", params, 1)
        with pytest.raises(Failure, match="more memory than the grader allows|more than the 6144 MB of memory"):
            RemoteModel(worker, memory_hog(), "on input happyModel()", failure=Failure).facts
        small = RemoteModel(worker, tiny_functional().to_json(), "on input f()", failure=Failure)
        assert small.facts.counts["total"] == 10
        # one start, one after each timeout, and one after the memory fault if it ended the worker
        # (killed or crashed); TensorFlow may instead report it and the worker goes on
        assert worker.starts in (3, 4)


def test_seeded_outputs_do_not_depend_on_earlier_requests(model_worker):
    """Two submissions with the same augmenter get the same seeded outputs: each call gets a model
    rebuilt after the seed (random layers' generators are not weights a cache could restore)."""
    augmenter = tf_keras.Sequential([tf_keras.Input((8, 8, 3)), tf_keras.layers.RandomFlip("horizontal"),
                                     tf_keras.layers.RandomRotation(0.2)]).to_json()
    X = np.arange(2 * 8 * 8 * 3, dtype=np.float32).reshape(2, 8, 8, 3)
    first = RemoteModel(model_worker(), augmenter, "a").outputs(X, training=True, seed=0)[0]
    second = RemoteModel(model_worker(), augmenter, "b").outputs(X, training=True, seed=0)[0]
    assert not np.array_equal(first, X) and np.array_equal(first, second)


@pytest.mark.slow
def test_a_worker_that_cannot_start_leaves_the_submission_not_graded_rather_than_charged(make_student):
    """The model worker cannot start (too little memory to import TensorFlow): no check of the
    item is scored; the submission is recorded as not graded, for a fault that is not its own."""
    from grader import grading
    from grader.checks import GraderFault

    exercise = load_exercise("conv_application")
    item = next(i for i in exercise.items if i.name == "happyModel")
    text = tiny_functional().to_json()
    student = make_student({"happyModel": lambda *a, **k: Described(text)})
    student.defined = lambda names: list(names)
    with ModelWorker(WorkerSettings("none", Limits(memory_mb=50))) as worker:
        ctx = Context(exercise.tolerance, exercise.max_examples, None, exercise.params, {}, worker)
        with pytest.raises(GraderFault, match="could not start"):
            grading._grade_item(item, exercise, student, None, None, ctx)


@pytest.mark.slow
def test_a_worker_that_cannot_start_is_not_the_students_fault():
    worker = ModelWorker(WorkerSettings("none", Limits(memory_mb=50)))  # too little to import TensorFlow
    with worker:
        model = RemoteModel(worker, tiny_functional().to_json(), "on input f()", failure=Failure)
        with pytest.raises(WorkerFault, match="could not start") as fault:
            model.facts
    assert fault.value.student is False


@pytest.mark.slow
def test_a_keras_submission_is_graded_without_building_its_model_in_the_grader(never_built_here):
    """The whole conv_application grading of the correct sample: full marks, every model built in
    the worker (the grader's process deserializes none)."""
    exercise = load_exercise("conv_application")
    result = grade_submission(exercise.samples / "correct.ipynb", exercise)
    assert result.status == "graded" and result.score == exercise.max_score, [t.output for t in result.tests]
    assert {t.name.split(": ")[1] for t in result.tests} >= {"architecture", "forward pass", "training"}


AS_USER = """
import json, os
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tf_keras
from grader.model_worker import ModelWorker, RemoteModel, WorkerSettings
from grader.spec import Limits
assert os.geteuid() != 0
inputs = tf_keras.Input((4,))
text = tf_keras.Model(inputs, tf_keras.layers.Dense(2)(inputs)).to_json()
with ModelWorker(WorkerSettings("bwrap", Limits(memory_mb=4096))) as worker:
    print(json.dumps(RemoteModel(worker, text, "here").facts.counts))
"""


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is not installed")
def test_the_worker_works_for_a_grader_that_is_an_ordinary_user(tmp_path):
    """As uid 1000 (no cgroup, no setpriv): bwrap's own user namespace, rlimits only."""
    out = subprocess.run(["unshare", "--user", "--map-user=1000", "--map-group=1000", sys.executable, "-c", AS_USER],
                         capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "TMPDIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"total": 10, "trainable": 10, "non-trainable": 0}


def test_the_mobilenet_recipe_uses_the_courses_settings():
    """model_recipes.py may not import reference/ (the worker has no copy): its copy of the
    notebook's settings must agree with the reference's."""
    import importlib.util

    from reference import mobilenet_transfer as ref

    exercise = load_exercise("mobilenet_transfer")
    spec = importlib.util.spec_from_file_location("mobilenet_recipes", exercise.recipes)
    recipes = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipes)
    for name in ("IMG_SIZE", "BATCH_SIZE", "VALIDATION_SPLIT", "SPLIT_SEED", "BASE_LEARNING_RATE"):
        assert getattr(recipes, name) == getattr(ref, name), name
