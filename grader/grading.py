"""Grading one submission: load, run in its kernel, check every graded item, score.

Each graded item's checks run in this process; the kernel only answers calls. A
fault that takes the kernel down fails the check that caused it (with the cause),
and grading goes on with a restarted kernel.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import nbformat

from . import font_cache, notebook, spec
from .checks import Check, Context, Failure, GraderFault, check_name, required_tests
from .boundary import KernelFault, ProbeError
from .examples_cache import FOLDER as EXAMPLES_FOLDER, ExamplesCache, examples_prefix
from .kernel import KernelSession
from .model_worker import ModelWorker, WorkerSettings
from .notebook_runner import NotebookRun
from .device import device_files, environment
from .device import kernel_env as device_env
from .results import GRADER_FAULT, SubmissionResult, TestResult
from .fork_server import ForkServer
from .sandbox import KERNEL_HOME, MPL_FOLDER, SUBMISSION_NAME, Sandbox, kernel_environment
from .scratch import make_scratch
from .settings import RunSettings, build_settings
from .spec import Exercise, Item


def grade_submission(path: Path, exercise: Exercise, settings: RunSettings | None = None, *,
                     models: ModelWorker | None = None, forks: ForkServer | None = None,
                     **options: Any) -> SubmissionResult:
    """Grade one notebook; never raises for anything the submission does.

    settings: the run's (settings.build_settings: sandbox, limits, device, tolerances, data and
    data files, public_only), passed whole; None: built here for this one notebook from `options`
    (build_settings' keywords; the defaults: bwrap, the spec's limits, cpu, the stand-ins).
    models: the model worker to build the student's models in (model_worker_for; one serves many
    submissions); None: one is started for this submission if the exercise needs it, and closed.
    forks: the fork server the kernel is forked from (fork_server_for; one serves many
    submissions); None: one is made for this submission if the exercise preloads modules, and closed.
    """
    if settings is None:
        settings = build_settings(exercise, **options)
    elif options:
        raise TypeError(f"grade_submission: settings and {', '.join(options)} given; the settings hold them")
    os.environ.update(device_env(settings.device))  # this process builds reference models (before TF is imported)
    started = time.monotonic()
    try:
        nb = notebook.load(path)
    except notebook.Ungradable as exc:
        return SubmissionResult(str(path), "ungradable", 0.0, exercise.max_score, error=str(exc))
    other = notebook.other_version(nb, exercise.other_versions)
    if other is not None:  # said as such, not failed check by check as if the code were wrong
        return SubmissionResult(str(path), "ungradable", 0.0, exercise.max_score,
                                error=f"a different version of the assignment: {other}; this exercise grades "
                                      f"{exercise.graded_versions or 'another version'}")
    variant = notebook.graded_variant(nb, exercise.variants)
    if variant is not None:  # a published version graded with its own helpers, checks and trusted layers
        exercise = exercise.as_version(variant)
    own_worker = models is None or not _has_trusted_layers(models, exercise)
    if own_worker:  # (also when the worker given cannot rebuild this version's own layers)
        models = model_worker_for(exercise, settings)
    own_forks = forks is None
    if own_forks:
        forks = fork_server_for(exercise, settings)
    if forks is not None:
        forks.prestart()   # its imports overlap the notebook's preparation and bwrap's start
    try:
        return _grade(path, nb, exercise, settings, models, started, forks)
    finally:
        if own_worker and models is not None:
            models.close()
        if own_forks and forks is not None:
            forks.close()


def examples_cache_for(exercise: Exercise, settings: RunSettings) -> ExamplesCache:
    """Where this exercise's property checks keep their drawn inputs (examples_cache.py)."""
    from .batch import grader_version   # (batch imports this module)

    return ExamplesCache(spec.DATA_CACHE / exercise.name / EXAMPLES_FOLDER,
                         examples_prefix(settings.exercise_digest, exercise.version, grader_version()))


def _has_trusted_layers(models: ModelWorker, exercise: Exercise) -> bool:
    """Whether `models` can rebuild the graded version's own layers (true when it has none)."""
    settings = getattr(models, "settings", None)
    return exercise.trusted_layers is None or (settings is not None and exercise.version in settings.trusted)


