"""Grading many submissions: discover, skip what is already graded, fan out, record.

Work goes to a pool of worker processes (or a Dask cluster); results come back to
this process, which alone writes the gradebook, one transaction per submission as
it completes. A batch killed at any point and run again grades each submission
exactly once: finished ones are current in the gradebook and are skipped.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import stat
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import grader

from .gradebook import Gradebook, Provenance
from .results import SubmissionResult
from .settings import RunSettings, build_settings, load_run_exercise, on_this_machine, tree_digest
from .spec import Exercise
from .text import MAX_ID, clean_id, clean_result, path_id


REFUSED = "refused"  # the content hash of a job that is never read


@dataclass(frozen=True)
class Job:
    path: Path
    student: str
    content_hash: str
    refused: str | None = None  # why it is recorded ungradable without being graded


# -- discovery ------------------------------------------------------------------------------------
def discover(paths: Iterable[Path], pattern: str | None = None) -> list[Job]:
    """Submissions under `paths`, each with a student id (unique) and a content hash.

    A file named on the command line is its own student (its stem); inside a folder, a
    notebook in a sub-folder belongs to that sub-folder's name (one folder per student),
    one at the top to its stem. `pattern`, a regex with a group named `student`, searched
    in the path relative to the folder, overrides that.

    Ids are cleaned (text.clean_id) and then made unique by construction (unique_ids): a
    student's second notebook is "alice~2" unless some folder is literally named "alice~2",
    in which case it is "alice~3". A notebook under a folder that is (or lies behind) a
    symbolic link leading outside that folder is kept as a job but refused: it is recorded
    ungradable, never read.
    """
    regex = re.compile(pattern) if pattern else None
    found: list[tuple[Path, str, str | None]] = []  # (path, raw id, why it is refused)
    for root in paths:
        if root.is_dir():
            inside = root.resolve()
            for path in sorted(root.rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in path.parts:
                    found.append((path, student_id(path.relative_to(root), regex), _leads_outside(path, root, inside)))
        else:
            found.append((root, student_id(Path(root.name), regex), None))
    ids = unique_ids([clean_id(student) for _, student, _ in found])
    return [Job(path, student, REFUSED if refused else file_hash(path), refused)
            for (path, _, refused), student in zip(found, ids)]


def _leads_outside(path: Path, root: Path, inside: Path) -> str | None:
    """Why `path` is refused: it resolves (through a symlink) outside the submissions folder."""
    try:
        real = path.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return f"refused: {path} is a symbolic link that cannot be followed ({exc})"
    if real.is_relative_to(inside):
        return None
    return (f"refused: {path} is a symbolic link (or lies behind one) to {real}, outside the submissions "
            f"folder {root}; submit the notebook itself")


def unique_ids(ids: list[str]) -> list[str]:
    """The ids, in order, with repeats renamed "id~2", "id~3"... skipping any name that is
    itself one of the ids (so a later duplicate never takes a real student's id)."""
    reserved, assigned, out = set(ids), set(), []
    for student in ids:
        candidate, n = student, 1
        while candidate in assigned or (n > 1 and candidate in reserved):
            n += 1
            suffix = f"~{n}"  # the base is cut so that the id stays within clean_id's length
            candidate = f"{student[:MAX_ID - len(suffix)]}{suffix}"
        assigned.add(candidate)
        out.append(candidate)
    return out


def student_id(relative: Path, regex: re.Pattern | None) -> str:
    """The raw (uncleaned) id of a notebook at `relative` under its submissions folder: the
    pattern's `student` group if it matches, else the one rule of text.path_id."""
    if regex is not None:
        match = regex.search(relative.as_posix())
        if match and match.groupdict().get("student"):
            return match["student"]
    return path_id(relative)


def file_hash(path: Path) -> str:
    """sha256 of a regular file's bytes; a FIFO, device or folder is not opened for reading
    (it could block or never end) and an unreadable file hashes to a marker."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return "unreadable"
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return "not-a-file"
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        return h.hexdigest()
    except OSError:
        return "unreadable"
    finally:
        os.close(fd)


def shard(jobs: list[Job], k: int, n: int) -> list[Job]:
    """Shard k of n (1-based): a deterministic split by student id, the same on every machine."""
    if not 1 <= k <= n:
        raise ValueError(f"shard {k}/{n}: need 1 <= K <= N")
    return [j for j in jobs if int(hashlib.sha256(j.student.encode()).hexdigest(), 16) % n == k - 1]


# -- provenance -------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def grader_version() -> str:
    """The package version plus a hash of the grader's source: any change regrades."""
    package = Path(grader.__file__).resolve().parent
    return f"{grader.__version__}+{tree_digest(package.parent, package.rglob('*.py'))}"


# -- running ----------------------------------------------------------------------------------------
def grade_one(settings: RunSettings, path: str, student: str) -> SubmissionResult:
    """The unit of work a worker runs (top-level, picklable): grade one notebook with the run's
    settings (loaded once per process: the exercise, and the data where it lies on this machine).

    The model worker (students' Keras models are built there) is kept for every job of this
    process with the same settings: TensorFlow is imported in it once per grading process."""
    from .grading import grade_submission

    exercise, here = _prepared(settings)
    result = grade_submission(Path(path), exercise, here, models=_model_worker(settings),
                              forks=_fork_server(settings))
    result.student = student
    return result


@lru_cache(maxsize=8)
def _prepared(settings: RunSettings) -> tuple[Exercise, RunSettings]:
    exercise = load_run_exercise(settings)
    return exercise, on_this_machine(settings, exercise)


@lru_cache(maxsize=2)
def _model_worker(settings: RunSettings):
    """This process's model worker for these settings (started on its first model); closed when
    the process ends."""
    import multiprocessing.util

    from .grading import model_worker_for

    exercise, here = _prepared(settings)
    worker = model_worker_for(exercise, here)
    multiprocessing.util.Finalize(worker, worker.close, exitpriority=10)
    return worker


@lru_cache(maxsize=2)
def _fork_server(settings: RunSettings):
    """This process's fork server for these settings' kernels (fork_server.py; its zygote starts
    with the first kernel), or None; closed when the process ends."""
    import multiprocessing.util

    from .grading import fork_server_for

    exercise, here = _prepared(settings)
    forks = fork_server_for(exercise, here)
    if forks is not None:
        multiprocessing.util.Finalize(forks, forks.close, exitpriority=10)
    return forks


def local_executor(jobs: int, fork: bool = False) -> Executor:
    """A pool of `jobs` grading processes: spawned (each starts clean and imports the grader,
    about half a second), or forked from this process when `fork` is asked and can_fork() (they
    start in milliseconds with the grader imported). Only the caller knows that nothing in its
    process may be inherited half-done (the command line, which has run no kernel: fork=True)."""
    method = "fork" if fork and can_fork() else "spawn"
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(method),
                               initializer=_forked_worker if method == "fork" else None)


