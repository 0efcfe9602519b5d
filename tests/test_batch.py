"""Batch grading: discovery, sharding, the gradebook, resuming, parallel and Dask runs."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import grade
from grader import batch, spec
from grader.gradebook import Gradebook, Provenance
from grader.results import SubmissionResult, TestResult

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = spec.EXERCISES_DIR / "conv_step_by_step" / "samples"


@pytest.fixture(scope="module")
def exercise():
    return spec.load_exercise("conv_step_by_step")


def fake_result(student: str, score: float = 5.0) -> SubmissionResult:
    tests = [TestResult("zero_pad: course example", score, 10.0, "passed" if score == 10 else "failed", "out"),
             TestResult("zero_pad: random inputs", 0.0, 10.0, "failed", "minimal example")]
    return SubmissionResult(f"{student}.ipynb", "graded", score, 20.0, None, tests, 1.5, ["cell 3: x"], student)


# -- discovery and sharding ----------------------------------------------------------------------------
def test_students_come_from_folders_files_or_a_pattern(tmp_path):
    for rel in ["alice/W1A1.ipynb", "bob/nested/try2.ipynb", "carol.ipynb", "bob/.ipynb_checkpoints/x.ipynb",
                "hw_dave_final.ipynb"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    assert {j.student for j in batch.discover([tmp_path])} == {"alice", "bob", "carol", "hw_dave_final"}
    by_pattern = {j.student for j in batch.discover([tmp_path], r"hw_(?P<student>[a-z]+)_")}
    assert "dave" in by_pattern and "alice" in by_pattern  # no match: the default rule
    single = batch.discover([tmp_path / "alice" / "W1A1.ipynb"])
    assert [j.student for j in single] == ["W1A1"]


def test_two_notebooks_of_one_student_get_distinct_ids(tmp_path):
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "a.ipynb").write_text("1")
    (tmp_path / "alice" / "b.ipynb").write_text("2")
    jobs = batch.discover([tmp_path])
    assert sorted(j.student for j in jobs) == ["alice", "alice~2"]
    assert len({j.content_hash for j in jobs}) == 2


@settings(max_examples=50, deadline=None)
@given(students=st.lists(st.text(min_size=1, max_size=8), unique=True, max_size=40), n=st.integers(1, 6))
def test_shards_partition_the_batch_deterministically(students, n):
    jobs = [batch.Job(Path(f"{i}.ipynb"), s, "h") for i, s in enumerate(students)]
    shards = [batch.shard(jobs, k, n) for k in range(1, n + 1)]
    assert sorted(j.student for s in shards for j in s) == sorted(students)
    assert shards == [batch.shard(list(reversed(jobs)), k, n)[::-1] for k in range(1, n + 1)]


def test_bad_shard_is_refused():
    with pytest.raises(ValueError):
        batch.shard([], 3, 2)
    assert grade.main(["--exercise", "conv_step_by_step", "--shard", "0/2", str(SAMPLES / "truncated.ipynb"),
                       "--gradebook", "/nonexistent/never-written.sqlite"]) == 2


# -- the gradebook ---------------------------------------------------------------------------------------
def test_gradebook_round_trips_results_and_replaces_on_regrade(tmp_path):
    p = Provenance("h1", "s1", "v1")
    with Gradebook(tmp_path / "g.sqlite") as book:
        book.record("ex", fake_result("alice", 5.0), p)
        book.record("ex", fake_result("bob", 10.0), p)
        book.record("ex", fake_result("alice", 10.0), Provenance("h2", "s1", "v1"))
        got = {r.student: r for r in book.results("ex")}
        assert got["alice"].score == 10.0 and got["alice"].tests == fake_result("alice", 10.0).tests
        assert got["bob"].notebook_errors == ["cell 3: x"]
        assert book.is_current("ex", "alice", Provenance("h2", "s1", "v1"))
        assert not book.is_current("ex", "alice", p)
        assert not book.is_current("ex", "alice", Provenance("h2", "s1", "v2"))
        assert [r.student for r in book.results("ex", ["bob", "alice", "nobody"])] == ["bob", "alice"]
    db = sqlite3.connect(tmp_path / "g.sqlite")
    assert db.execute("SELECT count(*) FROM submissions").fetchone() == (2,)
    assert db.execute("SELECT count(*) FROM tests").fetchone() == (4,)


def _write_many(path: str, prefix: str, n: int) -> None:
    with Gradebook(Path(path)) as book:
        for i in range(n):
            book.record("ex", fake_result(f"{prefix}{i}"), Provenance("h", "s", "v"))


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "g.sqlite")
    Gradebook(Path(path)).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(path, p, 40)) for p in "abc"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    with Gradebook(Path(path)) as book:
        assert len(book.results("ex")) == 120


def test_merge_keeps_the_most_recent_result(tmp_path):
    with Gradebook(tmp_path / "a.sqlite") as a, Gradebook(tmp_path / "b.sqlite") as b:
        a.record("ex", fake_result("alice", 5.0), Provenance("h", "s", "v"))
        b.record("ex", fake_result("bob", 10.0), Provenance("h", "s", "v"))
        time.sleep(0.01)
        b.record("ex", fake_result("alice", 10.0), Provenance("h", "s", "v"))
    assert grade.main(["merge", str(tmp_path / "out.sqlite"), str(tmp_path / "a.sqlite"),
                       str(tmp_path / "b.sqlite")]) == 0
    with Gradebook(tmp_path / "out.sqlite") as out:
        assert {r.student: r.score for r in out.results("ex")} == {"alice": 10.0, "bob": 10.0}
        assert len(out.results("ex")[0].tests) == 2


# -- run_batch, with the grading itself faked (fast) --------------------------------------------------------
def test_current_results_are_not_regraded_unless_forced(tmp_path, exercise, monkeypatch):
    calls = []
    monkeypatch.setattr(batch, "grade_one", lambda ex, path, student, *a: calls.append(student)
                        or fake_result(student))
    for name in "abc":
        (tmp_path / f"{name}.ipynb").write_text(name)
    jobs = batch.discover([tmp_path])
    with Gradebook(tmp_path / "g.sqlite") as book, ThreadPoolExecutor(2) as pool:
        first = batch.run_batch(exercise, jobs, book, executor=pool)
        assert sorted(calls) == ["a", "b", "c"] and [r.student for r in first] == ["a", "b", "c"]
        (tmp_path / "b.ipynb").write_text("changed")
        batch.run_batch(exercise, batch.discover([tmp_path]), book, executor=pool)
        assert sorted(calls) == ["a", "b", "b", "c"]
        batch.run_batch(exercise, jobs, book, executor=pool, force=True)
        assert len(calls) == 7


def test_a_failing_worker_is_recorded_not_lost(tmp_path, exercise, monkeypatch):
    def grade_one(ex, path, student, *a):
        if student == "b":
            raise RuntimeError("worker exploded")
        return fake_result(student)

    monkeypatch.setattr(batch, "grade_one", grade_one)
    for name in "abc":
        (tmp_path / f"{name}.ipynb").write_text(name)
    with Gradebook(tmp_path / "g.sqlite") as book, ThreadPoolExecutor(2) as pool:
        results = {r.student: r for r in batch.run_batch(exercise, batch.discover([tmp_path]), book, executor=pool)}
    assert results["b"].status == "ungradable" and "worker exploded" in results["b"].error
    assert results["a"].status == results["c"].status == "graded"


# -- real grading (slow) ---------------------------------------------------------------------------------------
SAMPLE_SET = ["correct", "pool_ignores_example_index", "truncated", "syntax_error_in_one_cell"]


@pytest.fixture(scope="module")
def serial_scores(exercise):
    from grader.grading import grade_submission

    return {s: grade_submission(SAMPLES / f"{s}.ipynb", exercise).score for s in SAMPLE_SET}


@pytest.mark.slow
def test_parallel_batch_matches_one_by_one_grading(tmp_path, exercise, serial_scores):
    jobs = batch.discover([SAMPLES / f"{s}.ipynb" for s in SAMPLE_SET])
    with Gradebook(tmp_path / "g.sqlite") as book:
        results = batch.run_batch(exercise, jobs, book, workers=2)
    assert {r.student: r.score for r in results} == serial_scores


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_results(tmp_path, exercise, serial_scores):
    distributed = pytest.importorskip("distributed")
    jobs = batch.discover([SAMPLES / f"{s}.ipynb" for s in SAMPLE_SET])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client, Gradebook(tmp_path / "g.sqlite") as book:
        results = batch.run_batch(exercise, jobs, book, executor=client.get_executor())
    assert {r.student: r.score for r in results} == serial_scores


@pytest.mark.slow
def test_a_killed_batch_resumes_and_grades_each_submission_exactly_once(tmp_path):
    folder = tmp_path / "subs"
    for i in range(8):
        (folder / f"student{i}").mkdir(parents=True)
        shutil.copy(SAMPLES / ("correct.ipynb" if i % 2 else "stride_off_by_one.ipynb"),
                    folder / f"student{i}" / "W1A1.ipynb")
    book = tmp_path / "g.sqlite"
    cmd = [sys.executable, "grade.py", "--exercise", "conv_step_by_step", str(folder), "--gradebook", str(book),
           "--jobs", "2", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if book.exists() and _rows(book) >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _rows(book)
    assert 2 <= done_before < 8, "the kill should land mid-batch"

    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    fresh = [line for line in rerun.stdout.splitlines() if line.strip().startswith("student") and ":" in line]
    assert len(fresh) == 8 - done_before, rerun.stdout  # only the missing ones were graded
    db = sqlite3.connect(book)
    assert db.execute("SELECT count(*), count(DISTINCT student) FROM submissions").fetchone() == (8, 8)
    per_student = dict(db.execute("SELECT student, count(*) FROM tests GROUP BY student").fetchall())
    assert set(per_student.values()) == {18}
    scores = dict(db.execute("SELECT student, score FROM submissions").fetchall())
    # the same notebook, graded before or after the kill, gets the same score; the correct one all of it
    full = spec.load_exercise("conv_step_by_step").max_score
    assert {scores[f"student{i}"] for i in range(1, 8, 2)} == {full}
    wrong = {scores[f"student{i}"] for i in range(0, 8, 2)}
    assert len(wrong) == 1 and 0 < wrong.pop() < full


def _rows(book: Path) -> int:
    try:
        with sqlite3.connect(book, timeout=5) as db:
            return db.execute("SELECT count(*) FROM submissions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.slow
def test_fail_under_and_self_check(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--exercise", "conv_step_by_step", str(SAMPLES / "correct.ipynb"), str(SAMPLES / "stride_off_by_one.ipynb"),
            "--gradebook", str(tmp_path / "g.sqlite"), "--quiet"]
    assert grade.main(args + ["--fail-under", "95"]) == 1
    assert "stride_off_by_one" in capsys.readouterr().out
    assert grade.main(args + ["--fail-under", "90"]) == 0
    assert grade.main(["check", str(SAMPLES / "stride_off_by_one.ipynb")]) == 0
    out = capsys.readouterr().out
    assert "conv_forward: course example" in out and "random inputs" not in out
    assert not (tmp_path / "grades.sqlite").exists()  # the self-check wrote no gradebook


@pytest.mark.slow
def test_every_export_is_written_from_one_batch(tmp_path):
    import csv
    import json
    import xml.etree.ElementTree as ET

    out = tmp_path / "out"
    code = grade.main(["--exercise", "conv_step_by_step", str(SAMPLES / "correct.ipynb"),
                       str(SAMPLES / "stride_off_by_one.ipynb"), str(SAMPLES / "truncated.ipynb"),
                       "--gradebook", str(tmp_path / "g.sqlite"), "--quiet", "--jobs", "2",
                       "--csv", str(out / "grades.csv"), "--junit", str(out / "junit.xml"),
                       "--gradescope", str(out / "gs"), "--feedback", str(out / "feedback"),
                       "--report", str(out / "report.html"), "--json", str(out / "results.json")])
    assert code == 0
    rows = {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}
    assert float(rows["correct"]["score"]) == 70 and rows["truncated"]["status"] == "ungradable"
    suites = ET.parse(out / "junit.xml").getroot()
    assert suites.get("errors") == "1" and int(suites.get("failures")) >= 1
    assert json.loads((out / "gs" / "correct" / "results.json").read_text())["score"] == 70
    assert {p.stem for p in (out / "feedback").iterdir()} == {"correct", "stride_off_by_one", "truncated"}
    assert "conv_forward" in (out / "feedback" / "stride_off_by_one.md").read_text()
    assert "<img" in (out / "report.html").read_text()
    doc = json.loads((out / "results.json").read_text())
    assert doc["submissions"][0]["environment"]["device"] == "cpu"


def test_a_submission_not_graded_for_a_fault_of_the_graders_is_graded_again(tmp_path):
    """A result recorded as not graded for the grader's own fault (the model worker could not
    start, an internal error) is never current: the next batch run grades it again."""
    from grader.gradebook import Gradebook, Provenance
    from grader.results import GRADER_FAULT, SubmissionResult

    provenance = Provenance("hash", "spec", "1", "cpu")
    with Gradebook(tmp_path / "book.sqlite") as book:
        book.record("ex", SubmissionResult("a.ipynb", "ungradable", 0, 10, error=f"{GRADER_FAULT}: no worker",
                                           student="a"), provenance)
        book.record("ex", SubmissionResult("b.ipynb", "ungradable", 0, 10, error="not a notebook", student="b"),
                    provenance)
        assert not book.is_current("ex", "a", provenance)
        assert book.is_current("ex", "b", provenance)


def test_results_graded_with_other_settings_are_not_current(tmp_path, monkeypatch):
    """Stale grades (#17): a result is current only for the settings it was graded with: the data
    and data files by content, the limits and the sandbox (device and the exercise's files were
    already part of it). Identical data in another folder is the same data."""
    exercise = spec.load_exercise("conv_application")
    calls = []
    monkeypatch.setattr(batch, "grade_one", lambda ex, path, student, *a: calls.append(student)
                        or fake_result(student))
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "a.ipynb").write_text("a")
    jobs = batch.discover([tmp_path / "subs"])
    standins, _ = exercise.data.resolve()
    same = shutil.copytree(standins, tmp_path / "same", ignore=shutil.ignore_patterns(".complete"))
    other = shutil.copytree(standins, tmp_path / "other", ignore=shutil.ignore_patterns(".complete"))
    (other / "test_happy.h5").write_bytes((other / "test_happy.h5").read_bytes() + b"\0")
    with Gradebook(tmp_path / "g.sqlite") as book, ThreadPoolExecutor(1) as pool:
        def run(**settings) -> int:
            before = len(calls)
            batch.run_batch(exercise, jobs, book, executor=pool, **settings)
            return len(calls) - before
        assert run() == 1 and run() == 0
        assert run(data=same) == 0                      # the same bytes: the same grade
        assert run(data=other) == 1 and run(data=other) == 0
        assert run(data=other, limits=exercise.limits.replace(memory_mb=1234)) == 1
        assert run(data=other, limits=exercise.limits.replace(memory_mb=1234), sandbox="none") == 1
