"""A student's model whose architecture is the reference's (up to layer names) gets the
reference's training scores without a second training; any other model is trained."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from types import SimpleNamespace

import pytest

from grader import keras_checks
from grader.checks import Case, Context, Failure
from grader.spec import Tolerance


def functional(prefix: str, units: int = 3, activation: str = "relu", trainable: bool = True) -> str:
    """A Keras-2 style functional description: Input -> Dense, its layers named with `prefix`."""
    inp, dense = f"{prefix}_input", f"{prefix}_dense"
    return json.dumps({
        "class_name": "Functional",
        "config": {
            "name": f"{prefix}_model",
            "layers": [
                {"class_name": "InputLayer", "name": inp, "inbound_nodes": [],
                 "config": {"name": inp, "batch_input_shape": [None, 4], "dtype": "float32"}},
                {"class_name": "Dense", "name": dense, "inbound_nodes": [[[inp, 0, 0, {}]]],
                 "config": {"name": dense, "units": units, "activation": activation, "trainable": trainable}},
            ],
            "input_layers": [[inp, 0, 0]],
            "output_layers": [[dense, 0, 0]],
        },
    })


def test_layer_and_model_names_do_not_change_the_canonical_architecture() -> None:
    assert keras_checks.canonical_architecture(functional("a")) == keras_checks.canonical_architecture(functional("b"))


@pytest.mark.parametrize("other", [functional("a", units=4), functional("a", activation="tanh"),
                                   functional("a", trainable=False)])
def test_anything_but_names_changes_it(other: str) -> None:
    assert keras_checks.canonical_architecture(other) != keras_checks.canonical_architecture(functional("a"))


def test_wiring_counts_even_with_the_same_layers() -> None:
    # the same two layers, but the Dense layer's input named as the Dense itself: another graph
    rewired = json.loads(functional("a"))
    rewired["config"]["layers"][1]["inbound_nodes"] = [[["a_dense", 0, 0, {}]]]
    assert keras_checks.canonical_architecture(json.dumps(rewired)) != keras_checks.canonical_architecture(functional("a"))


def named_like_its_activation(activation: str, dtype: str = "float32") -> str:
    """A model whose Dense layer is named after its own activation (and dtype)."""
    doc = json.loads(functional("a", activation=activation))
    doc["config"]["layers"][1]["name"] = doc["config"]["layers"][1]["config"]["name"] = activation
    doc["config"]["layers"][1]["config"]["dtype"] = dtype
    doc["config"]["output_layers"] = [[activation, 0, 0]]
    return json.dumps(doc)


@pytest.mark.parametrize(("one", "other"), [
    (named_like_its_activation("relu"), named_like_its_activation("tanh")),     # relu passes; tanh must not
    (named_like_its_activation("relu"), named_like_its_activation("relu", "float16")),
    (named_like_its_activation("float32"), named_like_its_activation("float16", "float16")),
], ids=["relu-or-tanh", "dtype", "named-like-the-dtype"])
def test_a_name_that_equals_a_setting_does_not_hide_the_setting(one: str, other: str) -> None:
    # a layer named "relu" whose activation is "relu", and one named "tanh" whose activation is
    # "tanh": only the names may be set aside, never a setting spelled like one of them
    assert keras_checks.canonical_architecture(one) != keras_checks.canonical_architecture(other)


def test_names_inside_a_nested_model_do_not_count_either() -> None:
    def nested(prefix: str) -> str:
        inner = json.loads(functional(f"{prefix}_inner"))
        outer = json.loads(functional(prefix))
        outer["config"]["layers"][1] = {**inner, "name": f"{prefix}_inner_model",
                                        "inbound_nodes": [[[f"{prefix}_input", 0, 0, {}]]]}
        outer["config"]["output_layers"] = [[f"{prefix}_inner_model", 0, 0]]
        return json.dumps(outer)
    assert keras_checks.canonical_architecture(nested("a")) == keras_checks.canonical_architecture(nested("b"))


def two_calls(first: object = None, second: object = None, layer: str = "BatchNormalization") -> str:
    """Input -> <layer> -> <layer>; each call states training=<value> unless the value is None
    (a JSON null is stated as "null")."""
    doc = json.loads(functional("m"))
    layers = doc["config"]["layers"]
    layers[1] = {"class_name": layer, "name": "m_dense", "inbound_nodes": [[["m_input", 0, 0, {}]]],
                 "config": {"name": "m_dense"}}
    second_layer = {**layers[1], "name": "m_dense2", "config": {**layers[1]["config"], "name": "m_dense2"},
                    "inbound_nodes": [[["m_dense", 0, 0, {}]]]}
    layers.append(second_layer)
    doc["config"]["output_layers"] = [["m_dense2", 0, 0]]
    for layer, value in ((layers[1], first), (layers[2], second)):
        if value is not None:
            layer["inbound_nodes"][0][0][3] = {"training": None if value == "null" else value}
    return json.dumps(doc)


def test_stated_training_true_counts_only_for_a_model_run_in_training_mode_alone() -> None:
    canonical = keras_checks.canonical_architecture
    assert canonical(two_calls(True, True), True) == canonical(two_calls(), True) == canonical(two_calls(True), True)
    assert canonical(two_calls(True, True)) != canonical(two_calls())   # any other recipe: as written
    assert canonical(two_calls(True)) != canonical(two_calls())


@pytest.mark.parametrize("layer", ["Dropout", "SpatialDropout2D", "Functional", "Dense"])
def test_a_stated_training_true_counts_for_any_layer_but_a_batch_norm(layer: str) -> None:
    """A seeded Dropout (or a nested model holding one) called in training mode while the worker
    rebuilds the model trains otherwise afterwards (tests/test_model_training.py)."""
    canonical = keras_checks.canonical_architecture
    assert canonical(two_calls(True, True, layer), True) != canonical(two_calls(layer=layer), True)
    assert canonical(two_calls(True, True, layer), True) == canonical(two_calls(True, True, layer))


@pytest.mark.parametrize("other", [False, "null", 1])
def test_any_other_stated_training_keeps_every_argument(other: object) -> None:
    """training=False (or null, or 1) beside a training=True: nothing is dropped, so the True
    still tells the two apart, and the form is the one written."""
    canonical = keras_checks.canonical_architecture
    assert canonical(two_calls(True, other), True) != canonical(two_calls(None, other), True)
    assert canonical(two_calls(True, other), True) == canonical(two_calls(True, other))
    assert canonical(two_calls(None, other), True) != canonical(two_calls(), True)


def test_a_reference_to_a_missing_layer_or_a_name_that_is_not_text_has_no_canonical_form() -> None:
    # such a model would not build; spelled like a placeholder, it must not pass for one that does
    dangling = json.loads(functional("a"))
    dangling["config"]["layers"][1]["inbound_nodes"] = [[["\x00layer1", 0, 0, {}]]]
    numbered = json.loads(functional("a"))
    numbered["config"]["layers"][1]["name"] = 7
    for doc in (dangling, numbered):
        assert keras_checks.canonical_architecture(json.dumps(doc)) is None


def two_dense(first: str, second: str, index: object = 0) -> str:
    """Input -> Dense `first` -> Dense `second`; the output is the layer named "d2", referred to
    with node index `index` (Keras also accepts 0.0 there)."""
    doc = json.loads(functional("a"))
    dense = doc["config"]["layers"][1]
    doc["config"]["layers"] = [doc["config"]["layers"][0],
                               {**dense, "name": first, "config": {**dense["config"], "name": first}},
                               {**dense, "name": second, "config": {**dense["config"], "name": second},
                                "inbound_nodes": [[[first, 0, 0, {}]]]}]
    doc["config"]["output_layers"] = [["d2", index, 0]]
    return json.dumps(doc)


def test_a_reference_whose_index_is_not_an_integer_has_no_canonical_form() -> None:
    # found by a red-team pass: with the name left as written, swapping the two Dense layers'
    # names rewires the output (after two layers, or after one) under the same canonical form
    assert keras_checks.canonical_architecture(two_dense("d1", "d2")) is not None
    for index in (0.0, True, "0"):
        assert keras_checks.canonical_architecture(two_dense("d1", "d2", index)) is None
        assert keras_checks.canonical_architecture(two_dense("d2", "d1", index)) is None


@pytest.mark.parametrize("name", ["_CONSTANT_VALUE", "a b", "_x", "-x", "\u00e9", "a:b"])
def test_a_name_the_model_cannot_be_built_with_has_no_canonical_form(name: str) -> None:
    # TensorFlow refuses these scope names (and Keras reads _CONSTANT_VALUE as a constant): such
    # a model does not build, so it may not take the canonical form of one that does
    doc = json.loads(functional("a"))
    doc["config"]["layers"][1]["name"] = doc["config"]["layers"][1]["config"]["name"] = name
    doc["config"]["output_layers"] = [[name, 0, 0]]
    assert keras_checks.canonical_architecture(json.dumps(doc)) is None


@pytest.mark.parametrize("text", ["not json", "[1, 2]", "3"])
def test_a_description_that_is_not_an_object_has_no_canonical_form(text: str) -> None:
    assert keras_checks.canonical_architecture(text) is None


WORKER = SimpleNamespace(code="worker code")   # what ModelWorker.code stands for: recipes and grader


class FakeModel:
    def __init__(self, description: str, accuracy: float):
        self.description, self.accuracy, self.trained = description, accuracy, 0

    def train(self, recipe, params, seed):
        self.trained += 1
        return {"test_accuracy": self.accuracy}


@pytest.mark.parametrize(("student", "trains"), [(functional("student"), 0), (functional("student", units=4), 1)])
def test_only_a_different_architecture_is_trained(monkeypatch, tmp_path, student: str, trains: int) -> None:
    model = FakeModel(student, accuracy=0.2)
    monkeypatch.setattr(keras_checks, "student_model", lambda *a, **k: model)
    monkeypatch.setattr(keras_checks, "reference_run", lambda *a, **k: ({"test_accuracy": 0.9, "seconds": 42.0}, True))
    reference = SimpleNamespace(to_json=lambda: functional("reference"))
    check = keras_checks.trains_like_reference("model", lambda: reference, Case(()), "training", "fit",
                                               tmp_path / "scores.json")
    ctx = Context(Tolerance(1e-5, 1e-6), 1, data=tmp_path, models=WORKER,
                  params={"training": {"epochs": 1, "batch_size": 2, "train_examples": 4, "margin": 0.1, "seed": 0}})
    if trains:
        with pytest.raises(Failure, match="0.200"):   # trained, and below the reference's 0.9
            check(None, ctx)
    else:
        check(None, ctx)   # the reference's own run: passes without training
    assert model.trained == trains
    assert ctx.reused == ([] if trains else [42.0])   # what the reference's training took, reused


def test_the_submission_whose_check_trained_the_reference_does_not_count_it_as_reused(monkeypatch, tmp_path) -> None:
    # the first submission with the reference's architecture pays for the reference's training
    model = FakeModel(functional("student"), accuracy=0.2)
    monkeypatch.setattr(keras_checks, "student_model", lambda *a, **k: model)
    reference = SimpleNamespace(to_json=lambda: functional("reference"))
    trained: list[str] = []

    class Worker:   # what RemoteModel asks the model worker: here, to train the reference
        limits = SimpleNamespace(call_timeout=5, train_timeout=5)
        known_passes: dict[str, float] = {}
        code = "worker code"

        def request(self, message, timeout, what):
            trained.append(message["op"])
            return {"scores": {"test_accuracy": 0.9}}
    check = keras_checks.trains_like_reference("model", lambda: reference, Case(()), "training", "fit",
                                               tmp_path / "cache" / "scores.json")
    (tmp_path / "data").mkdir()
    ctx = Context(Tolerance(1e-5, 1e-6), 1, data=tmp_path / "data", models=Worker(),
                  params={"training": {"epochs": 1, "batch_size": 2, "train_examples": 4, "margin": 0.1, "seed": 0}})
    check(None, ctx)
    assert trained == ["train"] and ctx.reused == []      # trained here: nothing reused
    ctx.reused.clear()
    check(None, ctx)
    assert trained == ["train"] and len(ctx.reused) == 1  # the next one reuses it


def test_an_architecture_other_than_the_references_is_trained_once_for_the_whole_class(monkeypatch, tmp_path) -> None:
    # two students, the same mistake (4 units) under other layer names; a third with another mistake
    models = [FakeModel(functional("alice", units=4), 0.5), FakeModel(functional("bob", units=4), 0.5),
              FakeModel(functional("carol", units=5), 0.7)]
    queue = list(models)
    monkeypatch.setattr(keras_checks, "student_model", lambda *a, **k: queue.pop(0))
    monkeypatch.setattr(keras_checks, "reference_run", lambda *a, **k: ({"test_accuracy": 0.6}, True))
    reference = SimpleNamespace(to_json=lambda: functional("reference"))
    check = keras_checks.trains_like_reference("model", lambda: reference, Case(()), "training", "fit",
                                               tmp_path / "cache" / "scores.json")
    (tmp_path / "data").mkdir()
    ctx = Context(Tolerance(1e-5, 1e-6), 1, data=tmp_path / "data", models=WORKER,
                  params={"training": {"epochs": 1, "batch_size": 2, "train_examples": 4, "margin": 0.05, "seed": 0}})
    with pytest.raises(Failure, match="0.500"):
        check(None, ctx)                       # alice: trained, below the reference
    assert ctx.reused == []
    with pytest.raises(Failure, match="0.500"):
        check(None, ctx)                       # bob: alice's run, the same verdict
    assert len(ctx.reused) == 1 and ctx.reused[0] >= 0   # the seconds alice's training took
    check(None, ctx)                           # carol: trained, passes
    assert [m.trained for m in models] == [1, 0, 1] and len(ctx.reused) == 1
    # another budget is another run
    dave = FakeModel(functional("dave", units=4), 0.9)
    queue.append(dave)
    other = dataclasses.replace(ctx, params={"training": {**ctx.params["training"], "epochs": 2}})
    check(None, other)
    assert queue == [] and dave.trained == 1 and models[0].trained == 1
    # and another device too (a GPU's training is not the CPU's, bit for bit)
    erin = FakeModel(functional("erin", units=4), 0.9)
    queue.append(erin)
    check(None, dataclasses.replace(ctx, device="gpu"))
    assert queue == [] and erin.trained == 1


def test_two_graders_asking_for_the_same_training_at_once_train_it_once(tmp_path) -> None:
    # a batch's jobs grade the reference's architecture at the same moment: one trains, the
    # other waits for its scores (and counts them as reused) instead of training it again
    cache = tmp_path / "scores.json"
    started = threading.Event()
    trainings: list[str] = []

    def train() -> dict[str, float]:
        trainings.append(threading.current_thread().name)
        started.set()
        time.sleep(0.5)
        return {"test_accuracy": 0.75}

    answers: dict[str, tuple[dict[str, float], bool]] = {}

    def grade(name: str) -> None:
        answers[name] = keras_checks.cached_run(cache, ["budget", "architecture a"], train)
    first = threading.Thread(target=grade, args=("first",), name="first")
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=grade, args=("second",), name="second")
    second.start()
    first.join(10)
    second.join(10)
    assert trainings == ["first"]
    assert answers["first"][1] is False and answers["second"][1] is True
    assert answers["second"][0]["test_accuracy"] == 0.75


def test_trainings_finished_at_once_are_all_kept(tmp_path) -> None:
    # two other architectures trained side by side: each one's scores are stored, none lost
    cache = tmp_path / "scores.json"
    ready = threading.Barrier(2)

    def train(accuracy: float):
        def run() -> dict[str, float]:
            ready.wait(10)   # both have read the file before either writes it
            return {"test_accuracy": accuracy}
        return run
    threads = [threading.Thread(target=keras_checks.cached_run, args=(cache, ["budget", f"architecture {a}"], train(a)))
               for a in (0.5, 0.6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    stored = json.loads(cache.read_text())
    assert sorted(v["test_accuracy"] for v in stored.values()) == [0.5, 0.6]


def test_mobilenet_fine_tuning_is_trained_once_per_architecture_and_rate(monkeypatch, tmp_path) -> None:
    # model2 under other layer names and the same rate: one training; another rate: another
    from grader.spec import load_exercise
    checks = load_exercise("mobilenet_transfer").checks
    monkeypatch.setattr(checks, "DATA_CACHE", tmp_path / "cache")
    monkeypatch.setattr(checks, "reference_scores", lambda *a, **k: {"validation_accuracy": 0.8})
    rate = {"value": 1e-4}
    monkeypatch.setattr(checks, "fine_tuning_state",
                        lambda student: {"optimizer": {"class": "Adam", "config": {"learning_rate": rate["value"]}}})
    class FineTuned(FakeModel):
        def train(self, recipe, params, seed):
            self.trained += 1
            return {"validation_accuracy": self.accuracy}
    students = {name: FineTuned(functional(name), 0.85) for name in ("alice", "bob", "carol")}
    monkeypatch.setattr(checks, "_model2", lambda student, ctx: students[student])
    (tmp_path / "data").mkdir()
    (tmp_path / "weights.h5").write_bytes(b"weights")
    ctx = Context(Tolerance(1e-5, 1e-6), 1, data=tmp_path / "data", files={"weights": tmp_path / "weights.h5"}, models=WORKER,
                  params={"training": {"head_epochs": 1, "fine_epochs": 1, "margin": 0.1, "seed": 0}})
    checks.trains_like_reference("alice", ctx)
    checks.trains_like_reference("bob", ctx)
    assert [students["alice"].trained, students["bob"].trained] == [1, 0] and len(ctx.reused) == 1
    rate["value"] = 1e-3
    checks.trains_like_reference("carol", ctx)
    assert students["carol"].trained == 1


def test_two_references_under_one_budget_and_cache_are_trained_apart(tmp_path) -> None:
    # e.g. conv_application's happy and signs models: same cache file, same data folder; were
    # their budgets set equal, one must still never be graded against the other's score
    trained: list[str] = []

    class Worker:
        limits = SimpleNamespace(call_timeout=5, train_timeout=5)
        known_passes: dict[str, float] = {}
        code = "worker code"

        def request(self, message, timeout, what):
            trained.append(message["model"])
            return {"scores": {"test_accuracy": 0.5 + 0.1 * len(trained)}}
    ctx = Context(Tolerance(1e-5, 1e-6), 1, models=Worker())
    happy = SimpleNamespace(to_json=lambda: functional("happy", units=1))
    signs = SimpleNamespace(to_json=lambda: functional("signs", units=6))
    cache = tmp_path / "scores.json"
    runs = [keras_checks.reference_run(ctx, cache, ["budget", "data"], model, recipe, {}, 0)
            for model, recipe in ((happy, "happy"), (signs, "signs"), (happy, "happy"), (happy, "signs"))]
    assert len(trained) == 3        # happy, signs, then happy under the signs recipe
    assert runs[0] == (runs[2][0], False) and runs[2][1] is True
    assert runs[1][0]["test_accuracy"] != runs[0][0]["test_accuracy"]


@pytest.mark.parametrize("left", ["", "{\"cut short", "[1, 2]"])
def test_a_score_file_left_unreadable_is_computed_again(tmp_path, left: str) -> None:
    cache = tmp_path / "scores.json"
    cache.write_text(left)
    scores, known = keras_checks.cached_run(cache, ["budget"], lambda: {"test_accuracy": 0.5})
    assert (scores["test_accuracy"], known) == (0.5, False)
    assert keras_checks.cached_run(cache, ["budget"], lambda: {"test_accuracy": 0.9})[0]["test_accuracy"] == 0.5


def test_a_stored_run_is_shared_only_under_the_same_budget_recipe_version_and_device(tmp_path) -> None:
    # architecture_run (both training checks use it): a renamed copy reuses the stored run; any
    # other key part trains again; a description without a canonical form is never stored
    cache = tmp_path / "scores.json"

    def run(model: FakeModel, key: str = "budget", recipe: str = "fit", version: str = "2021",
            device: str = "cpu", code: str = "worker code") -> Context:
        ctx = Context(Tolerance(1e-5, 1e-6), 1, version=version, device=device, models=SimpleNamespace(code=code))
        assert keras_checks.architecture_run(ctx, cache, [key, "data"], model, recipe, {}, 0)["test_accuracy"] == \
            model.accuracy
        return ctx

    first = FakeModel(functional("alice"), 0.7)
    assert run(first).reused == [] and first.trained == 1
    renamed = FakeModel(functional("bob"), 0.1)   # were it trained, its own 0.1 would show
    renamed_ctx = Context(Tolerance(1e-5, 1e-6), 1, version="2021", device="cpu", models=WORKER)
    assert keras_checks.architecture_run(renamed_ctx, cache, ["budget", "data"], renamed, "fit", {},
                                         0)["test_accuracy"] == 0.7
    assert renamed.trained == 0 and renamed_ctx.reused == [0.0]
    for change in ({"key": "other budget"}, {"recipe": "fine_tuning"}, {"version": "2024"}, {"device": "gpu"},
                   {"code": "a changed recipe or grader"}):
        model = FakeModel(functional("carol"), 0.5)
        run(model, **change)
        assert model.trained == 1, change
    unnamed = FakeModel("not json", 0.3)
    run(unnamed), run(unnamed)
    assert unnamed.trained == 2


def test_a_changed_recipe_or_trusted_layer_file_changes_the_workers_code(tmp_path) -> None:
    # ModelWorker.code is in every stored training's key: a new recipe never serves old scores
    from grader.model_worker import ModelWorker, WorkerSettings
    from grader.spec import Limits, TrustedLayers
    recipes, layers = tmp_path / "model_recipes.py", tmp_path / "trusted_layers.py"
    recipes.write_text("EPOCHS = 2\n")
    layers.write_text("class BatchNormalization: pass\n")
    trusted = {"2024": TrustedLayers(layers, "resnets_utils", ("BatchNormalization",))}

    def code() -> str:   # read when a worker is made, before it first starts
        return ModelWorker(WorkerSettings("none", Limits(), recipes, trusted=trusted)).code

    first = code()
    assert code() == first
    recipes.write_text("EPOCHS = 3\n")
    second = code()
    layers.write_text("class BatchNormalization: epsilon = 1e-6\n")
    assert len({first, second, code()}) == 3
