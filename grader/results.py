"""The results contract: one SubmissionResult per notebook, JSON that other tools read.

Keep the field names: {"exercise", "submissions": [{"submission", "status", "score",
"max_score", "error", "tests": [{"name", "score", "max_score", "status", "output"}]}]}.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass
class TestResult:
    name: str
    score: float
    max_score: float
    status: Literal["passed", "failed"]
    output: str = ""

    __test__ = False  # not a pytest test class


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

    def item_scores(self) -> dict[str, tuple[float, float]]:
        """score/max per graded item (a test "f: aspect" belongs to item f)."""
        out: dict[str, tuple[float, float]] = {}
        for t in self.tests:
            item = t.name.split(":", 1)[0]
            s, m = out.get(item, (0.0, 0.0))
            out[item] = (s + t.score, m + t.max_score)
        return out


def to_json(exercise: str, results: list[SubmissionResult]) -> dict[str, Any]:
    return {"exercise": exercise, "submissions": [asdict(r) for r in results]}


def write_json(path: Path, exercise: str, results: list[SubmissionResult]) -> None:
    path.write_text(json.dumps(to_json(exercise, results), indent=2) + "\n", encoding="utf-8")


def from_json(doc: dict[str, Any]) -> list[SubmissionResult]:
    out = []
    for s in doc["submissions"]:
        tests = [TestResult(**t) for t in s.get("tests", [])]
        out.append(SubmissionResult(**{**s, "tests": tests}))
    return out
