"""The same Keras submission graded on the CPU and on the GPU, side by side (issue 19).

    .venv/bin/python bench/gpu_vs_cpu.py --exercise resnet50
    .venv/bin/python bench/gpu_vs_cpu.py --exercise mobilenet_transfer --sample correct

For an instructor with an NVIDIA GPU (`nvidia-smi -L` lists one, TensorFlow sees it). Grades the
exercise's sample once per device, each with its training scores not cached (so the grader's own
training, the part a GPU speeds up, is timed), and prints the phases and each test's outcome.

Expected outcome: the same status and score on both devices, test by test (the checks compare
with tolerances made for that: a GPU's float32 sums differ in the last bits, never a verdict);
on a GPU the training check is several times faster, kernel start and notebook about the same
(they are dominated by starting Python and importing TensorFlow). If the scores differ, the
script says which tests and exits 1: report it with its output. Without a GPU it says so and
exits 2, grading nothing. With --write the table goes to BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from common import write_section
from grader import device, spec
from grader.grading import grade_submission


def phases(result) -> dict[str, float]:
    t = result.timings
    training = sum(v for k, v in t.items() if k.startswith("test: ") and k.endswith(": training"))
    return {"kernel start": t.get("kernel_start", 0.0), "notebook": t.get("notebook", 0.0),
            "other checks": t.get("checks", 0.0) - training, "training check": training}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exercise", default="resnet50")
    p.add_argument("--sample", default="correct")
    p.add_argument("--write", action="store_true", help="add the table to BENCHMARKS.md")
    args = p.parse_args()
    if not device.gpu_available():
        print("no NVIDIA GPU is visible here (nvidia-smi -L lists none): nothing to compare", file=sys.stderr)
        return 2
    exercise = spec.load_exercise(args.exercise)
    sample = exercise.samples / f"{args.sample}.ipynb"
    if exercise.data is not None:
        exercise.data.resolve()  # the stand-ins exist before timing starts
    results, totals = {}, {}
    cached = spec.DATA_CACHE / args.exercise
    for name in ("cpu", "gpu"):
        # no training score cached at the start of either run: the grader's training is timed
        saved = {f: f.read_bytes() for f in cached.glob("reference_scores*.json")}
        for f in saved:
            f.unlink()
        try:
            start = time.perf_counter()
            results[name] = grade_submission(sample, exercise, device=name)
            totals[name] = time.perf_counter() - start
        finally:
            for f in cached.glob("reference_scores*.json"):
                f.unlink()
            for f, data in saved.items():
                f.write_bytes(data)
    cpu, gpu = results["cpu"], results["gpu"]
    rows = [f"| {label} | {phases(cpu)[label]:.1f} s | {phases(gpu)[label]:.1f} s |" for label in phases(cpu)]
    rows.append(f"| total | {totals['cpu']:.1f} s | {totals['gpu']:.1f} s |")
    rows.append(f"| score | {cpu.score:g}/{cpu.max_score:g} | {gpu.score:g}/{gpu.max_score:g} |")
    differ = [t.name for t, u in zip(cpu.tests, gpu.tests) if (t.status, t.score) != (u.status, u.score)]
    body = (f"| {args.exercise}/{args.sample}.ipynb | CPU | GPU |\n|---|---|---|\n" + "\n".join(rows)
            + f"\n\n{os.cpu_count()} cores; tests that differ between the devices: {', '.join(differ) or 'none'}.\n")
    print(body)
    if args.write:
        write_section(f"One {args.exercise} submission on the CPU and the GPU (issue 19)", body,
                      f".venv/bin/python bench/gpu_vs_cpu.py --exercise {args.exercise} --write")
    return 1 if differ or cpu.status != gpu.status else 0


if __name__ == "__main__":
    sys.exit(main())
