#!/usr/bin/env python3
"""ConvGrade command line.

    python grade.py --exercise conv_step_by_step submissions/ --json results.json   # grade a batch
    python grade.py merge grades.sqlite shard-*.sqlite                              # join gradebooks
    python grade.py check my_notebook.ipynb                                         # student self-check
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from grader import device, results, sandbox, spec
from grader.batch import Job, discover, run_batch, shard
from grader.gradebook import Gradebook
from grader.library_log import has_content, library_log
from grader.report import print_report
from grader.text import clean_id, clean_result, clean_text

USAGE_ERROR = 2
BELOW_THRESHOLD = 1
EXPORT_FAILED = 3
LIMIT_OPTIONS = ("cell_timeout", "notebook_timeout", "call_timeout", "grading_timeout", "memory_mb", "processes",
                 "file_size_mb", "disk_mb", "output_mb", "open_files", "cpu_seconds")


class UsageError(Exception):
    pass


def add_limits(p: argparse.ArgumentParser) -> None:
    limits = p.add_argument_group("limits (default: from the exercise spec)")
    limits.add_argument("--cell-timeout", type=float, help="seconds per notebook cell")
    limits.add_argument("--notebook-timeout", type=float, help="seconds for all of the notebook's cells")
    limits.add_argument("--call-timeout", type=float, help="seconds per call of a graded function")
    limits.add_argument("--grading-timeout", type=float, help="seconds for all calls after the notebook ran")
    limits.add_argument("--memory-mb", type=int,
                        help="memory of the whole sandbox (cgroup), and address space of each of its processes")
    limits.add_argument("--processes", type=int, help="processes and threads of the whole sandbox")
    limits.add_argument("--file-size-mb", type=int, help="largest file the kernel may write; also its /tmp size")
    limits.add_argument("--disk-mb", type=int, help="all files of the submission's scratch folder together")
    limits.add_argument("--output-mb", type=float, help="everything the kernel sends over Jupyter in a session")
    limits.add_argument("--open-files", type=int, help="open files of the kernel")
    limits.add_argument("--cpu-seconds", type=int, help="CPU time of the kernel")


def add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, help="the exercise's data folder (default: a generated stand-in)")
    p.add_argument("--data-file", action="append", default=[], metavar="NAME=PATH",
                   help="one of the exercise's data files, e.g. pretrained weights (default: a stand-in)")
    p.add_argument("--weights", type=Path, help="the exercise's pretrained weights file (= --data-file weights=PATH)")


def data_files(args: argparse.Namespace) -> dict[str, Path]:
    """--data-file NAME=PATH (and --weights PATH) as a mapping."""
    files = {}
    for item in args.data_file:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UsageError(f"--data-file {item!r}: expected NAME=PATH")
        files[name] = Path(path)
    if args.weights is not None:
        files["weights"] = args.weights
    return files


def grade_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="grade.py", description="Grade Jupyter notebooks of one exercise.",
                                epilog="Other commands: 'grade.py merge OUT IN...', 'grade.py check NOTEBOOK'.")
    p.add_argument("--exercise", required=True, help=f"exercise name ({', '.join(spec.available())})")
    p.add_argument("submissions", nargs="+", type=Path, help="notebooks, or folders of notebooks")
    p.add_argument("--sandbox", default="bwrap", choices=sandbox.MODES,
                   help="how the student's kernel is isolated (default bwrap; none: no isolation, see README)")
    p.add_argument("--device", default="auto", choices=device.DEVICES, help="where models train and run")
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


class Terminal(io.TextIOBase):
    """What the console writes to: sys.stdout, except that nothing printed can stop a batch.

    A closed pipe (`grade.py ... | head -3`), or any other write error (a full disk, a closed
    stream), points stdout at /dev/null, as Python's docs advise (section "Note on SIGPIPE"),
    and the rest of the output is dropped; a terminal that
    cannot encode a character gets a backslash escape instead of an exception.
    """

    def __init__(self, stream):
        self._stream = stream
        self.gone = False

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                try:
                    self._stream.write(text)
                except UnicodeEncodeError:
                    self._stream.write(text.encode(self.encoding, "backslashreplace").decode(self.encoding))
            except (OSError, ValueError):  # a closed pipe, a full disk, a closed stream
                self._hang_up()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._hang_up()

    def _hang_up(self) -> None:
        self.gone = True
        _stdout_to_devnull(self._stream)


def _stdout_to_devnull(stream) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    stdout = sys.stdout if sys.stdout is not None else open(os.devnull, "w")  # noqa: SIM115 (`>&-`)
    terminal = Terminal(stdout)
    console = Console(file=terminal, width=None if terminal.isatty() else 200)
    commands = {"merge": merge_command, "check": check_command}
    # TensorFlow's start-up lines and the like (theirs, and the batch workers') go to a log file,
    # named at the end; the terminal shows the grader's progress, table and feedback only.
    with library_log() as log:
        try:
            if argv and argv[0] in commands:
                code = commands[argv[0]](argv[1:], console)
            else:
                code = grade_command(argv, console)
        except UsageError as exc:
            console.print(Text("error: ", style="red") + Text(clean_text(str(exc))))
            code = USAGE_ERROR
    if has_content(log):
        console.print(Text(f"Messages of the libraries (TensorFlow's start-up and the like): {log}", style="dim"))
    else:
        log.unlink(missing_ok=True)
    return code


def _exercise(name: str) -> spec.Exercise:
    try:
        return spec.load_exercise(name)
    except spec.SpecError as exc:
        raise UsageError(str(exc)) from None


def _limits(exercise: spec.Exercise, args: argparse.Namespace) -> spec.Limits:
    return exercise.limits.replace(**{name: getattr(args, name) for name in LIMIT_OPTIONS})


def _check_sandbox(mode: str, console: Console, warn: bool = True) -> None:
    try:
        sandbox.check_available(mode)
    except sandbox.SandboxUnavailable as exc:
        raise UsageError(str(exc)) from None
    if mode == "none" and warn:
        console.print(f"[bold red]WARNING[/bold red] {escape(sandbox.UNPROTECTED)}")


def grade_command(argv: list[str], console: Console) -> int:
    args = grade_parser().parse_args(argv)
    exercise = _exercise(args.exercise)
    _check_sandbox(args.sandbox, console)
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
    try:
        args.device = device.resolve(args.device)
        args.data_files = data_files(args)
        if exercise.data is not None:  # an instructor's data is checked (or the stand-ins made) once
            exercise.data.resolve(args.data, args.data_files)
        elif args.data or args.data_files:
            raise spec.SpecError(f"{exercise.name} reads no data (--data, --data-file, --weights)")
    except (device.DeviceUnavailable, spec.SpecError) as exc:
        raise UsageError(str(exc)) from None
    graded = _run(exercise, jobs, args, console)
    failures = write_outputs(args, exercise, graded)  # before anything is printed: output cannot stop it
    print_report(console, exercise, graded, feedback=not args.quiet)
    for failure in failures:
        console.print(Text("export failed: ", style="bold red") + Text(failure))
    if failures:
        return EXPORT_FAILED
    if args.fail_under is not None:
        below = [r for r in graded if r.status != "graded" or 100 * r.score / r.max_score < args.fail_under]
        if below:
            console.print(Text(f"{len(below)} submission(s) below {args.fail_under:g}%: "
                               + ", ".join(r.student for r in below)))
            return BELOW_THRESHOLD
    return 0


def _run(exercise: spec.Exercise, jobs: list[Job], args: argparse.Namespace, console: Console) -> list:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("eta"), TimeRemainingColumn())
    executor, client = None, None
    if args.scheduler:
        from distributed import Client  # optional: only for --scheduler

        client = Client(args.scheduler)
        executor = client.get_executor(**({"resources": {"GPU": 1}} if exercise.requires_gpu else {}))
    try:
        with Gradebook(args.gradebook) as book, Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task(f"grading {exercise.name}", total=len(jobs))

            def on_result(job: Job, result, fresh: bool) -> None:
                progress.advance(task)
                if fresh:
                    progress.console.print(Text(f"  {job.student}: {result.score:g}/{result.max_score:g}"
                                                + ("" if result.status == "graded" else f" ({result.status})")))

            return run_batch(exercise, jobs, book, workers=args.jobs, sandbox=args.sandbox,
                             limits=_limits(exercise, args), force=args.force, executor=executor,
                             device=args.device, data=args.data, data_files=args.data_files,
                             on_result=on_result)
    finally:
        if client is not None:
            client.close()


def write_outputs(args: argparse.Namespace, exercise: spec.Exercise, graded: list) -> list[str]:
    """Every export asked for; one that fails (or fails for some submissions) never stops the
    others. Returns what failed, one line each."""
    from grader import exports, html_report

    writers = [(args.json, lambda: results.write_json(args.json, exercise.name, graded)),
               (args.csv, lambda: exports.write_csv(args.csv, exercise, graded)),
               (args.gradescope, lambda: exports.write_gradescope(args.gradescope, exercise, graded)),
               (args.junit, lambda: exports.write_junit(args.junit, exercise, graded)),
               (args.feedback, lambda: html_report.write_feedback(args.feedback, exercise, graded,
                                                                  args.feedback_format)),
               (args.report, lambda: html_report.write_class_report(args.report, exercise, graded))]
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


def merge_command(argv: list[str], console: Console) -> int:
    p = argparse.ArgumentParser(prog="grade.py merge", description="Join gradebooks (e.g. of CI shards).")
    p.add_argument("output", type=Path, help="gradebook to merge into (created if missing)")
    p.add_argument("inputs", nargs="+", type=Path, help="gradebooks to merge from")
    args = p.parse_args(argv)
    missing = [str(x) for x in args.inputs if not x.is_file()]
    if missing:
        raise UsageError(f"no such gradebook: {', '.join(missing)}")
    with Gradebook(args.output) as book:
        for source in args.inputs:
            console.print(Text(f"{source}: {book.merge_from(source)} submission(s) merged"))
        for exercise, student in book.refused:
            console.print(Text(f"not merged (a field is not of its kind): {exercise} / {clean_id(student)}"))
    return 1 if book.refused else 0


def check_command(argv: list[str], console: Console) -> int:
    p = argparse.ArgumentParser(prog="grade.py check",
                                description="Self-check: run the public checks on your notebook (no gradebook).")
    p.add_argument("notebook", type=Path)
    p.add_argument("--exercise", help="exercise name (default: guessed from the functions the notebook defines)")
    p.add_argument("--sandbox", default="none", choices=sandbox.MODES,
                   help="default none: it is your own code on your own machine")
    p.add_argument("--device", default="auto", choices=device.DEVICES)
    add_data(p)
    add_limits(p)
    args = p.parse_args(argv)
    if not args.notebook.is_file():
        raise UsageError(f"no such file: {args.notebook}")
    _check_sandbox(args.sandbox, console, warn=False)
    exercise = _exercise(args.exercise or guess_exercise(args.notebook))
    from grader.grading import grade_submission
    from grader.report import feedback_text

    try:
        chosen = device.resolve(args.device)
        files = data_files(args)
        if exercise.data is not None:
            exercise.data.resolve(args.data, files)
    except (device.DeviceUnavailable, spec.SpecError) as exc:
        raise UsageError(str(exc)) from None
    result = grade_submission(args.notebook, exercise, sandbox=args.sandbox, limits=_limits(exercise, args),
                              public_only=True, device=chosen, data=args.data, data_files=files)
    console.print(Text(feedback_text(clean_result(result))))
    console.print("(public checks only: the graded run also tests your functions on other inputs)")
    return 0


def guess_exercise(path: Path) -> str:
    """The exercise whose graded items the notebook defines most of."""
    from grader import notebook

    try:
        nb = notebook.load(path)
    except notebook.Ungradable as exc:
        raise UsageError(f"{path}: {exc}") from None
    scores = {name: sum(bool(notebook.defining_cells(nb, i.name)) for i in spec.load_exercise(name).items)
              for name in spec.available()}
    best = max(scores, key=scores.get, default=None)
    if not best or scores[best] == 0:
        raise UsageError("cannot tell which exercise this notebook is; pass --exercise")
    return best


def run(argv: list[str] | None = None) -> int:
    """main() as the command line runs it: a reader that left early costs no traceback."""
    code = main(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left after the last write: nothing more to say
        _stdout_to_devnull(sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(run())
