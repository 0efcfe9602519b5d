"""ConvGrade vs the field's tools (nbgrader, Otter-Grader) on the same W1A1 notebooks, in one run.

    bash bench/peers/setup.sh && .venv/bin/python bench/peers.py --students 40

The same class of notebooks (bench/common.make_class: the gradable samples of conv_step_by_step,
cycled) is graded, one tool after the other, by
  * ConvGrade: `grade.py` as bench/batch.py runs it (--jobs = cores, sandboxed, fresh gradebook);
  * nbgrader (`nbgrader autograde`): a course directory under bench/peers/work/nbgrader whose source
    notebook is the course template plus one hidden autograder test cell per (function, aspect);
  * Otter-Grader (`otter run`, one submission per call, no Docker): an autograder zip whose test
    files hold one test case per (function, aspect); run serially, then --otter-jobs at a time.
ConvGrade is also run with --jobs 1, for a
process-for-process comparison with nbgrader's serial autograde.
The peers' tests (bench/peers/peer_checks.py) mirror exercises/conv_step_by_step/checks.py: the
course example per function plus seeded random inputs of the same distributions, compared with
reference/conv_step_by_step.py. Each tool is timed by wall clock around its grading command only;
then every tool's per-function verdicts are compared with samples/expected.toml.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from common import GRADABLE, HELPERS, ROOT, SAMPLES, make_class, timed, write_section

PEERS = ROOT / "bench" / "peers"
VENV = PEERS / ".venv"
WORK = PEERS / "work"
ASSIGNMENT = "W1A1"
sys.path.insert(0, str(PEERS))
import peer_checks  # noqa: E402  (the items, points and aspects shared with the peers' tests)

TITLE = "Peers: nbgrader and Otter-Grader (issue 7)"


# -- environment shared by the peers' kernels ------------------------------------------------------
def peer_env() -> dict[str, str]:
    """The kernel environment ConvGrade gives its kernels (grader/sandbox.py), for the peers' kernels.

    MPLBACKEND=Agg, one BLAS/OpenMP thread, PYTHONHASHSEED=0, and ConvGrade's numpy_legacy prelude
    (np.float etc., aliases only) as an IPython startup file, so course-era code runs the same.
    """
    ipython = WORK / "ipython"
    startup = ipython / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "grader" / "kernel_side" / "numpy_legacy.py", startup / "00-numpy_legacy.py")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "CONVGRADE_", "VIRTUAL_ENV"))}
    env.update({
        "PATH": f"{VENV / 'bin'}:{env.get('PATH', '')}",
        "JUPYTER_PATH": str(VENV / "share" / "jupyter"),   # this venv's python3 kernel, first
        "IPYTHONDIR": str(ipython),
        "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
    })
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, log: Path | None = None) -> None:
    with open(log or os.devnull, "ab") as out:
        proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}" + (f" (log: {log})" if log else ""))


def test_cells() -> list[tuple[str, str, str, float]]:
    """(grade_id, function, aspect, points): one per aspect, the item's points split evenly."""
    cells = []
    for function, points in peer_checks.ITEMS:
        aspects = peer_checks.aspects(function)
        for i, aspect in enumerate(aspects):
            cells.append((f"peer_{function}_{i}", function, aspect, round(points / len(aspects), 4)))
    return cells


# -- ConvGrade ----------------------------------------------------------------------------------
def convgrade(folder: Path, jobs: int, tmp: Path) -> tuple[float, dict[str, set[str]]]:
    book, results = tmp / f"grades-{jobs}.sqlite", tmp / f"results-{jobs}.json"
    seconds = timed(lambda: run([sys.executable, str(ROOT / "grade.py"), "--exercise", "conv_step_by_step",
                                 str(folder), "--gradebook", str(book), "--jobs", str(jobs), "--quiet",
                                 "--json", str(results)], cwd=ROOT))
    failed: dict[str, set[str]] = {}
    subs = json.loads(results.read_text())["submissions"]
    for sub in subs:
        student = Path(sub["submission"]).parent.name
        failed[student] = {t["name"].split(":")[0] for t in sub["tests"] if t["score"] < t["max_score"]}
    CONVGRADE_WORK[jobs] = sum(sub.get("duration_s", 0.0) for sub in subs) / max(1, len(subs))
    return seconds, failed


