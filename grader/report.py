"""What people read: a summary table (one column per graded item) and per-test feedback.

Student text (file names, errors, test outputs) reaches rich only as Text objects, never
inside markup: "[link=...]" or "[/]" in a file name stays literal. In the feedback, whatever
a submission produced is set apart: labelled, and each of its lines quoted with "| ", so an
exception named "All tests passed" or a printed "Score: 70/70" cannot pass for the verdict.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .results import SubmissionResult
from .spec import Exercise


def _fmt(x: float) -> str:
    return f"{x:g}"


def display_name(result: SubmissionResult) -> str:
    """Who a result is for: the student (batch grading derives it from the path), or for a single
    notebook graded on its own, its file name."""
    return result.student or Path(result.submission).name


def summary_table(exercise: Exercise, results: list[SubmissionResult]) -> Table:
    table = Table(title=f"{exercise.title} ({exercise.name})", show_lines=False)
    table.add_column("student", overflow="fold")
    table.add_column("score", justify="right")
    for item in exercise.items:
        table.add_column(item.name, justify="right")
    for r in results:
        name = Text(display_name(r))
        if r.status != "graded":
            table.add_row(name, Text(r.status, style="red"), *["-"] * len(exercise.items))
            continue
        scores = r.item_scores()
        cells = []
        for item in exercise.items:
            s, m = scores.get(item.name, (0.0, item.points))
            colour = "green" if s == m else "red" if s == 0 else "yellow"
            cells.append(f"[{colour}]{_fmt(s)}/{_fmt(m)}[/{colour}]")
        table.add_row(name, f"{_fmt(r.score)}/{_fmt(r.max_score)}", *cells)
    return table


QUOTE = "| "
ERROR_LABEL = "not graded; the reason (it may quote your notebook):"
OUTPUT_LABEL = "what the check found (your code's values quoted):"
NOTEBOOK_LABEL = "your notebook raised or printed:"


def _quoted(text: str, indent: str) -> list[str]:
    return [f"{indent}{QUOTE}{line}" for line in (text.splitlines() or [""])]


def feedback_text(result: SubmissionResult) -> str:
    """Plain-text feedback for one submission: every failed test with its example.

    The first line is the grader's verdict; every line a submission could influence (the
    reason it was not graded, a check's output, notebook errors) comes under a label and
    starts with "| ".
    """
    lines = [f"{display_name(result)!r} scored {_fmt(result.score)}/{_fmt(result.max_score)}"]
    if result.error:
        lines.append(f"  {ERROR_LABEL}")
        lines.extend(_quoted(result.error, "    "))
    for t in result.tests:
        if t.status == "failed":
            lines.append(f"- {t.name} (0/{_fmt(t.max_score)}): {OUTPUT_LABEL}")
            lines.extend(_quoted(t.output, "    "))
    if result.notebook_errors:
        lines.append(f"  {NOTEBOOK_LABEL}")
        for e in result.notebook_errors:
            lines.extend(_quoted(e, "    "))
    return "\n".join(lines)


def print_report(console: Console, exercise: Exercise, results: list[SubmissionResult], feedback: bool) -> None:
    console.print(summary_table(exercise, results))
    if feedback:
        for r in results:
            if r.status != "graded" or r.score < r.max_score:
                console.print(Text(feedback_text(r)))
                console.print()
