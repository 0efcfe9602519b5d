"""`convgrade merge OUT IN...`: join gradebooks (e.g. of CI shards)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.text import Text

from grader.gradebook import Gradebook
from grader.text import clean_id

from .options import UsageError


def parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Join gradebooks (e.g. of CI shards).")
    p.add_argument("output", type=Path, help="gradebook to merge into (created if missing)")
    p.add_argument("inputs", nargs="+", type=Path, help="gradebooks to merge from")
    return p


def run(argv: list[str], console: Console, prog: str) -> int:
    args = parser(prog).parse_args(argv)
    missing = [str(x) for x in args.inputs if not x.is_file()]
    if missing:
        raise UsageError(f"no such gradebook: {', '.join(missing)}")
    with Gradebook(args.output) as book:
        for source in args.inputs:
            console.print(Text(f"{source}: {book.merge_from(source)} submission(s) merged"))
        for exercise, student in book.refused:
            console.print(Text(f"not merged (a field is not of its kind): {exercise} / {clean_id(student)}"))
    return 1 if book.refused else 0
