"""What a change to the sandbox costs: one conv_step_by_step submission graded by this tree and by
an earlier commit, alternating in one run.

    .venv/bin/python bench/sandbox_cost.py --before 13213b7 --repeats 5

The earlier commit is checked out into a temporary git worktree; each side grades the same
sample in a process of its own (warm: a first grading draws the property checks' examples and is
not counted), `--repeats` times, alternating sides so that a busy machine weighs on both alike.
Reported: the median seconds per submission of each side and their ratio (after / before), with
the split of the current side (kernel start, notebook, checks).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, SAMPLES, write_section

GRADE = """
import json, sys, time
from pathlib import Path
from grader import spec
from grader.grading import grade_submission
exercise = spec.load_exercise("conv_step_by_step")
path, repeats = Path(sys.argv[1]), int(sys.argv[2])
grade_submission(path, exercise, sandbox="bwrap")  # warm-up: examples drawn, imports done
for _ in range(repeats):
    start = time.perf_counter()
    result = grade_submission(path, exercise, sandbox="bwrap")
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "score": result.score, "timings": {k: v for k, v in result.timings.items()
                                                                            if not k.startswith("test: ")}}))
"""


def side(tree: Path, sample: Path) -> dict:
    """One graded submission (after a warm-up) by the grader in `tree`."""
    out = subprocess.run([sys.executable, "-c", GRADE, str(sample), "1"], cwd=tree, check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(tree)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--before", required=True, help="the commit to compare with (e.g. the last one before the change)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sample", default="correct")
    args = p.parse_args()
    sample = SAMPLES / f"{args.sample}.ipynb"
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before_tree), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(args.repeats):
                runs["before"].append(side(before_tree, sample))
                runs["after"].append(side(ROOT, sample))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT, capture_output=True)
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    split = {k: statistics.median(r["timings"].get(k, 0.0) for r in runs["after"])
             for k in ("kernel_start", "notebook", "checks")}
    scores = {k: sorted({r["score"] for r in v}) for k, v in runs.items()}
    body = f"""
One `{args.sample}.ipynb` submission of conv_step_by_step, graded with `--sandbox bwrap` as this user, warm
(each side in a process of its own, after one grading that draws the property checks' examples),
{args.repeats} alternating runs per side; median seconds per submission.

| side | seconds | score |
|---|---|---|
| before ({args.before}) | {median['before']:.2f} | {scores['before']} |
| after (this tree) | {median['after']:.2f} | {scores['after']} |

Ratio after / before: **{median['after'] / median['before']:.2f}**. Split of the current side (median s):
kernel start {split['kernel_start']:.2f}, notebook {split['notebook']:.2f}, checks {split['checks']:.2f}.
"""
    print(body)
    write_section("Cost of the sandbox hardening (issue 14)", body,
                  f".venv/bin/python bench/sandbox_cost.py --before {args.before} --repeats {args.repeats}")


if __name__ == "__main__":
    main()