CONVGRADE_WORK: dict[int, float] = {}  # --jobs -> mean duration_s of one submission (its own timing)


# -- nbgrader ------------------------------------------------------------------------------------
def nbgrader_course() -> Path:
    """Course directory: source notebook with hidden test cells, release, and the submissions."""
    course = WORK / "nbgrader"
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()\n"
        f"c.CourseDirectory.root = {str(course)!r}\n"
        "c.CourseDirectory.course_id = 'convgrade-peers'\n"
        "c.Execute.timeout = 60  # ConvGrade's cell_timeout (spec.toml)\n")
    for helper in HELPERS.iterdir():
        if helper.suffix == ".py":
            shutil.copy(helper, source / helper.name)
    nb = nbformat.read(ROOT / "exercises" / "conv_step_by_step" / "template.ipynb", as_version=4)
    for cell in nb.cells:  # the notebook's own (chaining) test cells stay, worth 0 points
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            meta["points"] = 0
    # Hidden tests at the end of the notebook: they see the whole notebook's last definitions, as
    # ConvGrade's calls do; students would receive them as empty locked cells.
    for grade_id, function, aspect, points in test_cells():
        cell = nbformat.v4.new_code_cell(
            "### BEGIN HIDDEN TESTS\n"
            f"import sys; sys.path.insert(0, {str(PEERS)!r})\n"
            "from peer_checks import check\n"
            f"check({function!r}, {aspect!r}, {function})\n"
            "### END HIDDEN TESTS")
        cell.metadata["nbgrader"] = {"grade": True, "grade_id": grade_id, "locked": True, "points": points,
                                     "solution": False, "schema_version": 3}
        nb.cells.append(cell)
    nbformat.write(nb, source / f"{ASSIGNMENT}.ipynb")
    return course


def nbgrader_submissions(course: Path, paths: list[Path], env: dict[str, str]) -> None:
    """generate_assignment, then each student's notebook as if written in the released notebook:
    the release's (empty) hidden-test cells appended, which autograde fills from the gradebook, and
    the metadata brought to nbgrader's current schema (`nbgrader update`)."""
    nbg, log = str(VENV / "bin" / "nbgrader"), WORK / "nbgrader.log"
    # The course's notebooks carry nbgrader metadata of an old schema: nbgrader's own `update`.
    run([nbg, "update", "source"], course, env, log)
    run([nbg, "generate_assignment", ASSIGNMENT, "--force"], course, env, log)
    release = nbformat.read(course / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb", as_version=4)
    tests = [c for c in release.cells if c.metadata.get("nbgrader", {}).get("grade_id", "").startswith("peer_")]
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        nb.cells.extend(tests)
        target = course / "submitted" / path.parent.name / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        target.parent.mkdir(parents=True)
        nbformat.write(nb, target)
        for helper in HELPERS.iterdir():
            if helper.suffix == ".py":
                shutil.copy(helper, target.parent / helper.name)
    run([nbg, "update", "submitted"], course, env, log)


def nbgrader(course: Path, env: dict[str, str]) -> tuple[float, dict[str, set[str]]]:
    seconds = timed(lambda: run([str(VENV / "bin" / "nbgrader"), "autograde", ASSIGNMENT], course, env,
                                WORK / "nbgrader.log"))
    dump = subprocess.run([str(VENV / "bin" / "python"), str(PEERS / "nbgrader_scores.py"),
                           str(course / "gradebook.db"), ASSIGNMENT, ASSIGNMENT],
                          capture_output=True, text=True, check=True, env=env).stdout
    function_of = {grade_id: function for grade_id, function, _, _ in test_cells()}
    failed: dict[str, set[str]] = {}
    for student, grades in json.loads(dump).items():
        failed[student] = {function_of[name] for name, (score, top) in grades.items()
                           if name in function_of and score < top}
    return seconds, failed


# -- Otter-Grader ----------------------------------------------------------------------------------
def otter_autograder(env: dict[str, str]) -> Path:
    """tests/<function>.py (Otter's exception-based format, one test case per aspect) -> autograder.zip."""
    home = WORK / "otter"
    tests = home / "tests"
    tests.mkdir(parents=True)
    by_function: dict[str, list[tuple[str, float]]] = {}
    for _, function, aspect, points in test_cells():
        by_function.setdefault(function, []).append((aspect, points))
    for function, aspects in by_function.items():
        body = [
            "OK_FORMAT = False",
            "import sys",
            f"sys.path.insert(0, {str(PEERS)!r})",
            "from otter.test_files import test_case",
            "from peer_checks import check",
            f"name = {function!r}",
            "",
        ]
        for i, (aspect, points) in enumerate(aspects):
            body += [f"@test_case(name={f'{function}: {aspect}'!r}, points={points}, hidden=False)",
                     f"def test_{i}({function}):",
                     f"    check({function!r}, {aspect!r}, {function})", ""]
        (tests / f"{function}.py").write_text("\n".join(body))
    files = home / "files"
    files.mkdir()
    for helper in HELPERS.iterdir():
        if helper.suffix == ".py":
            shutil.copy(helper, files / helper.name)
    (home / "otter_config.json").write_text(json.dumps({"pdf": False}))
    run([str(VENV / "bin" / "otter"), "generate", "-t", "tests", "-o", "autograder.zip",
         "--no-requirements", "--no-environment", *[f"files/{p.name}" for p in sorted(files.iterdir())]],
        home, env, WORK / "otter.log")
    return home / "autograder.zip"


def otter(paths: list[Path], autograder: Path, env: dict[str, str], jobs: int, label: str
          ) -> tuple[float, dict[str, set[str]]]:
    out = WORK / "otter" / f"results-{label}"

    def one(path: Path) -> None:
        target = out / path.parent.name
        target.mkdir(parents=True)
        run([str(VENV / "bin" / "otter"), "run", "--no-logo", "-a", str(autograder), "-o", str(target),
             str(path)], path.parent, env, WORK / f"otter-{label}.log")

    def batch() -> None:
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(one, paths))

    seconds = timed(batch)
    failed: dict[str, set[str]] = {}
    for path in paths:
        result = json.loads((out / path.parent.name / "results.json").read_text())
        failed[path.parent.name] = {t["name"].split(":")[0].split(" - ")[0] for t in result["tests"]
                                    if "max_score" in t and t["score"] < t["max_score"]}
    return seconds, failed


