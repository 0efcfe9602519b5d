"""What people read: a summary table (one column per graded item) and per-test feedback.

Student text (file names, errors, test outputs) reaches rich only as Text objects, never
inside markup: "[link=...]" or "[/]" in a file name stays literal. In the feedback, whatever
a submission produced is set apart: labelled, and each of its lines quoted with "| ", so an
exception named "All tests passed" or a printed "Score: 70/70" cannot pass for the verdict.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .results import SubmissionResult
from .spec import Exercise
from .text import format_score, student_of


def summary_table(exercise: Exercise, results: list[SubmissionResult]) -> Table:
    table = Table(title=f"{exercise.title} ({exercise.name})", show_lines=False)
    table.add_column("student", overflow="fold")
    table.add_column("score", justify="right")
    for item in exercise.items:
        table.add_column(item.name, justify="right")
    for r in results:
        name = Text(student_of(r))
        if r.status != "graded":
            table.add_row(name, Text(r.status, style="red"), *["-"] * len(exercise.items))
            continue
        scores = r.item_scores()
        cells = []
        for item in exercise.items:
            s, m = scores.get(item.name, (0.0, item.points))
            colour = "green" if s == m else "red" if s == 0 else "yellow"
            cells.append(f"[{colour}]{format_score(s)}/{format_score(m)}[/{colour}]")
        table.add_row(name, f"{format_score(r.score)}/{format_score(r.max_score)}", *cells)
    return table


QUOTE = "| "
ERROR_LABEL = "not graded; the reason (it may quote your notebook):"
OUTPUT_LABEL = "what the check found (your code's values quoted):"
# What the feedback says above a test's output, by its status (passed tests are not listed).
STATUS_LABELS = {"failed": OUTPUT_LABEL,
                 "error": "this check could not be run (0 points; the other checks ran); why (quoted):",
                 "skipped": "not checked (0 points): a check it needs did not pass:"}
NOTEBOOK_LABEL = "your notebook raised or printed:"
GRADED_AS = "graded as:"   # the published version of the assignment the submission was graded as


def _quoted(text: str, indent: str) -> list[str]:
    return [f"{indent}{QUOTE}{line}" for line in (text.splitlines() or [""])]


def feedback_text(result: SubmissionResult) -> str:
    """Plain-text feedback for one submission: every test that did not pass, with its output.

    The first line is the grader's verdict; every line a submission could influence (the
    reason it was not graded, a check's output, notebook errors) comes under a label and
    starts with "| ".
    """
    lines = [f"{student_of(result)!r} scored {format_score(result.score)}/{format_score(result.max_score)}"]
    if result.version:  # the spec's name of the version, not student text
        lines.append(f"  {GRADED_AS} {result.version}")
    if result.error:
        lines.append(f"  {ERROR_LABEL}")
        lines.extend(_quoted(result.error, "    "))
    for t in result.tests:
        if t.status != "passed":
            lines.append(f"- {t.name} (0/{format_score(t.max_score)}): {STATUS_LABELS.get(t.status, OUTPUT_LABEL)}")
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
