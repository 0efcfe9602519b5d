"""Batch grading of a class vs bare nbclient execution of the same notebooks; incremental regrade.

    .venv/bin/python bench/batch.py --students 40

Bare nbclient: each notebook executed once, serially, in a fresh kernel, with its helper files
beside it: what running the notebooks costs with nothing checked. ConvGrade: the same notebooks
graded (sandboxed kernels, every check, hypothesis properties) by `grade.py` with --jobs = cores.
Then the same command again after one notebook changed (only that one is regraded).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import median

import nbformat
from nbclient import NotebookClient

from common import HELPERS, ROOT, make_class, timed, write_section
from make_test_cpu import cpu_seconds


def bare_nbclient(paths: list[Path], scratch: Path) -> None:
    for path in paths:
        work = Path(tempfile.mkdtemp(dir=scratch))
        for helper in HELPERS.iterdir():
            shutil.copy(helper, work / helper.name)
        nb = nbformat.read(path, as_version=4)
        # The grader's prelude restores np.float etc.; give bare nbclient the same so it runs the same code.
        nb.cells.insert(0, nbformat.v4.new_code_cell("import numpy as np\nnp.float = float\nnp.int = int"))
        NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": str(work)}}).execute()


def grade(folder: Path, book: Path, jobs: int, cache: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "grade.py"), "--exercise", "conv_step_by_step", str(folder),
                    "--gradebook", str(book), "--jobs", str(jobs), "--quiet"], check=True,
                   stdout=subprocess.DEVNULL, cwd=ROOT, env={**os.environ, "CONVGRADE_CACHE": str(cache)})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--students", type=int, default=40)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=1,
                   help="rounds of (bare, empty cache, kept cache), interleaved; the median of each is shown")
    args = p.parse_args()
    bare, cold, warm, busy, idle = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = make_class(tmp / "class", args.students)
        (tmp / "scratch").mkdir()
        for round_ in range(args.repeats):
            # One round: the three side by side, so a change in the machine's speed between rounds
            # (here up to a third) moves all three alike.
            bare.append(timed(lambda: bare_nbclient(paths, tmp / "scratch")))
            cache = tmp / f"cache{round_}"   # a data cache of its own: the first run starts from nothing
            cold.append(timed(lambda: grade(tmp / "class", tmp / f"first{round_}.sqlite", args.jobs, cache)))
            book = tmp / f"grades{round_}.sqlite"
            before = cpu_seconds(Path("/proc/stat").read_text())
            warm.append(timed(lambda: grade(tmp / "class", book, args.jobs, cache)))
            after = cpu_seconds(Path("/proc/stat").read_text())
            busy.append(after[0] - before[0])
            idle.append(after[1] - before[1])
        t_noop = timed(lambda: grade(tmp / "class", book, args.jobs, cache))
        changed = paths[0]
        changed.write_text(changed.read_text().replace('"cells": [', '"cells": [{"cell_type": "markdown", '
                                                       '"metadata": {}, "source": ["edited"]},', 1))
        t_one = timed(lambda: grade(tmp / "class", book, args.jobs, cache))
    n = args.students
    t_bare, t_cold, t_batch = median(bare), median(cold), median(warm)
    rounds = "" if args.repeats == 1 else (
        f"\nEach figure is the median of {args.repeats} rounds, each round the three runs side by side\n"
        f"(the machine's speed drifts between rounds); the ratios of single rounds: empty cache\n"
        f"{spread(cold, bare)}, kept cache {spread(warm, bare)}.")
    body = f"""
| what ({n} W1A1 notebooks) | wall time | per notebook | vs bare nbclient |
|---|---|---|---|
| bare nbclient, serial, no checks | {t_bare:.1f} s | {t_bare / n:.2f} s | 1.00x |
| ConvGrade batch, --jobs {args.jobs}, sandboxed, all checks, empty data cache | {t_cold:.1f} s | {t_cold / n:.2f} s | {t_cold / t_bare:.2f}x |
| the same class again into a new gradebook (examples, font list, shrink routes kept) | {t_batch:.1f} s | {t_batch / n:.2f} s | {t_batch / t_bare:.2f}x |
| same command again, nothing changed | {t_noop:.1f} s | | {t_noop / t_bare:.2f}x |
| same command again, one notebook changed | {t_one:.1f} s | | {t_one / t_bare:.2f}x |

The notebooks are the bundled gradable samples of conv_step_by_step, cycled (a third of them
with mistakes, whose failing checks shrink counterexamples). The first ConvGrade run starts
from an empty data cache (`CONVGRADE_CACHE` set to a new folder): it draws the property checks'
examples, builds matplotlib's font list and walks every shrink with hypothesis; the second grades
every notebook again (a new gradebook) with what the first kept, as a course's later batches
would. The unchanged rerun only hashes the files and reads the gradebook; the one-notebook rerun
grades exactly one submission. During the kept-cache runs the machine's CPUs were busy
{sum(busy):.1f} s and idle {sum(idle):.1f} s ({100 * sum(busy) / max(sum(busy) + sum(idle), 1e-9):.0f}% busy;
/proc/stat, every process counted).
{rounds}
"""
    print(body)
    repeats = f" --repeats {args.repeats}" if args.repeats != 1 else ""
    write_section("Batch grading vs bare nbclient (issue 6)", body,
                  f".venv/bin/python bench/batch.py --students {n} --jobs {args.jobs}{repeats}")


def spread(runs: list[float], bare: list[float]) -> str:
    """The lowest and highest ratio of a run to its round's bare nbclient run."""
    ratios = [r / b for r, b in zip(runs, bare)]
    return f"{min(ratios):.2f}x to {max(ratios):.2f}x"


if __name__ == "__main__":
    main()