def model_worker_for(exercise: Exercise, settings: RunSettings) -> ModelWorker:
    """A model worker for `exercise`'s checks; it starts on their first model (or early, see
    _grade, for an exercise that trains models: one with a model_recipes.py), never otherwise."""
    return ModelWorker(WorkerSettings(settings.sandbox, settings.limits, exercise.recipes, settings.data,
                                      settings.files(), {**exercise.kernel_env, **device_env(settings.device)},
                                      tuple(device_files(settings.device)),
                                      {v.name: v.trusted_layers for v in exercise.variants if v.trusted_layers}))


def fork_server_for(exercise: Exercise, settings: RunSettings) -> ForkServer | None:
    """A fork server for the kernels of `exercise` (fork_server.py; started at its first kernel),
    or None where kernels start as new processes: no [kernel] preload, no bwrap, not root, or no
    font list for the preloaded matplotlib (font_cache.py)."""
    # As root only for now: the ordinary user's path (the fork joins bwrap's user namespace, then
    # drops the capabilities it gets there) is written but has not run on a test machine yet.
    if not exercise.kernel_preload or settings.sandbox != "bwrap" or os.geteuid() != 0:
        return None
    fonts = font_cache.font_list(spec.DATA_CACHE)
    if fonts is None:
        return None
    return ForkServer(_zygote_env(exercise, settings, fonts.parent), exercise.kernel_preload, fonts.parent)


def _zygote_env(exercise: Exercise, settings: RunSettings, mpl_folder: Path) -> dict[str, str]:
    return {**kernel_environment(True, {**exercise.kernel_env, **device_env(settings.device)}),
            "MPLCONFIGDIR": str(mpl_folder)}


def _suits(forks: ForkServer | None, exercise: Exercise, settings: RunSettings) -> ForkServer | None:
    """`forks` if its zygote was made for this (version of the) exercise's kernels, else None."""
    if forks is None or forks.broken or forks.preload != exercise.kernel_preload or settings.sandbox != "bwrap":
        return None
    return forks if forks.env == _zygote_env(exercise, settings, forks.mpl_folder) else None


def _grade(path: Path, nb, exercise: Exercise, settings: RunSettings, models: ModelWorker | None,
           started: float, forks: ForkServer | None = None) -> SubmissionResult:
    sandbox, limits, device, public_only = settings.sandbox, settings.limits, settings.device, settings.public_only
    data_dir, files = settings.data, settings.files()
    if models is not None and exercise.recipes is not None:
        try:
            models.start()  # TensorFlow's import in the worker overlaps the notebook's run
        except Exception:   # noticed (and reported per check) at its first request
            pass
    # Everything the sandbox writes lives on a filesystem of disk_mb (a tmpfs as root), removed
    # without following links or recursing, whatever the kernel left there.
    with make_scratch(limits.disk_mb * 1024 * 1024) as space:
        scratch = space.path
        timings: dict[str, float] = {}
        box = None
        try:
            clock = time.monotonic()
            _prepare(scratch, exercise, nb, data_dir, files)
            box = Sandbox(sandbox, scratch, limits, {**exercise.kernel_env, **device_env(device)},
                          device_files(device), watch_disk=not space.limited,
                          forks=_suits(forks, exercise, settings))
            needed = tuple(name for item in exercise.items for name in item.required)
            with KernelSession(nb, box, limits, exercise.prelude, skip_cells=exercise.skip_cells,
                               needed=needed) as kernel:
                timings["kernel_start"] = _lap(clock)
                clock = time.monotonic()
                run = kernel.run_notebook()
                timings["notebook"] = _lap(clock)
                clock = time.monotonic()
                ctx = Context(settings.tolerance, settings.max_examples, data_dir, exercise.params, files, models,
                              exercise.version,
                              exercise.trusted_layers.allowlist() if exercise.trusted_layers is not None else {},
                              device=settings.device, examples=examples_cache_for(exercise, settings))
                tests: list[TestResult] = []
                for item in exercise.items:  # a check may require one of an earlier item (Check.requires)
                    tests += _grade_item(item, exercise, kernel, run, nb, ctx, public_only, timings, earlier=tests)
                timings["checks"] = _lap(clock)
        except KernelFault as fault:  # the kernel could not be kept alive at all
            return SubmissionResult(str(path), "ungradable", 0.0, exercise.max_score,
                                    error=f"the notebook could not be run: {fault.cause}", version=exercise.version,
                                    duration_s=round(time.monotonic() - started, 2))
        except GraderFault as exc:  # not the notebook's doing: not graded, graded again next time
            return SubmissionResult(str(path), "ungradable", 0.0, exercise.max_score,
                                    error=f"{GRADER_FAULT}: {exc}",
                                    duration_s=round(time.monotonic() - started, 2))
        except Exception as exc:  # a grader or machine fault: recorded, never a lost batch
            return SubmissionResult(str(path), "ungradable", 0.0, exercise.max_score,
                                    error=f"{GRADER_FAULT}: internal grader error ({type(exc).__name__}: {exc}); "
                                          "please report it with this notebook",
                                    duration_s=round(time.monotonic() - started, 2))
        finally:
            if box is not None:
                box.close()
    result = SubmissionResult(str(path), "graded", round(sum(t.score for t in tests), 2), exercise.max_score,
                              tests=tests, duration_s=round(time.monotonic() - started, 2),
                              notebook_errors=[_describe_cell(c) for c in run.errors()]
                              + [f"cell {i}: not run, the notebook's time limit was reached" for i in run.skipped]
                              + run.notes,
                              timings=timings, environment=environment(device), version=exercise.version)
    return result


