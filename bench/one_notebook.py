"""One notebook, whole commands: `python grade.py --exercise conv_step_by_step X.ipynb` against bare
nbclient executing the same notebook, each as a process of its own (issue 19's single-notebook goal).

    .venv/bin/python bench/one_notebook.py [--repeats 5] [--sample correct] [--write]

Bare = a new Python that imports nbclient and executes the notebook in a temporary folder holding
the exercise's helper files (what the notebook imports), no checks. Graded = the grader's command
as an instructor types it (bwrap sandbox, every check, a new gradebook each time, nothing cached
in it). The two alternate; best of --repeats each. The grader's examples cache (the property
checks' drawn inputs, kept in the data cache) is emptied before the first graded run, which is
reported apart: the first command on a machine draws them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import HELPERS, ROOT, SAMPLES, write_section

BARE = """
import shutil, sys, tempfile
from pathlib import Path
import nbformat
from nbclient import NotebookClient
with tempfile.TemporaryDirectory() as work:
    for helper in Path(sys.argv[2]).iterdir():
        shutil.copy(helper, Path(work) / helper.name)
    nb = nbformat.read(sys.argv[1], as_version=4)
    NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": work}}).execute()
"""


def run(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{command[:3]} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sample", default="correct")
    p.add_argument("--write", action="store_true", help="write the table to BENCHMARKS.md")
    args = p.parse_args()
    notebook = SAMPLES / f"{args.sample}.ipynb"
    with tempfile.TemporaryDirectory() as scratch:
        cache = Path(scratch) / "cache"
        env = {**os.environ, "CONVGRADE_CACHE": str(cache)}

        def graded() -> float:
            book = Path(tempfile.mkdtemp(dir=scratch)) / "grades.sqlite"
            return run([sys.executable, "grade.py", "--exercise", "conv_step_by_step", str(notebook),
                        "--gradebook", str(book), "--quiet", "--fail-under", "100"], env)  # fails unless full marks

        bare_cmd = [sys.executable, "-c", BARE, str(notebook), str(HELPERS)]
        run(bare_cmd, env)  # warm the disk cache for both
        first = graded()
        bare, later = [], []
        for _ in range(args.repeats):
            bare.append(run(bare_cmd, env))
            later.append(graded())
        shutil.rmtree(cache, ignore_errors=True)
    b, g = min(bare), min(later)
    body = f"""
| one notebook ({args.sample}.ipynb), whole process | time | ratio |
|---|---|---|
| bare nbclient: `python -c <execute it>` (best of {args.repeats}) | {b:.2f} s | 1.00x |
| `python grade.py --exercise conv_step_by_step {args.sample}.ipynb`, first on this machine (examples drawn) | {first:.2f} s | {first / b:.2f}x |
| the same command, examples cached (best of {args.repeats}) | {g:.2f} s | **{g / b:.2f}x** |

Goal (issue 19): within 1.5x of bare nbclient.
"""
    print(body)
    if args.write:
        write_section("One notebook, whole commands (issue 19)", body,
                      f".venv/bin/python bench/one_notebook.py --repeats {args.repeats} --write")


if __name__ == "__main__":
    main()
