"""`convgrade grade`: grade a batch of notebooks of one exercise, record, export, report."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from grader import results, sandbox, spec
from grader.batch import Job, discover, run_batch, shard
from grader.gradebook import Gradebook
from grader.report import print_report
from grader.settings import RunSettings
from grader.text import clean_text, format_score, student_of

from .options import UsageError, add_data, add_exercise, add_limits, add_run, load_exercise, run_settings

BELOW_THRESHOLD = 1
EXPORT_FAILED = 3


def parser(prog: str) -> argparse.ArgumentParser:
    command = prog.removesuffix(" grade")
    p = argparse.ArgumentParser(prog=prog, description="Grade Jupyter notebooks of one exercise"
                                + ("." if command != prog else f" ('{command} grade ...'; 'grade' may be left out)."),
                                epilog=f"Other commands: '{command} check NOTEBOOK' (a student's self-check), "
                                       f"'{command} merge OUT IN...' (join gradebooks).")
    add_exercise(p, required=True, help_text=f"exercise name (bundled: {', '.join(spec.available())}; or one in "
                                             "--exercises DIR), or the path of an exercise folder")
    p.add_argument("submissions", nargs="+", type=Path, help="notebooks, or folders of notebooks")
    add_run(p, "bwrap", "how the student's kernel is isolated (default bwrap; none: no isolation, see README)")
    add_data(p)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes (default: cores)")
    p.add_argument("--scheduler", help="address of a Dask distributed scheduler to send the work to")
    p.add_argument("--gradebook", type=Path, default=Path("grades.sqlite"), help="SQLite gradebook (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="regrade submissions whose result is current")
    p.add_argument("--shard", help="grade only shard K of N (K/N, 1-based), split by student id")
    p.add_argument("--student-pattern", help="regex with a group named 'student', searched in each path")
    out = p.add_argument_group("outputs")
    out.add_argument("--json", type=Path, help="the results JSON")
    out.add_argument("--csv", type=Path, help="one row per student, a column per item and per test")
    out.add_argument("--gradescope", type=Path, help="folder: one Gradescope results.json per submission")
    out.add_argument("--junit", type=Path, help="JUnit XML: a testsuite per submission, a testcase per check")
    out.add_argument("--feedback", type=Path, help="folder: one feedback file per student")
    out.add_argument("--feedback-format", choices=("md", "html"), default="md")
    out.add_argument("--report", type=Path, help="the class report (HTML)")
    out.add_argument("--quiet", action="store_true", help="no per-test feedback on the terminal, only the table")
    p.add_argument("--fail-under", type=float, metavar="PERCENT",
                   help=f"exit {BELOW_THRESHOLD} if any submission scores below PERCENT of the maximum")
    add_limits(p)
    return p


def run(argv: list[str], console: Console, prog: str) -> int:
    args = parser(prog).parse_args(argv)
    exercise = load_exercise(args.exercise, args)
    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    try:
        jobs = discover(args.submissions, args.student_pattern)
        if args.shard:
            k, n = (int(x) for x in args.shard.split("/"))
            jobs = shard(jobs, k, n)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{exc}") from None
    settings = run_settings(args, exercise)  # validated once; an instructor's data checked (stand-ins made) once
    if settings.sandbox == "none":
        console.print(f"[bold red]WARNING[/bold red] {escape(sandbox.UNPROTECTED)}")
    graded = _grade(exercise, settings, jobs, args, console)
    failures = write_outputs(args, exercise, settings, graded)  # before anything is printed: output cannot stop it
    console.print(Text(settings.describe(), style="dim"))
    print_report(console, exercise, graded, feedback=not args.quiet)
    for failure in failures:
        console.print(Text("export failed: ", style="bold red") + Text(failure))
    if failures:
        return EXPORT_FAILED
    if args.fail_under is not None:
        below = [r for r in graded if r.status != "graded" or 100 * r.score / r.max_score < args.fail_under]
        if below:
            console.print(Text(f"{len(below)} submission(s) below {args.fail_under:g}%: "
                               + ", ".join(student_of(r) for r in below)))
            return BELOW_THRESHOLD
    return 0


def _grade(exercise: spec.Exercise, settings: RunSettings, jobs: list[Job], args: argparse.Namespace,
           console: Console) -> list:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    executor, client = None, None
    if args.scheduler:
        from distributed import Client  # optional: only for --scheduler

        client = Client(args.scheduler)
        executor = client.get_executor(**({"resources": {"GPU": 1}} if exercise.requires_gpu else {}))
    try:
        # Redrawn at each result, by this thread: no refresh thread, so the grading processes
        # can be forked from this one (batch.can_fork).
        with Gradebook(args.gradebook) as book, Progress(*columns, console=console, transient=True,
                                                         auto_refresh=False) as progress:
            task = progress.add_task(f"grading {exercise.name}", total=len(jobs))
            progress.refresh()

            def on_result(job: Job, result, fresh: bool) -> None:
                progress.advance(task)
                progress.refresh()
                if fresh:
                    score = f"{format_score(result.score)}/{format_score(result.max_score)}"
                    progress.console.print(Text(f"  {job.student}: {score}"
                                                + ("" if result.status == "graded" else f" ({result.status})")))

            return run_batch(exercise, jobs, book, settings, workers=args.jobs, force=args.force, executor=executor,
                             on_result=on_result, fork=True)
    finally:
        if client is not None:
            client.close()


def write_outputs(args: argparse.Namespace, exercise: spec.Exercise, settings: RunSettings, graded: list) -> list[str]:
    """Every export asked for; one that fails (or fails for some submissions) never stops the
    others. Returns what failed, one line each."""
    from grader import exports, html_report

    writers = [(args.json, lambda: results.write_json(args.json, exercise.name, graded)),
               (args.csv, lambda: exports.write_csv(args.csv, exercise, graded)),
               (args.gradescope, lambda: exports.write_gradescope(args.gradescope, exercise, graded)),
               (args.junit, lambda: exports.write_junit(args.junit, exercise, graded)),
               (args.feedback, lambda: html_report.write_feedback(args.feedback, exercise, graded,
                                                                  args.feedback_format)),
               (args.report, lambda: html_report.write_class_report(args.report, exercise, graded,
                                                                    settings=settings.describe()))]
    failures = []
    for target, write in writers:
        if not target:
            continue
        try:
            if target not in (args.gradescope, args.feedback):
                target.parent.mkdir(parents=True, exist_ok=True)
            write()
        except Exception as exc:
            failures.append(clean_text(f"{target}: {type(exc).__name__}: {exc}"))
    return failures
