"""Shared fixtures: an in-process student that still crosses the real probe boundary."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

# The grader's Keras is tf_keras (Keras 2): TensorFlow reads this once, at its first import, so
# it is set before any test module can import TensorFlow or tf_keras (a module that imported
# tf_keras first made tensorflow.keras Keras 3 for the rest of its worker's tests).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

from grader import kernel_side, probe  # noqa: E402
from grader.checks import Context
from grader.spec import Exercise, load_exercise

MAX_RESULT_BYTES = 64 << 20


class InProcessStudent:
    """A grader.checks.Student over plain Python functions, without a kernel.

    Every call goes through the same serialisation as a kernel call: probe.write_call into a
    fresh folder, the kernel-side probe runtime (exec'd here, its get_ipython().user_ns holding
    the functions), then probe.read_result. So answers come back as plain data only.
    """

    def __init__(self, functions: Mapping[str, Callable[..., Any]], root: Path):
        shell = SimpleNamespace(user_ns=dict(functions))
        namespace: dict[str, Any] = {"get_ipython": lambda: shell}
        exec(compile(kernel_side.source("probe_runtime"), "probe_runtime.py", "exec"), namespace)
        self._runtime = namespace["__convgrade_call__"]
        self._root = root

    def call(self, function: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        call_dir = Path(tempfile.mkdtemp(dir=self._root))
        try:
            probe.write_call(call_dir, function, tuple(args), dict(kwargs or {}))
            self._runtime(str(call_dir))
            return probe.read_result(call_dir, MAX_RESULT_BYTES)
        finally:
            shutil.rmtree(call_dir, ignore_errors=True)


@pytest.fixture
def make_student(tmp_path: Path) -> Callable[[Mapping[str, Callable[..., Any]]], InProcessStudent]:
    """make_student({"zero_pad": f, ...}) -> a Student whose calls round-trip through the probe."""
    return lambda functions: InProcessStudent(functions, tmp_path)


@pytest.fixture(scope="session")
def conv_exercise() -> Exercise:
    return load_exercise("conv_step_by_step")


@pytest.fixture(scope="session")
def conv_context(conv_exercise: Exercise) -> Context:
    return Context(tolerance=conv_exercise.tolerance, max_examples=conv_exercise.max_examples)


# Tests that start a sandbox of their own (a kernel or a model worker) are slow by definition:
# `make test-fast` starts none. A test that asks for the model worker is marked here, before
# `-m` selects, so no one has to remember the marker.
SANDBOX_FIXTURES = frozenset({"model_worker"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SANDBOX_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        # With pytest-xdist (`make test`: -n auto --dist loadgroup) a file's tests stay on one
        # worker, so its module and session fixtures (a model worker, a graded batch) are made
        # once; a test may name a finer group itself (test_samples: one per exercise).
        if not any(m.name == "xdist_group" for m in item.iter_markers()):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))


# The groups that take longest in `make test`, longest first (measured with pytest-reportlog on
# this 2-core machine, a clean clone: 2-10 minutes each). xdist hands groups out by their number
# of tests; handed out in this order instead, the long ones start at once and the short ones fill
# the gaps at the end, rather than one worker grading a sample batch alone for the last minutes.
LONGEST_GROUPS_FIRST = (
    "samples-resnet50", "samples-mobilenet_transfer", "tests/test_hostile.py", "tests/test_model_worker.py",
    "tests/test_mobilenet_transfer_checks.py", "samples-cnn_arithmetic", "tests/test_mobilenet_standins.py",
    "samples-conv_application", "tests/test_batch.py", "samples-conv_step_by_step",
    "tests/test_cnn_arithmetic_checks.py", "tests/test_conv_step_by_step_checks.py",
)


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if getattr(config.option, "dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class LongestGroupsFirst(LoadGroupScheduling):
        """xdist's loadgroup, its queue of groups put in LONGEST_GROUPS_FIRST's order first (the
        queue is an OrderedDict of group -> tests; the others keep xdist's order after them)."""

        def _assign_work_unit(self, node: Any) -> None:
            if not getattr(self, "_longest_first", False):
                self._longest_first = True
                for group in reversed([g for g in LONGEST_GROUPS_FIRST if g in self.workqueue]):
                    self.workqueue.move_to_end(group, last=False)
            super()._assign_work_unit(node)

    return LongestGroupsFirst(config, log)


def pytest_configure(config: pytest.Config) -> None:
    """pytest 9.2 keeps a test's id where pytest-xdist 3.8 writes its group: with it, --dist
    loadgroup spreads every group over the workers (each makes the group's session fixtures)."""
    if getattr(config.option, "dist", "no") == "loadgroup" and \
            tuple(int(p) for p in pytest.__version__.split(".")[:2]) >= (9, 2):
        raise pytest.UsageError(
            f"pytest-xdist's --dist loadgroup does not group tests under pytest {pytest.__version__}: install "
            "the versions pyproject.toml's test extra names (pip install -e '.[test]')")


@pytest.hookimpl(trylast=True, specname="pytest_collection_modifyitems")
def pytest_collection_modifyitems_check_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On an xdist worker with --dist loadgroup, xdist has by now put each test's group into its
    id ("...@group"); where it could not (a pytest it does not support), a group's tests would be
    spread over workers and its session fixtures (a graded batch, the stand-ins) made on each:
    refuse the run instead of silently doubling its work."""
    if getattr(config.option, "loadgroup", False) and items and not any("@" in item.nodeid for item in items):
        raise pytest.UsageError(
            f"pytest-xdist's --dist loadgroup had no effect with pytest {pytest.__version__}: install the "
            "versions pyproject.toml's test extra names (pip install -e '.[test]')")


@pytest.fixture(autouse=True)
def _fast_tests_start_no_sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked slow that starts a kernel or a model worker fails, saying so (pytest's
    Failed is a BaseException: no `except Exception` in the grader can swallow it)."""
    if request.node.get_closest_marker("slow"):
        return
    from grader import model_worker, notebook_runner

    def refuse(*args: Any, **kwargs: Any) -> None:
        pytest.fail("this test is not marked slow but starts a kernel or a model worker: mark it @pytest.mark.slow")

    monkeypatch.setattr(notebook_runner.NotebookRunner, "start", refuse)
    monkeypatch.setattr(model_worker.ModelWorker, "start", refuse)


@pytest.fixture(scope="session")
def model_worker():
    """model_worker(exercise name or None) -> a sandboxed model worker (grader/model_worker.py) with
    that exercise's recipes and stand-in data, one per exercise for the whole session."""
    from grader.model_worker import ModelWorker, WorkerSettings
    from grader.spec import Limits

    workers: dict[str | None, ModelWorker] = {}

    def get(name: str | None = None) -> ModelWorker:
        if name not in workers:
            if name is None:
                settings = WorkerSettings("bwrap", Limits(memory_mb=16384))
            else:
                exercise = load_exercise(name)
                data, files = exercise.data.resolve() if exercise.data else (None, {})
                settings = WorkerSettings("bwrap", exercise.limits, exercise.recipes, data, files, exercise.kernel_env)
            workers[name] = ModelWorker(settings)
        return workers[name]

    yield get
    for worker in workers.values():
        worker.close()
