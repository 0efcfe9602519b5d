"""The results contract: one SubmissionResult per notebook, JSON that other tools read.

Keep the field names: {"schema_version", "exercise", "submissions": [{"submission", "status",
"score", "max_score", "error", "tests": [{"name", "item", "score", "max_score", "status",
"output"}]}]}. It only grows: a new field gets a default (a reader of an older document still
loads it) and a new SCHEMA_VERSION. Version 1 (no schema_version) had no test "item" and only the
statuses "passed" and "failed".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

SCHEMA_VERSION = 2

# A check's outcome. passed: full points; failed: the student's code is wrong (the output says
# how); error: the check itself could not run (the output says why; the other checks ran);
# skipped: a precondition it declares did not pass ("not checked because ..."). Only passed scores.
TestStatus = Literal["passed", "failed", "error", "skipped"]
TEST_STATUSES: tuple[str, ...] = get_args(TestStatus)


@dataclass
class TestResult:
    name: str                # "<item>: <aspect>"
    score: float
    max_score: float
    status: TestStatus
    output: str = ""
    item: str = ""           # the graded item; "" (older results): the part of the name before ":"

    __test__ = False  # not a pytest test class

    def __post_init__(self) -> None:
        if not self.item:
            self.item = self.name.split(":", 1)[0]


# The error of a submission the grader could not grade for a reason of its own or of its machine
# (not the notebook's): recorded, never scored, and graded again by the next batch run.
GRADER_FAULT = "not graded (a fault of the grader or its machine, not of the notebook)"


@dataclass
class SubmissionResult:
    submission: str
    status: Literal["graded", "ungradable"]
    score: float
    max_score: float
    error: str | None = None
    tests: list[TestResult] = field(default_factory=list)
    duration_s: float = 0.0
    notebook_errors: list[str] = field(default_factory=list)
    student: str = ""                 # who submitted it (batch grading derives it from the path)
    timings: dict[str, float] = field(default_factory=dict)  # seconds: kernel_start, notebook, checks, "test: <name>"
    environment: dict[str, str] = field(default_factory=dict)  # device and versions it was graded with
    version: str = ""                 # the published version of the assignment it was graded as ("": the only one)

    def item_scores(self) -> dict[str, tuple[float, float]]:
        """score/max per graded item (TestResult.item)."""
        out: dict[str, tuple[float, float]] = {}
        for t in self.tests:
            s, m = out.get(t.item, (0.0, 0.0))
            out[t.item] = (s + t.score, m + t.max_score)
        return out


def to_json(exercise: str, results: list[SubmissionResult]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "exercise": exercise, "submissions": [asdict(r) for r in results]}


def write_json(path: Path, exercise: str, results: list[SubmissionResult]) -> None:
    path.write_text(json.dumps(to_json(exercise, results), indent=2) + "\n", encoding="utf-8")
