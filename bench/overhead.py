"""Grading overhead: one W1A1 notebook graded with every check vs executed by bare nbclient.

    .venv/bin/python bench/overhead.py

Both in one run, alternating, best of --repeats. Graded = `grade_submission` (bwrap sandbox,
all checks); its own split into kernel start, notebook execution and checks is reported too.
The first grading in a process also draws the property checks' examples (the same for every
submission, then reused): it is reported separately, as the cost of grading a single notebook.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from common import HELPERS, SAMPLES, write_section
from grader import spec
from grader.grading import grade_submission


def bare(path: Path) -> None:
    with tempfile.TemporaryDirectory() as work:
        for helper in HELPERS.iterdir():
            shutil.copy(helper, Path(work) / helper.name)
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                       resources={"metadata": {"path": work}}).execute()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sample", default="correct")
    args = p.parse_args()
    exercise = spec.load_exercise("conv_step_by_step")
    path = SAMPLES / f"{args.sample}.ipynb"
    bare_times, graded_times, phases = [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        bare(path)
        bare_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = grade_submission(path, exercise)
        graded_times.append(time.perf_counter() - start)
        phases.append(result.timings)
    b, g, first = min(bare_times), min(graded_times[1:] or graded_times), graded_times[0]
    split = {k: statistics.median(t[k] for t in phases[1:] or phases) for k in phases[0]}
    body = f"""
| one notebook ({args.sample}.ipynb) | time | ratio |
|---|---|---|
| bare nbclient execution (best of {args.repeats}) | {b:.2f} s | 1.00x |
| ConvGrade, all checks, bwrap sandbox: first in its process (examples drawn) | {first:.2f} s | {first / b:.2f}x |
| ConvGrade, the same, next submissions (best of {args.repeats - 1}; a batch's steady state) | {g:.2f} s | {g / b:.2f}x |

ConvGrade's time split (median of the later runs): kernel start {split['kernel_start']:.2f} s,
notebook {split['notebook']:.2f} s, checks {split['checks']:.2f} s; first run's checks
{phases[0]['checks']:.2f} s. Goal: at most 1.5x.
"""
    print(body)
    write_section("Grading overhead on one notebook (issue 7)", body,
                  f".venv/bin/python bench/overhead.py --repeats {args.repeats}")


if __name__ == "__main__":
    main()
