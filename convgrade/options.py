"""The command line's options, parsed and validated in one place.

Strings become Paths here (argparse) and nowhere later; the run's settings are built by one
function, run_settings (settings.build_settings), for every command that grades.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

from grader import device, sandbox, spec
from grader.settings import RunSettings, SettingsError, build_settings

LIMIT_OPTIONS = ("cell_timeout", "notebook_timeout", "call_timeout", "grading_timeout", "memory_mb", "processes",
                 "file_size_mb", "disk_mb", "output_mb", "open_files", "cpu_seconds")


class UsageError(Exception):
    """A wrong command line: the message says which option and why (exit status 2)."""


def add_exercise(p: argparse.ArgumentParser, required: bool, help_text: str) -> None:
    p.add_argument("--exercise", required=required, help=help_text)
    p.add_argument("--exercises", action="append", type=Path, default=[], metavar="DIR",
                   help="a folder of exercise folders (spec.toml, checks.py, ... as the bundled ones), searched "
                        f"before ${spec.EXERCISES_ENV} and the bundled exercises; may be repeated")


def add_run(p: argparse.ArgumentParser, default_sandbox: str, sandbox_help: str) -> None:
    p.add_argument("--sandbox", default=default_sandbox, choices=sandbox.MODES, help=sandbox_help)
    p.add_argument("--device", default="auto", choices=device.DEVICES, help="where models train and run")


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


def exercise_dirs(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """Where this command looks for exercises (--exercises, $CONVGRADE_EXERCISES, the bundled ones)."""
    missing = [str(d) for d in args.exercises if not d.is_dir()]
    if missing:
        raise UsageError(f"--exercises {', '.join(missing)}: not a folder")
    return spec.exercise_dirs(args.exercises, os.environ if environ is None else environ)


def load_exercise(name: str, args: argparse.Namespace) -> spec.Exercise:
    try:
        return spec.load_exercise(name, exercise_dirs(args))
    except spec.SpecError as exc:
        raise UsageError(str(exc)) from None


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


def run_settings(args: argparse.Namespace, exercise: spec.Exercise, public_only: bool = False) -> RunSettings:
    """The run's settings from the command line, validated once (settings.build_settings)."""
    limits = exercise.limits.replace(**{name: getattr(args, name) for name in LIMIT_OPTIONS})
    try:
        return build_settings(exercise, sandbox=args.sandbox, limits=limits, device=args.device, data=args.data,
                              data_files=data_files(args), public_only=public_only)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
