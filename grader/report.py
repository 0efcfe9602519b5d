"""What people read: a summary table (one column per graded item) and per-test feedback."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from .results import SubmissionResult
from .spec import Exercise


def _fmt(x: float) -> str:
    return f"{x:g}"


def summary_table(exercise: Exercise, results: list[SubmissionResult]) -> Table:
    table = Table(title=f"{exercise.title} ({exercise.name})", show_lines=False)
    table.add_column("submission", overflow="fold")
    table.add_column("score", justify="right")
    for item in exercise.items:
        table.add_column(item.name, justify="right")
    for r in results:
        name = Path(r.submission).name
        if r.status != "graded":
            table.add_row(name, f"[red]{r.status}[/red]", *["-"] * len(exercise.items))
            continue
        scores = r.item_scores()
        cells = []
        for item in exercise.items:
            s, m = scores.get(item.name, (0.0, item.points))
            colour = "green" if s == m else "red" if s == 0 else "yellow"
            cells.append(f"[{colour}]{_fmt(s)}/{_fmt(m)}[/{colour}]")
        table.add_row(name, f"{_fmt(r.score)}/{_fmt(r.max_score)}", *cells)
    return table


def feedback_text(result: SubmissionResult) -> str:
    """Plain-text feedback for one submission: every failed test with its example."""
    lines = [f"{Path(result.submission).name}: {_fmt(result.score)}/{_fmt(result.max_score)}"]
    if result.error:
        lines.append(f"  not graded: {result.error}")
    for t in result.tests:
        if t.status == "failed":
            lines.append(f"- {t.name} (0/{_fmt(t.max_score)})")
            lines.extend("    " + line for line in t.output.splitlines())
    for e in result.notebook_errors:
        lines.append(f"  note: {e}")
    return "\n".join(lines)


def print_report(console: Console, exercise: Exercise, results: list[SubmissionResult], feedback: bool) -> None:
    console.print(summary_table(exercise, results))
    if feedback:
        for r in results:
            if r.status != "graded" or r.score < r.max_score:
                console.print(feedback_text(r), markup=False, highlight=False)
                console.print()
