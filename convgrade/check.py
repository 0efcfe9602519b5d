"""`convgrade check NOTEBOOK`: a student's self-check, the public checks only, no gradebook."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.text import Text

from grader import notebook, spec
from grader.text import clean_result

from .options import UsageError, add_data, add_exercise, add_limits, add_run, exercise_dirs, load_exercise, run_settings


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog,
                                description="Self-check: run the public checks on your notebook (no gradebook).")
    p.add_argument("notebook", type=Path)
    add_exercise(p, required=False,
                 help_text="exercise name (default: guessed from the functions the notebook defines)")
    add_run(p, "none", "default none: it is your own code on your own machine")
    add_data(p)
    add_limits(p)
    return p


def run(argv: list[str], console: Console, prog: str) -> int:
    args = parser(prog).parse_args(argv)
    if not args.notebook.is_file():
        raise UsageError(f"no such file: {args.notebook}")
    exercise = load_exercise(args.exercise or guess_exercise(args.notebook, exercise_dirs(args)), args)
    settings = run_settings(args, exercise, public_only=True)
    from grader.grading import grade_submission
    from grader.report import feedback_text

    result = grade_submission(args.notebook, exercise, settings)
    console.print(Text(feedback_text(clean_result(result))))
    console.print("(public checks only: the graded run also tests your functions on other inputs)")
    return 0


def guess_exercise(path: Path, dirs: tuple[Path, ...]) -> str:
    """The exercise whose graded items the notebook defines most of (its folder's path)."""
    try:
        nb = notebook.load(path)
    except notebook.Ungradable as exc:
        raise UsageError(f"{path}: {exc}") from None
    roots = {name: spec.find_exercise(name, dirs) for name in spec.available(dirs)}
    scores = {name: sum(bool(notebook.defining_cells(nb, i.name)) for i in spec.load_exercise(str(root)).items)
              for name, root in roots.items()}
    best = max(scores, key=scores.get, default=None)
    if not best or scores[best] == 0:
        raise UsageError("cannot tell which exercise this notebook is; pass --exercise")
    return str(roots[best].resolve())