# -- verdicts vs expected.toml ------------------------------------------------------------------
def tally(failed: dict[str, set[str]], students: dict[str, str], expected: dict) -> dict:
    graded = {name for name, _ in peer_checks.ITEMS}
    caught = missed = alarms = 0
    per_sample: dict[str, tuple[set[str], set[str]]] = {}
    for student, sample in students.items():
        want = set(expected[sample].get("failed", []))
        got = failed.get(student, graded) & graded  # no result at all: everything counts as flagged
        caught += len(want & got)
        missed += len(want - got)
        alarms += len(got - want)
        miss, alarm = per_sample.setdefault(sample, (set(), set()))
        miss |= want - got
        alarm |= got - want
    return {"caught": caught, "missed": missed, "alarms": alarms, "per_sample": per_sample}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--students", type=int, default=40)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="ConvGrade's --jobs (default: cores)")
    p.add_argument("--otter-jobs", type=int, default=os.cpu_count() or 1,
                   help="`otter run` processes at a time for the parallel Otter batch (default: cores)")
    p.add_argument("--dry-run", action="store_true", help="print the section, do not write BENCHMARKS.md")
    args = p.parse_args()
    for tool in ("nbgrader", "otter"):
        if not (VENV / "bin" / tool).exists():
            sys.exit(f"{VENV / 'bin' / tool} is missing: run `bash bench/peers/setup.sh` first")
    versions = {tool: subprocess.run([str(VENV / "bin" / "python"), "-c",
                                      f"import importlib.metadata as m; print(m.version({dist!r}))"],
                                     capture_output=True, text=True, check=True).stdout.strip()
                for tool, dist in (("nbgrader", "nbgrader"), ("otter", "otter-grader"))}
    expected = tomllib.loads((SAMPLES / "expected.toml").read_text())
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    env = peer_env()
    n = args.students
    paths = make_class(WORK / "class", n)
    students = {p.parent.name: GRADABLE[i % len(GRADABLE)].stem for i, p in enumerate(paths)}

    # Set-up of the peers (not timed: an instructor does it once per assignment).
    course = nbgrader_course()
    nbgrader_submissions(course, paths, env)
    autograder = otter_autograder(env)

    times, verdicts = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        rows = [("convgrade", lambda: convgrade(WORK / "class", args.jobs, Path(tmp))),
                ("nbgrader", lambda: nbgrader(course, env)),
                ("otter_serial", lambda: otter(paths, autograder, env, 1, "serial")),
                ("otter_parallel", lambda: otter(paths, autograder, env, args.otter_jobs, "parallel"))]
        if args.jobs != 1:
            rows.append(("convgrade_serial", lambda: convgrade(WORK / "class", 1, Path(tmp))))
        load: dict[str, float] = {}  # this machine is shared: the 1-minute load average when each began
        for key, fn in rows:
            print(f"{key} ...", flush=True)
            load[key] = os.getloadavg()[0]
            times[key], verdicts[key] = fn()
            print(f"{key}: {times[key]:.1f} s", flush=True)

    tallies = {key: tally(v, students, expected) for key, v in verdicts.items()}
    should_fail = sum(len(expected[s].get("failed", [])) for s in students.values())
    base = times["convgrade"]
    label = {
        "convgrade": f"ConvGrade `grade.py --jobs {args.jobs}` (sandboxed kernels, hypothesis)",
        "convgrade_serial": "ConvGrade `grade.py --jobs 1`",
        "nbgrader": f"nbgrader {versions['nbgrader']} `nbgrader autograde` (serial: its only mode)",
        "otter_serial": f"Otter-Grader {versions['otter']} `otter run`, one after another",
        "otter_parallel": f"Otter-Grader {versions['otter']} `otter run`, {args.otter_jobs} at a time",
    }
    lines = [f"| tool ({n} W1A1 notebooks) | batch wall time | per notebook | time / ConvGrade --jobs {args.jobs} time | "
             f"mistakes caught (of {should_fail}) | missed | false alarms | load at start |",
             "|---|---|---|---|---|---|---|---|"]
    for key in label:
        if key not in times:
            continue
        t = tallies[key]
        lines.append(f"| {label[key]} | {times[key]:.1f} s | {times[key] / n:.2f} s | {times[key] / base:.2f} | "
                     f"{t['caught']} | {t['missed']} | {t['alarms']} | {load[key]:.1f} |")

    sample_lines = ["| sample (notebooks) | should fail | ConvGrade missed / false alarm | "
                    "nbgrader missed / false alarm | Otter missed / false alarm |", "|---|---|---|---|---|"]
    counts = {s: list(students.values()).count(s) for s in dict.fromkeys(students.values())}

    def show(key: str, sample: str) -> str:
        miss, alarm = tallies[key]["per_sample"][sample]
        return f"{', '.join(sorted(miss)) or '-'} / {', '.join(sorted(alarm)) or '-'}"
    for sample, count in counts.items():
        want = ", ".join(expected[sample].get("failed", [])) or "(nothing)"
        sample_lines.append(f"| {sample} ({count}) | {want} | {show('convgrade', sample)} | "
                            f"{show('nbgrader', sample)} | {show('otter_parallel', sample)} |")

    r_nb, r_ot, r_ots = times["nbgrader"] / base, times["otter_parallel"] / base, times["otter_serial"] / base
    goal = "met" if min(r_nb, r_ot) >= 3 else "not met"
    work = CONVGRADE_WORK.get(args.jobs, 0.0)
    caught = {k: tallies[k]["caught"] for k in ("convgrade", "nbgrader", "otter_parallel")}
    if caught["convgrade"] > max(caught["nbgrader"], caught["otter_parallel"]):
        more = "**met**: ConvGrade caught more than both"
    elif caught["convgrade"] == caught["nbgrader"] == caught["otter_parallel"]:
        more = "**not met**: with equivalent checks all three caught the same"
    else:
        more = "**not met**: ConvGrade did not catch more than both"
    body = f"""
{chr(10).join(lines)}

Peer time / ConvGrade time (above 1: ConvGrade is faster): nbgrader {r_nb:.2f}, Otter-Grader
{args.otter_jobs} at a time {r_ot:.2f}, Otter-Grader serially {r_ots:.2f}. The issue's goal (at least 3
against both, and catching more) is **{goal}** on speed here; on mistakes it is {more}
(ConvGrade {caught['convgrade']}, nbgrader {caught['nbgrader']}, Otter {caught['otter_parallel']} of {should_fail}). "Caught"
counts (notebook, function) pairs that samples/expected.toml says must fail and that the tool scored
below full; "false alarms" are correct functions scored below full. ConvGrade's own timing of one
submission (`duration_s`, kernel start, notebook, every check) averaged {work:.2f} s in the
--jobs {args.jobs} batch: each of its check calls crosses the sandbox boundary (files in, a probe in
the kernel, files out, comparison in the grader), while the peers' tests call the function
directly inside the student's kernel.

Per sample (over all its copies; "-" is none; Otter's columns are from the
parallel batch, and its serial batch gave {"the same" if verdicts["otter_serial"] == verdicts["otter_parallel"] else "DIFFERENT"} verdicts):

{chr(10).join(sample_lines)}

How each tool was set up (bench/peers.py; its work folder bench/peers/work/ is rebuilt each run):

- Equivalent checks: bench/peers/peer_checks.py mirrors exercises/conv_step_by_step/checks.py
  aspect by aspect (course example, 25 random inputs, 10 random caches; the same input ranges and
  fairness rules; the reference's answer compared with the same tolerances; inputs built by the
  test, not chained through the student's other functions; warnings ignored). Seeded fixed inputs
  replace hypothesis, so the peers' feedback has no shrinking to a minimal counterexample.
- nbgrader: the template as source notebook, its own (chaining) test cells kept at 0 points, one
  hidden test cell per (function, aspect) appended at the end, worth the item's points split
  evenly; `nbgrader update` (the course notebooks carry an old metadata schema) and
  `nbgrader generate_assignment`, then each student's notebook with the release's (emptied) hidden
  cells appended, as if written in the released notebook (set-up, not timed); only
  `nbgrader autograde {ASSIGNMENT}` is timed. Scores per test cell from nbgrader's gradebook.
- Otter-Grader: one test file per function (exception-based format, one test case per aspect),
  `otter generate` into an autograder zip with the helper modules; `otter run` per notebook (its
  only mode without Docker: `otter grade` needs Docker), timed over the batch. Scores from each
  run's results.json.
- Same kernel environment for all: MPLBACKEND=Agg, one BLAS thread, PYTHONHASHSEED=0, and
  ConvGrade's numpy_legacy prelude (np.float etc.), given to the peers' kernels as an IPython
  startup file; numpy 2.3.5 in both venvs.

Caveats:
- nbgrader's autograde grades the submissions one after another (it has no parallel mode); the
  main ConvGrade run and the parallel Otter batch use {args.jobs} processes on this {os.cpu_count()}-core
  machine, so compare nbgrader with the `--jobs 1` row too.
- Neither peer isolates student code here: nbgrader executes it in a plain kernel with the
  grader's privileges, and so does Otter without Docker; both run their tests inside that same
  kernel, where a notebook can patch numpy, the tests' module or the reference (ConvGrade's
  kernels run in bubblewrap and the comparison happens outside them). The peers' timings
  therefore include no sandbox, and their verdicts hold only for honest notebooks like these.
- nbgrader scores a test cell 0 when it writes anything to stderr: without the warnings filter in
  peer_checks.py, the course's own `float(b)` DeprecationWarning (numpy 2.3) failed conv_single_step
  and conv_forward of every correct notebook in a trial run.
- Each tool ran once, in this order: ConvGrade, nbgrader, Otter serial, Otter parallel,
  ConvGrade --jobs 1. The machine was shared with other work during the run (the load column:
  the 1-minute load average, {os.cpu_count()} cores, when each batch began), which slows every
  batch and the parallel ones most; a rerun moves the ratios.
"""
    print(body)
    if args.dry_run:
        return
    write_section(TITLE, body, f"bash bench/peers/setup.sh && .venv/bin/python bench/peers.py --students {n} "
                               f"--jobs {args.jobs} --otter-jobs {args.otter_jobs}")


if __name__ == "__main__":
    main()
