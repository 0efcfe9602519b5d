"""The terminal table and feedback name the student, not the notebook's file name (#17)."""

from __future__ import annotations

from rich.console import Console

from grader import spec
from grader.report import feedback_text, summary_table
from grader.results import SubmissionResult, TestResult


def render(table) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def test_rows_of_the_readme_layout_name_each_student():
    """submissions/alice/W1A1.ipynb and submissions/bob/W1A1.ipynb: two rows, alice and bob."""
    exercise = spec.load_exercise("conv_step_by_step")
    results = [SubmissionResult(f"submissions/{who}/W1A1.ipynb", "graded", 1.0, exercise.max_score,
                                tests=[TestResult("zero_pad: course example", 1.0, 1.0, "passed")], student=who)
               for who in ("alice", "bob")]
    results.append(SubmissionResult("submissions/carol/W1A1.ipynb", "ungradable", 0, exercise.max_score,
                                    error="not a notebook", student="carol"))
    text = render(summary_table(exercise, results))
    assert [line.split()[1] for line in text.splitlines() if "W1A1" in line or any(
        w in line for w in ("alice", "bob", "carol"))] == ["alice", "bob", "carol"]
    assert "W1A1.ipynb" not in text
    assert feedback_text(results[0]).startswith("'alice' scored ")


def test_a_single_notebook_without_a_student_is_named_as_discover_names_it():
    """A notebook graded on its own (the self-check) has no recorded student: it is named by the
    one rule (text.student_of), the id batch.discover gives a notebook named by itself, its stem."""
    exercise = spec.load_exercise("conv_step_by_step")
    result = SubmissionResult("work/mine.ipynb", "graded", 1.0, exercise.max_score)
    rows = [line.split() for line in render(summary_table(exercise, [result])).splitlines() if "1/70" in line]
    assert [row[1] for row in rows] == ["mine"]
    assert feedback_text(result).startswith("'mine' scored ")
