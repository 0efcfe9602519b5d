#!/usr/bin/env python3
"""ConvGrade command line: grade notebooks of one exercise.

    python grade.py --exercise conv_step_by_step submissions/*.ipynb --json results.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from grader import results, sandbox, spec
from grader.grading import grade_submission
from grader.report import print_report

USAGE_ERROR = 2
LIMIT_OPTIONS = ("cell_timeout", "notebook_timeout", "call_timeout", "grading_timeout", "memory_mb", "processes",
                 "file_size_mb", "open_files", "cpu_seconds")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="grade.py", description="Grade Jupyter notebooks of one exercise.")
    p.add_argument("--exercise", required=True, help=f"exercise name ({', '.join(spec.available())})")
    p.add_argument("submissions", nargs="+", type=Path, help="notebooks, or folders of notebooks")
    p.add_argument("--json", type=Path, help="write the results JSON here")
    p.add_argument("--sandbox", default="bwrap", choices=sandbox.MODES,
                   help="how the student's kernel is isolated (default bwrap; none: no isolation, see README)")
    limits = p.add_argument_group("limits (default: from the exercise spec)")
    limits.add_argument("--cell-timeout", type=float, help="seconds per notebook cell")
    limits.add_argument("--notebook-timeout", type=float, help="seconds for all of the notebook's cells")
    limits.add_argument("--call-timeout", type=float, help="seconds per call of a graded function")
    limits.add_argument("--grading-timeout", type=float, help="seconds for all calls after the notebook ran")
    limits.add_argument("--memory-mb", type=int, help="kernel address space")
    limits.add_argument("--processes", type=int, help="processes of the kernel's user (bwrap, as root)")
    limits.add_argument("--file-size-mb", type=int, help="largest file the kernel may write; also its /tmp size")
    limits.add_argument("--open-files", type=int, help="open files of the kernel")
    limits.add_argument("--cpu-seconds", type=int, help="CPU time of the kernel")
    p.add_argument("--quiet", action="store_true", help="no per-test feedback, only the table")
    return p.parse_args(argv)


def expand(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        out.extend(sorted(p.rglob("*.ipynb")) if p.is_dir() else [p])
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    console = Console(width=None if sys.stdout.isatty() else 200)
    try:
        exercise = spec.load_exercise(args.exercise)
    except spec.SpecError as exc:
        console.print(f"[red]error:[/red] {exc}")
        return USAGE_ERROR
    try:
        sandbox.check_available(args.sandbox)
    except sandbox.SandboxUnavailable as exc:
        console.print(f"[red]error:[/red] {exc}")
        return USAGE_ERROR
    if args.sandbox == "none":
        console.print(f"[bold red]WARNING[/bold red] {sandbox.UNPROTECTED}")
    files = expand(args.submissions)
    missing = [str(p) for p in files if not p.exists()]
    if missing:
        console.print(f"[red]error:[/red] no such file: {', '.join(missing)}")
        return USAGE_ERROR
    limits = exercise.limits.replace(**{name: getattr(args, name) for name in LIMIT_OPTIONS})
    graded = []
    for path in files:
        with console.status(f"grading {path.name}"):
            graded.append(grade_submission(path, exercise, sandbox=args.sandbox, limits=limits))
    print_report(console, exercise, graded, feedback=not args.quiet)
    if args.json:
        results.write_json(args.json, exercise.name, graded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