def _lap(since: float) -> float:
    return round(time.monotonic() - since, 3)


def _prepare(scratch: Path, exercise: Exercise, nb: nbformat.NotebookNode, data_dir: Path | None,
             files: Mapping[str, Path]) -> None:
    """The kernel's folders in `scratch` (see sandbox.py): work/ (the notebook as graded, the
    helpers, the data), home/ and exchange/.

    Data files go where the spec places them: beside the notebook, or under the kernel's home
    (scratch/home, see sandbox.KERNEL_HOME) for "~/..." places.
    """
    workdir = scratch / "work"
    for folder in (workdir, scratch / "exchange", scratch / KERNEL_HOME):
        folder.mkdir()
    # The exercise's helpers, then the graded version's own (a file of the same name replaces one).
    for folder in (exercise.helpers, *exercise.helper_overlays):
        if folder is None or not folder.is_dir():
            continue
        for helper in folder.iterdir():
            if helper.is_file():
                shutil.copy2(helper, workdir / helper.name)
            elif helper.is_dir():
                shutil.copytree(helper, workdir / helper.name, dirs_exist_ok=True)
    if exercise.data is not None and data_dir is not None:
        shutil.copytree(data_dir, workdir / exercise.data.folder, ignore=shutil.ignore_patterns(".complete"))
        for file_spec in exercise.data.files:
            for place in file_spec.place:
                target = scratch / KERNEL_HOME / place[2:] if place.startswith("~/") else workdir / place
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(files[file_spec.name], target)
    font_cache.give_to_kernel(spec.DATA_CACHE, scratch / KERNEL_HOME / MPL_FOLDER)
    # The notebook as it was read and graded (not the file again: it may have changed since).
    (workdir / SUBMISSION_NAME).write_text(nbformat.writes(nb), encoding="utf-8")


def _grade_item(item: Item, exercise: Exercise, kernel: KernelSession, run: NotebookRun, nb, ctx: Context,
                public_only: bool = False, timings: dict[str, float] | None = None,
                earlier: Sequence[TestResult] = ()) -> list[TestResult]:
    """The item's tests, each with one of four outcomes (0 points unless passed):

    passed; failed: the student's code is wrong (a Failure, or a fault of the kernel it caused; the
    feedback says how), and every check of an item whose function is missing fails so; error: the
    check itself could not run (an unexpected exception in the check or the grader; the other
    checks still run); skipped: a precondition it declares (Check.requires) did not pass.
    A GraderFault is raised: the whole submission is not graded.

    `earlier`: the tests of the items graded before, whose outcomes a check may require. Each
    check's seconds go into `timings` as "test: <name>".
    """
    checks: list[Check] = [c for c in exercise.item_checks(item.name) if c.public or not public_only]
    shares = _shares(item.points, [c.weight for c in checks])
    missing = _missing(item, kernel, run, nb)
    outcomes = {t.name: t.status for t in earlier}
    tests = []
    fault: str | None = None  # a check of this item hung or killed the kernel: don't call it again
    for check, max_score in zip(checks, shares):
        name = check_name(item.name, check.aspect)
        if missing or fault:
            status, output = "failed", missing or f"not run: {fault}"
        elif (unmet := _unmet(required_tests(item.name, check), outcomes)) is not None:
            status, output = unmet
        else:
            clock = time.monotonic()
            ctx.reused.clear()
            try:
                # its own examples scope (examples_cache.py); the same list of reused seconds
                check.run(kernel, ctx if ctx.examples is None else replace(ctx, examples=ctx.examples.scoped(name)))
                status, output = "passed", ""
            except Failure as exc:
                status, output = "failed", str(exc)
            except KernelFault as exc:
                fault = f"{item.name}: {exc.cause}"
                status, output = "failed", fault
            except GraderFault:
                raise  # the whole submission is not graded (grade_submission records why)
            except Exception as exc:  # a grader bug, an answer it did not expect: this check alone
                status, output = "error", f"this check could not be run: {_cause(exc)}"
            finally:
                if timings is not None:
                    timings[f"test: {name}"] = _lap(clock)
                    if ctx.reused:
                        timings[f"reused: {name}"] = round(sum(ctx.reused), 2)
        tests.append(TestResult(name, max_score if status == "passed" else 0.0, max_score, status, output,
                                item=item.name))
        outcomes[name] = status
    return tests


