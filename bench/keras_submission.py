"""One Keras submission graded end to end, split into its phases (issues 4, 5 and 7).

    .venv/bin/python bench/keras_submission.py --exercise resnet50
    .venv/bin/python bench/keras_submission.py --exercise mobilenet_transfer

Grades the exercise's correct sample with every check, the grader's training included, on
this machine's cores; first with the reference's training score not yet cached (cold: the
reference is trained too, once per TensorFlow version, budget and data set), then warm.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

from common import write_section
from grader import spec
from grader.grading import grade_submission
from grader.spec import DATA_CACHE


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--exercise", default="resnet50")
    p.add_argument("--sample", default="correct")
    args = p.parse_args()
    exercise = spec.load_exercise(args.exercise)
    sample = exercise.samples / f"{args.sample}.ipynb"
    exercise.data.resolve()  # the stand-in data set exists before timing starts
    scores = DATA_CACHE / args.exercise / "reference_scores.json"
    if scores.exists():
        shutil.move(scores, scores.with_suffix(".bak"))
    rows = []
    try:
        for label in ("cold (reference trained too)", "warm (reference score cached)"):
            start = time.perf_counter()
            result = grade_submission(sample, exercise, device="cpu")
            total = time.perf_counter() - start
            t = result.timings
            training = sum(v for k, v in t.items() if k.startswith("test: ") and k.endswith(": training"))
            rows.append(f"| {label} | {result.score:g}/{result.max_score:g} | {t['kernel_start']:.1f} s | "
                        f"{t['notebook']:.1f} s | {t['checks'] - training:.1f} s | {training:.1f} s | {total:.1f} s |")
    finally:
        if scores.with_suffix(".bak").exists():
            shutil.move(scores.with_suffix(".bak"), scores)
    per_test = {t.name: t for t in result.tests}
    body = (f"| {args.exercise}/{args.sample}.ipynb | score | kernel start | notebook (training cells "
            "skipped) | other checks | training check (the grader trains) | total |\n|---|---|---|---|---|---|---|\n"
            + "\n".join(rows) + f"""

{os.cpu_count()} cores, CPU only, bwrap sandbox. Checks graded: {", ".join(per_test)}.
Goal (issues 4 and 5): one submission graded, training check included, in at most 120 s.
""")
    print(body)
    write_section(f"One {args.exercise} submission, phase by phase (issues 4 and 7)", body,
                  f".venv/bin/python bench/keras_submission.py --exercise {args.exercise}")


if __name__ == "__main__":
    main()