# Libraries whose native thread pools and state do not survive a fork (a Keras exercise's
# checks.py imports TensorFlow, so its batches spawn).
FORK_UNSAFE_MODULES = ("tensorflow", "torch", "jax")


def can_fork() -> bool:
    """Whether forking this process is safe as far as it can tell: the platform has fork, one
    Python thread runs (no lock another thread holds can be inherited held), no event loop runs,
    no ZeroMQ context was made (a kernel client's) and no library of FORK_UNSAFE_MODULES is loaded."""
    import asyncio
    import sys
    import threading

    if "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() != 1:
        return False
    if any(name in sys.modules for name in FORK_UNSAFE_MODULES):
        return False
    zmq = sys.modules.get("zmq")
    if zmq is not None and getattr(zmq.Context, "_instance", None) is not None:
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def _forked_worker() -> None:
    """A forked worker's Python stderr writes to its descriptor 2, as a spawned one's does (the
    parent's sys.stderr may be its terminal while descriptor 2 is the library log)."""
    import sys

    try:
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, errors="replace")
    except OSError:
        pass


def run_batch(exercise: Exercise, jobs: list[Job], gradebook: Gradebook, settings: RunSettings | None = None, *,
              workers: int = 0, force: bool = False, executor: Executor | None = None,
              on_result: Callable[[Job, SubmissionResult, bool], None] | None = None, fork: bool = False,
              **options: Any) -> list[SubmissionResult]:
    """Grade `jobs` (skipping those already current in the gradebook unless `force`).

    Returns the results of all jobs, in job order (fresh and stored), one per job. Every
    result is cleaned (text.clean_result) before it is recorded. A job refused at discovery,
    or whose student id another job already has (jobs not made by discover), is recorded
    ungradable with the reason, under an id of its own: nothing is ever overwritten. A result
    that cannot be recorded is replaced by an ungradable one saying why (kept in memory if even
    that fails). `on_result(job, result, fresh)` is called as each one is known (for progress
    bars); an exception it raises is ignored, the batch goes on.

    fork: the local grading processes may be forked from this one (local_executor), for a caller
    whose process has run no kernel and started no thread (the command line).

    settings: the run's (settings.build_settings, which the command line calls once); None: built
    here from `options` (build_settings' keywords: sandbox, limits, device, data, data_files).
    Their hash is each result's provenance (with the notebook's hash, the grader's version and
    the device), and their canonical JSON is recorded with it.
    """
    if settings is None:  # (stand-ins made here, once, not by workers racing each other)
        settings = build_settings(exercise, **options)
    elif options:
        raise TypeError(f"run_batch: settings and {', '.join(options)} given; the settings hold them")
    jobs = _distinct(jobs)
    version, shash, recorded = grader_version(), settings.hash, settings.canonical()
    provenance = {j.student: Provenance(j.content_hash, shash, version, settings.device, recorded) for j in jobs}
    todo = [j for j in jobs if force or not gradebook.is_current(exercise.name, j.student, provenance[j.student])]
    by_student = {j.student: j for j in jobs}
    done = by_student.keys() - {j.student for j in todo}
    unrecorded: dict[str, SubmissionResult] = {}

    def tell(job: Job, result: SubmissionResult, fresh: bool) -> None:
        if on_result:
            try:
                on_result(job, result, fresh)
            except Exception:  # a progress display (e.g. a closed pipe) never stops the batch
                pass

    def record(job: Job, result: SubmissionResult) -> None:
        result = clean_result(result)
        result.student = job.student
        try:
            gradebook.record(exercise.name, result, provenance[job.student])
        except Exception as exc:
            result = _crashed(exercise, job, f"the result could not be recorded: {type(exc).__name__}: {exc}")
            try:
                gradebook.record(exercise.name, result, provenance[job.student])
            except Exception:
                unrecorded[job.student] = result
        tell(job, result, True)

    for result in gradebook.results(exercise.name, [j.student for j in jobs if j.student in done]):
        tell(by_student[result.student], clean_result(result), False)
    for job in [j for j in todo if j.refused]:
        record(job, _crashed(exercise, job, job.refused))
    todo = [j for j in todo if not j.refused]

    # A worker that dies breaks its whole pool, and every unfinished job with it. Such jobs are
    # retried in a fresh pool; after a second break each runs alone, so only the notebook that
    # really crashes its worker is recorded as such.
    queue: list[list[Job]] = [todo] if todo else []
    breaks = 0
    while queue:
        batch = queue.pop(0)
        alone = breaks >= 2
        pool = executor or local_executor(1 if alone else (workers or os.cpu_count() or 1), fork)
        retry: list[Job] = []
        try:
            futures: dict[Future, Job] = {
                pool.submit(grade_one, settings, str(j.path), j.student): j for j in batch}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                    if not isinstance(result, SubmissionResult):
                        raise TypeError(f"a worker returned {type(result).__name__}, not a SubmissionResult")
                except BrokenProcessPool:
                    if not alone:
                        retry.append(job)
                        continue
                    result = _crashed(exercise, job, "the grading process crashed on this notebook")
                except Exception as exc:  # a worker-side failure: recorded, never a lost batch
                    result = _crashed(exercise, job, f"grading failed: {type(exc).__name__}: {exc}")
                record(job, result)
        finally:
            if executor is None:
                pool.shutdown(wait=True, cancel_futures=True)
        if retry:
            breaks += 1
            queue.extend([retry] if breaks < 2 else [[j] for j in retry])
    stored = {r.student: r for r in gradebook.results(exercise.name, [j.student for j in jobs])}
    stored.update(unrecorded)
    return [clean_result(stored[j.student]) for j in jobs if j.student in stored]


def _distinct(jobs: list[Job]) -> list[Job]:
    """Jobs with cleaned, distinct ids: a repeated id (possible only in jobs not made by
    discover) is renamed as discover would and its job refused, naming both paths."""
    ids = [clean_id(j.student) for j in jobs]
    unique = unique_ids(ids)
    first: dict[str, Path] = {}
    out = []
    for job, student, new in zip(jobs, ids, unique):
        first.setdefault(student, job.path)
        if new == job.student:
            out.append(job)
        elif new == student:  # only cleaned
            out.append(replace(job, student=new))
        else:
            out.append(replace(job, student=new, content_hash=REFUSED, refused=(
                f"not graded: student id {student!r} is already the id of {first[student]}, "
                f"so {job.path} cannot be recorded under it (give each notebook its own id)")))
    return out


def _crashed(exercise: Exercise, job: Job, why: str) -> SubmissionResult:
    return SubmissionResult(str(job.path), "ungradable", 0.0, exercise.max_score, error=why, student=job.student)