def _unmet(required: Sequence[str], outcomes: Mapping[str, str]) -> tuple[str, str] | None:
    """(outcome, message) of a check whose preconditions (test names) did not all pass, else None."""
    for name in required:
        status = outcomes.get(name)
        if status is None:  # not graded before it (load_exercise refuses such a spec)
            return "error", f"this check could not be run: its precondition {name} was not checked before it"
        if status != "passed":
            why = {"failed": "failed", "error": "could not be run", "skipped": "was not checked"}.get(status, status)
            return "skipped", f"not checked because {name} {why}"
    return None


def _cause(exc: BaseException) -> str:
    """An exception as one bounded line: "KeyError: 'x'" (its type alone if it cannot say more)."""
    try:
        cause = " ".join(str(exc).split())
    except Exception:  # an exception that cannot even say what it is
        cause = ""
    return f"{type(exc).__name__}: {cause[:500]}{'...' if len(cause) > 500 else ''}" if cause \
        else type(exc).__name__


def _shares(points: float, weights: Sequence[float]) -> list[float]:
    """Split an item's points by weight into whole hundredths that add up to the points exactly,
    each within 0.01 of its exact proportion (largest remainders: every share gets the hundredths
    its weight earns whole, the ones left over go to the largest fractions, earlier checks first
    on a tie), never negative. The weights' total must be positive (load_exercise checks)."""
    total = sum(weights)
    hundredths = round(points * 100)
    exact = [hundredths * w / total for w in weights]
    whole = [int(x) for x in exact]  # floor: the weights are not negative
    left = hundredths - sum(whole)
    for i in sorted(range(len(exact)), key=lambda i: (whole[i] - exact[i], i))[:max(0, left)]:
        whole[i] += 1
    return [h / 100 for h in whole]


def _missing(item: Item, kernel: KernelSession, run: NotebookRun, nb) -> str | None:
    """Why `item` cannot be graded (a name it needs is not defined after the notebook ran), or None."""
    try:
        defined = kernel.defined(list(item.required))
        undefined = [n for n in item.required if n not in defined]
    except (KernelFault, ProbeError) as exc:
        return f"{', '.join(item.required)} could not be looked up in the kernel: {exc}"
    if not undefined:
        return None
    name = undefined[0]
    why = f"{name} is not defined after running the notebook."
    cells = notebook.defining_cells(nb, name)
    by_index = {c.index: c for c in run.cells}
    problems = [_describe_cell(by_index[i]) for i in cells if i in by_index and (by_index[i].error or by_index[i].fatal)]
    if not cells:
        why += (f" No cell contains `def {name}(`: was it renamed or deleted?" if name == item.name
                else f" No cell sets `{name} = ...`: was it renamed or deleted?")
    elif problems:
        why += " The cell that defines it failed: " + "; ".join(problems)
    elif any(i in run.skipped for i in cells):
        why += " The cell that defines it was not run: the notebook's time limit was reached."
    return why


def _describe_cell(cell) -> str:
    return f"cell {cell.index}: {cell.fatal or cell.error}"
