"""A class of Keras submissions graded as one batch: seconds per submission once every
architecture in the class has been seen (issue 19).

    .venv/bin/python bench/keras_class.py --exercise resnet50 --students 40 --jobs 2

The class: the exercise's bundled samples that are graded (not the ungradable ones), cycled to
--students student folders. The grader's caches are a fresh temporary folder (CONVGRADE_CACHE),
holding only the stand-in data (copied from this checkout's cache, made first if missing), so
nothing measured comes from an earlier run:

1. first of each architecture: each distinct sample graded once (`grade.py --jobs J`): every
   training the class needs is done here (the reference's and each other architecture's).
2. the class: all --students graded by `grade.py --jobs J` into a new gradebook. Trainings are
   found in the score cache; the architecture checks (structure, counts, forward pass) run
   once per architecture in each grading process and are reused after that.

Reported: wall time of each phase, seconds per submission of the class, and the class's
split (mean kernel start, notebook, checks; trainings reused and run), from the results JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from common import ROOT, timed, write_section
from grader import spec
from grader.spec import DATA_CACHE


def graded_samples(exercise: spec.Exercise) -> list[Path]:
    expected = tomllib.loads((exercise.samples / "expected.toml").read_text())
    return sorted(p for p in exercise.samples.glob("*.ipynb") if expected[p.stem].get("status") != "ungradable")


def make_class(folder: Path, samples: list[Path], n: int) -> None:
    for i in range(n):
        target = folder / f"student{i:03d}" / samples[i % len(samples)].name
        target.parent.mkdir(parents=True)
        shutil.copy(samples[i % len(samples)], target)


def grade(exercise: str, folder: Path, book: Path, out: Path, jobs: int, cache: Path) -> dict:
    subprocess.run([sys.executable, str(ROOT / "grade.py"), "--exercise", exercise, str(folder), "--gradebook",
                    str(book), "--jobs", str(jobs), "--json", str(out), "--quiet"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL, env={**os.environ, "CONVGRADE_CACHE": str(cache)})
    return json.loads(out.read_text())


def split(results: dict) -> dict[str, float]:
    """Mean phases of the graded submissions, and how many trainings were reused or run."""
    rows = [r for r in results["submissions"] if r["status"] == "graded"]
    mean = {phase: sum(r["timings"].get(phase, 0.0) for r in rows) / len(rows)
            for phase in ("kernel_start", "notebook", "checks")}
    trained = [r for r in rows if any(k.startswith("test: ") and k.endswith(": training") for k in r["timings"])]
    reused = [r for r in trained if any(k.startswith("reused: ") and k.endswith("training") for k in r["timings"])]
    architecture = sum(1 for r in rows for k in r["timings"] if k.startswith("reused: ") and not k.endswith("training"))
    return {**mean, "trainings reused": len(reused), "trainings run": len(trained) - len(reused),
            "architecture checks reused": architecture, "graded": len(rows)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--exercise", default="resnet50")
    p.add_argument("--students", type=int, default=40)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args()
    exercise = spec.load_exercise(args.exercise)
    if exercise.data is not None:
        exercise.data.resolve()  # the stand-ins exist before timing starts
    samples = graded_samples(exercise)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache" / args.exercise
        cache.mkdir(parents=True)
        for standin in (DATA_CACHE / args.exercise).glob("standin-*"):
            shutil.copytree(standin, cache / standin.name, symlinks=True)
        first, everyone = tmp / "first", tmp / "class"
        make_class(first, samples, len(samples))
        make_class(everyone, samples, args.students)
        t_first = timed(lambda: grade(args.exercise, first, tmp / "first.sqlite", tmp / "first.json", args.jobs,
                                      cache.parent))
        first_split = split(json.loads((tmp / "first.json").read_text()))
        t_class = timed(lambda: grade(args.exercise, everyone, tmp / "class.sqlite", tmp / "class.json", args.jobs,
                                      cache.parent))
        class_split = split(json.loads((tmp / "class.json").read_text()))
    per = t_class / args.students
    body = f"""
| {args.exercise}, --jobs {args.jobs} | submissions | wall time | per submission | mean kernel start | mean notebook | mean checks | trainings run | trainings reused | architecture checks reused |
|---|---|---|---|---|---|---|---|---|---|
| first of each architecture (cold caches) | {len(samples)} | {t_first:.1f} s | {t_first / len(samples):.1f} s | {first_split['kernel_start']:.1f} s | {first_split['notebook']:.1f} s | {first_split['checks']:.1f} s | {first_split['trainings run']} | {first_split['trainings reused']} | {first_split['architecture checks reused']} |
| the class (every architecture seen) | {args.students} | {t_class:.1f} s | **{per:.1f} s** | {class_split['kernel_start']:.1f} s | {class_split['notebook']:.1f} s | {class_split['checks']:.1f} s | {class_split['trainings run']} | {class_split['trainings reused']} | {class_split['architecture checks reused']} |

The class: the {len(samples)} graded samples of {args.exercise} cycled (their mistakes included:
failing checks shrink their counterexamples). Phases are means over graded submissions, per
job (the jobs run side by side, so per submission is the wall time over the class size).
Goal (issue 19): at most 10 s per submission after the first of each architecture:
{"met" if per <= 10 else "not met"}.
"""
    print(body)
    write_section(f"A class of {args.exercise} submissions (issue 19)", body,
                  f".venv/bin/python bench/keras_class.py --exercise {args.exercise} --students {args.students} "
                  f"--jobs {args.jobs}")


if __name__ == "__main__":
    main()
