"""What the model worker (issue #15) costs per Keras submission: one submission graded by this tree
and by an earlier commit (students' models built in the grader's process), alternating in one run.

    .venv/bin/python bench/model_worker_cost.py --before f6573fe --exercise resnet50 --repeats 2

The earlier commit is checked out into a temporary git worktree that shares this tree's data
cache (the same stand-ins and cached reference scores, so neither side trains the reference).
Each side grades the exercise's correct sample, every check and the grader's training included,
in a fresh process (the whole cost of one `grade.py` submission: TensorFlow imported by the
grader, and on this side also by the worker, whose start overlaps the notebook's run),
`--repeats` times, alternating sides. Reported: median seconds per submission and the ratio.
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

from common import ROOT, write_section

GRADE = """
import json, sys, time
start = time.perf_counter()
from pathlib import Path
from grader import spec
from grader.grading import grade_submission
exercise = spec.load_exercise(sys.argv[1])
result = grade_submission(exercise.samples / "correct.ipynb", exercise, sandbox="bwrap")
seconds = time.perf_counter() - start
training = sum(v for k, v in result.timings.items() if k.endswith(": training"))
print(json.dumps({"seconds": seconds, "score": result.score, "training": training,
                  "timings": {k: v for k, v in result.timings.items() if not k.startswith("test: ")}}))
"""


def side(tree: Path, exercise: str) -> dict:
    out = subprocess.run([sys.executable, "-c", GRADE, exercise], cwd=tree, check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(tree)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--before", required=True)
    p.add_argument("--exercise", default="resnet50")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    side(ROOT, args.exercise)  # stand-ins made and the reference's score cached, not timed
    with tempfile.TemporaryDirectory() as tmp:
        before_tree = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before_tree), args.before], cwd=ROOT, check=True,
                       capture_output=True)
        (before_tree / ".data-cache").symlink_to(ROOT / ".data-cache")
        try:
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(args.repeats):
                runs["before"].append(side(before_tree, args.exercise))
                runs["after"].append(side(ROOT, args.exercise))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(before_tree)], cwd=ROOT, capture_output=True)
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    training = {k: statistics.median(r["training"] for r in v) for k, v in runs.items()}
    scores = {k: sorted({r["score"] for r in v}) for k, v in runs.items()}
    body = f"""
One `correct.ipynb` submission of {args.exercise}, every check and the grader's training included, each
grading in a fresh process (imports included), {args.repeats} alternating runs per side; median seconds.

| side | seconds per submission | of which the training check | score |
|---|---|---|---|
| before ({args.before}: models built in the grader) | {median['before']:.1f} | {training['before']:.1f} | {scores['before']} |
| after (this tree: the model worker) | {median['after']:.1f} | {training['after']:.1f} | {scores['after']} |

Ratio after / before: **{median['after'] / median['before']:.2f}** (issue #15 allows 1.15).
"""
    print(body)
    write_section(f"Cost of the model worker, {args.exercise} (issue 15)", body,
                  f".venv/bin/python bench/model_worker_cost.py --before {args.before} --exercise {args.exercise} "
                  f"--repeats {args.repeats}")


if __name__ == "__main__":
    main()
