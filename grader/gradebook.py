"""The gradebook: an embedded SQLite file, one row per submission and one per test.

Written by the batch's main process only, one transaction per submission, so a batch
killed at any point loses at most the submissions in flight and never leaves half a
result; WAL mode and a busy timeout let several batches (shards) write one file.
A submission is keyed by (exercise, student): regrading replaces its row.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from .results import GRADER_FAULT, TEST_STATUSES, SubmissionResult, TestResult

SCHEMA = """
CREATE TABLE IF NOT EXISTS submissions (
    exercise TEXT NOT NULL,
    student TEXT NOT NULL,
    submission TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    grader_version TEXT NOT NULL,
    device TEXT NOT NULL,
    status TEXT NOT NULL,
    score REAL NOT NULL,
    max_score REAL NOT NULL,
    error TEXT,
    duration_s REAL NOT NULL,
    notebook_errors TEXT NOT NULL,
    graded_at REAL NOT NULL,
    timings TEXT NOT NULL DEFAULT '{}',
    environment TEXT NOT NULL DEFAULT '{}',
    settings TEXT NOT NULL DEFAULT '{}',
    version TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (exercise, student)
);
CREATE TABLE IF NOT EXISTS tests (
    exercise TEXT NOT NULL,
    student TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    score REAL NOT NULL,
    max_score REAL NOT NULL,
    status TEXT NOT NULL,
    output TEXT NOT NULL,
    item TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (exercise, student, name),
    FOREIGN KEY (exercise, student) REFERENCES submissions (exercise, student) ON DELETE CASCADE
);
"""

SUBMISSION_COLUMNS = ("exercise", "student", "submission", "content_hash", "spec_hash", "grader_version", "device",
                      "status", "score", "max_score", "error", "duration_s", "notebook_errors", "graded_at", "timings",
                      "environment", "settings", "version")

# A tests row; item '' (a gradebook written before it was recorded): TestResult takes it from the name.
TEST_COLUMNS = ("exercise", "student", "position", "name", "score", "max_score", "status", "output", "item")


@dataclass(frozen=True)
class Provenance:
    """What a stored result was computed from; unchanged provenance means no regrade.

    spec_hash: the hash of the run's settings (settings.RunSettings.hash: the exercise's files and
    references, sandbox, limits, device, tolerances, data by content); settings: their canonical
    JSON, recorded with the result (not compared: the hash stands for it).
    """

    content_hash: str
    spec_hash: str
    grader_version: str
    device: str = "cpu"
    settings: str = "{}"


class Gradebook:
    def __init__(self, path: Path):
        self.path = path
        self.refused: list[tuple[str, str]] = []  # rows of merged gradebooks that were not copied
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA busy_timeout=60000")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(submissions)")}
        for added in ("timings", "environment", "settings"):  # gradebooks written before these were recorded
            if added not in columns:
                self._db.execute(f"ALTER TABLE submissions ADD COLUMN {added} TEXT NOT NULL DEFAULT '{{}}'")
        if "version" not in columns:  # written before the graded version was recorded: ''
            self._db.execute("ALTER TABLE submissions ADD COLUMN version TEXT NOT NULL DEFAULT ''")
        if "item" not in {row[1] for row in self._db.execute("PRAGMA table_info(tests)")}:
            self._db.execute("ALTER TABLE tests ADD COLUMN item TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Gradebook":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def is_current(self, exercise: str, student: str, provenance: Provenance) -> bool:
        row = self._db.execute(
            "SELECT content_hash, spec_hash, grader_version, device, status, error FROM submissions "
            "WHERE exercise=? AND student=?", (exercise, student)).fetchone()
        if row is None or (row[4] == "ungradable" and str(row[5] or "").startswith(GRADER_FAULT)):
            return False  # never graded, or not graded for a fault of the grader's: graded (again)
        return tuple(row[:4]) == (provenance.content_hash, provenance.spec_hash, provenance.grader_version,
                                  provenance.device)

    def record(self, exercise: str, result: SubmissionResult, provenance: Provenance) -> None:
        """Store (or replace) one submission's result and its tests, atomically."""
        row = (exercise, result.student, result.submission, provenance.content_hash, provenance.spec_hash,
               provenance.grader_version, provenance.device, result.status, result.score, result.max_score,
               result.error, result.duration_s, json.dumps(result.notebook_errors), time.time(),
               json.dumps(result.timings), json.dumps(result.environment), provenance.settings, result.version)
        tests = [(exercise, result.student, i, t.name, t.score, t.max_score, t.status, t.output, t.item)
                 for i, t in enumerate(result.tests)]
        self._transaction([row], tests)

    def _transaction(self, submissions: list[tuple], tests: list[tuple]) -> None:
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            for row in submissions:
                cur.execute("DELETE FROM tests WHERE exercise=? AND student=?", row[:2])
                cur.execute(f"INSERT OR REPLACE INTO submissions ({','.join(SUBMISSION_COLUMNS)}) "
                            f"VALUES ({','.join('?' * len(row))})", row)
            cur.executemany(f"INSERT INTO tests ({','.join(TEST_COLUMNS)}) "
                            f"VALUES ({','.join('?' * len(TEST_COLUMNS))})", tests)
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise

    def results(self, exercise: str, students: Iterable[str] | None = None) -> list[SubmissionResult]:
        """Stored results of `exercise` (of `students`, in that order, if given)."""
        rows = self._db.execute(
            "SELECT student, submission, status, score, max_score, error, duration_s, notebook_errors, timings, "
            "environment, version "
            "FROM submissions WHERE exercise=? ORDER BY student", (exercise,)).fetchall()
        by_student = {}
        for student, submission, status, score, max_score, error, duration, nb_errors, timings, env, version in rows:
            tests = [TestResult(*t) for t in self._db.execute(
                "SELECT name, score, max_score, status, output, item FROM tests WHERE exercise=? AND student=? "
                "ORDER BY position", (exercise, student))]
            by_student[student] = SubmissionResult(submission, status, score, max_score, error, tests, duration,
                                                   json.loads(nb_errors), student, json.loads(timings),
                                                   json.loads(env), version)
        if students is None:
            return list(by_student.values())
        return [by_student[s] for s in students if s in by_student]

    def merge_from(self, other: Path) -> int:
        """Copy every submission of another gradebook in; the more recently graded row wins.

        A shard is data, not trusted code: a row whose fields are not of their column's kind
        (text, finite numbers, a known status, a graded_at not in the future) is not copied;
        its (exercise, student) goes to `self.refused`.
        """
        count = 0
        with closing(Gradebook(other)._db) as src:  # (brings an older file's schema up to date)
            for row in src.execute(f"SELECT {','.join(SUBMISSION_COLUMNS)} FROM submissions"):
                tests = src.execute(f"SELECT {','.join(TEST_COLUMNS)} FROM tests WHERE exercise=? AND student=?",
                                    row[:2]).fetchall()
                if not (_valid_submission(row) and all(_valid_test(t) for t in tests)):
                    self.refused.append((str(row[0]), str(row[1])))
                    continue
                mine = self._db.execute("SELECT graded_at FROM submissions WHERE exercise=? AND student=?",
                                        row[:2]).fetchone()
                if mine is not None and mine[0] >= row[SUBMISSION_COLUMNS.index("graded_at")]:
                    continue
                self._transaction([tuple(row)], [tuple(t) for t in tests])
                count += 1
        return count


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _valid_submission(row: tuple) -> bool:
    """A submissions row of SUBMISSION_COLUMNS whose fields are of their column's kind."""
    f = dict(zip(SUBMISSION_COLUMNS, row))
    texts = ("exercise", "student", "submission", "content_hash", "spec_hash", "grader_version", "device",
             "notebook_errors", "timings", "environment", "settings", "version")
    return (all(isinstance(f[k], str) for k in texts) and isinstance(f["error"], str | None)
            and f["status"] in ("graded", "ungradable")
            and all(_number(f[k]) for k in ("score", "max_score", "duration_s", "graded_at"))
            and f["graded_at"] <= time.time() + 86400)


def _valid_test(row: tuple) -> bool:
    """A tests row of TEST_COLUMNS whose fields are of their column's kind."""
    _, _, position, name, score, max_score, status, output, item = row
    return (isinstance(position, int) and isinstance(name, str) and isinstance(output, str) and isinstance(item, str)
            and _number(score) and _number(max_score) and status in TEST_STATUSES)
