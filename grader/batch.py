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
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import grader

from .gradebook import Gradebook, Provenance
from .results import SubmissionResult
from .spec import Exercise, Limits, load_exercise

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    path: Path
    student: str
    content_hash: str


# -- discovery ------------------------------------------------------------------------------------
def discover(paths: Iterable[Path], pattern: str | None = None) -> list[Job]:
    """Submissions under `paths`, each with a student id (unique) and a content hash.

    A file named on the command line is its own student (its stem); inside a folder, a
    notebook in a sub-folder belongs to that sub-folder's name (one folder per student),
    one at the top to its stem. `pattern`, a regex with a group named `student`, searched
    in the path relative to the folder, overrides that.
    """
    regex = re.compile(pattern) if pattern else None
    found: list[tuple[Path, str]] = []
    for root in paths:
        if root.is_dir():
            for path in sorted(root.rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in path.parts:
                    found.append((path, student_id(path.relative_to(root), regex)))
        else:
            found.append((root, student_id(Path(root.name), regex)))
    jobs, seen = [], {}
    for path, student in found:
        seen[student] = seen.get(student, 0) + 1
        unique = student if seen[student] == 1 else f"{student}~{seen[student]}"
        jobs.append(Job(path, unique, file_hash(path)))
    return jobs


def student_id(relative: Path, regex: re.Pattern | None) -> str:
    if regex is not None:
        match = regex.search(relative.as_posix())
        if match and match.groupdict().get("student"):
            return match["student"]
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def file_hash(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "unreadable"


def shard(jobs: list[Job], k: int, n: int) -> list[Job]:
    """Shard k of n (1-based): a deterministic split by student id, the same on every machine."""
    if not 1 <= k <= n:
        raise ValueError(f"shard {k}/{n}: need 1 <= K <= N")
    return [j for j in jobs if int(hashlib.sha256(j.student.encode()).hexdigest(), 16) % n == k - 1]


# -- provenance -------------------------------------------------------------------------------------
def _tree_hash(files: Iterable[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


@lru_cache(maxsize=1)
def grader_version() -> str:
    """The package version plus a hash of the grader's source: any change regrades."""
    return f"{grader.__version__}+{_tree_hash((ROOT / 'grader').rglob('*.py'))}"


def spec_hash(exercise: Exercise) -> str:
    """Hash of what defines the exercise's grading: its folder (not samples) and the
    reference modules its checks use."""
    files = [p for p in exercise.root.rglob("*") if p.is_file() and "samples" not in p.relative_to(exercise.root).parts
             and "__pycache__" not in p.parts]
    return _tree_hash(files + _reference_files(exercise))


def _reference_files(exercise: Exercise) -> list[Path]:
    reference = ROOT / "reference"
    files = set()
    for value in vars(exercise.checks).values():
        module = value if isinstance(value, types.ModuleType) else sys.modules.get(getattr(value, "__module__", ""))
        path = Path(getattr(module, "__file__", None) or "/").resolve()
        if reference in path.parents:
            files.add(path)
    return sorted(files)


# -- running ----------------------------------------------------------------------------------------
def grade_one(exercise_name: str, path: str, student: str, sandbox: str, limits: Limits | None,
              device: str = "cpu", data: str | None = None,
              data_files: dict[str, str] | None = None) -> SubmissionResult:
    """The unit of work a worker runs (top-level, picklable): grade one notebook."""
    from .grading import grade_submission

    result = grade_submission(Path(path), _exercise(exercise_name), sandbox=sandbox, limits=limits, device=device,
                              data=Path(data) if data else None,
                              data_files={k: Path(v) for k, v in (data_files or {}).items()})
    result.student = student
    return result


@lru_cache(maxsize=8)
def _exercise(name: str) -> Exercise:
    return load_exercise(name)


def local_executor(jobs: int) -> Executor:
    # spawn: workers start clean (no inherited asyncio loops or kernel clients).
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"))


def run_batch(exercise: Exercise, jobs: list[Job], gradebook: Gradebook, *, workers: int = 0, sandbox: str = "bwrap",
              limits: Limits | None = None, force: bool = False, executor: Executor | None = None,
              device: str = "cpu", data: Path | None = None, data_files: Mapping[str, Path] | None = None,
              on_result: Callable[[Job, SubmissionResult, bool], None] | None = None) -> list[SubmissionResult]:
    """Grade `jobs` (skipping those already current in the gradebook unless `force`).

    Returns the results of all jobs, in job order (fresh and stored). `on_result(job, result,
    fresh)` is called as each one is known (for progress bars).
    """
    if exercise.data is not None:  # stand-ins made here, once, not by workers racing each other
        exercise.data.resolve(data, data_files)
    version, shash = grader_version(), spec_hash(exercise)
    provenance = {j.student: Provenance(j.content_hash, shash, version, device) for j in jobs}
    todo = [j for j in jobs if force or not gradebook.is_current(exercise.name, j.student, provenance[j.student])]
    by_student = {j.student: j for j in jobs}
    done = by_student.keys() - {j.student for j in todo}
    for result in gradebook.results(exercise.name, [j.student for j in jobs if j.student in done]):
        if on_result:
            on_result(by_student[result.student], result, False)

    # A worker that dies breaks its whole pool, and every unfinished job with it. Such jobs are
    # retried in a fresh pool; after a second break each runs alone, so only the notebook that
    # really crashes its worker is recorded as such.
    queue: list[list[Job]] = [todo]
    breaks = 0
    while queue:
        batch = queue.pop(0)
        alone = breaks >= 2
        pool = executor or local_executor(1 if alone else (workers or os.cpu_count() or 1))
        retry: list[Job] = []
        try:
            futures: dict[Future, Job] = {
                pool.submit(grade_one, exercise.name, str(j.path), j.student, sandbox, limits, device,
                            str(data) if data else None, {k: str(v) for k, v in (data_files or {}).items()}): j
                for j in batch}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                except BrokenProcessPool:
                    if not alone:
                        retry.append(job)
                        continue
                    result = _crashed(exercise, job, "the grading process crashed on this notebook")
                except Exception as exc:  # a worker-side failure: recorded, never a lost batch
                    result = _crashed(exercise, job, f"grading failed: {type(exc).__name__}: {exc}")
                gradebook.record(exercise.name, result, provenance[job.student])
                if on_result:
                    on_result(job, result, True)
        finally:
            if executor is None:
                pool.shutdown(wait=True, cancel_futures=True)
        if retry:
            breaks += 1
            queue.extend([retry] if breaks < 2 else [[j] for j in retry])
    return gradebook.results(exercise.name, [j.student for j in jobs])


def _crashed(exercise: Exercise, job: Job, why: str) -> SubmissionResult:
    return SubmissionResult(str(job.path), "ungradable", 0.0, exercise.max_score, error=why, student=job.student)
