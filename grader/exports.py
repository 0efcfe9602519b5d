"""Exports of grading results to files other tools import: CSV, Gradescope JSON, JUnit XML.

Pure functions of (exercise, results): no kernel, no gradebook, nothing re-graded. Student
text (test outputs, errors, ids) can contain anything, so every writer is built on a library
that escapes for its format (csv, json, xml.etree) plus the few guards a library cannot give:
ids turned into folder names, and characters XML 1.0 cannot hold at all.

Gradescope format: "Autograder Specifications", section "Output format" and "Test case status"
(gradescope/autograder_samples docs/specs.md, published at
https://gradescope-autograders.readthedocs.io/en/latest/specs/): top-level `score` overrides the
tests' total, `execution_time` is in seconds, test `status` "passed"/"failed" sets the test's
appearance, `visibility` / `stdout_visibility` take hidden|after_due_date|after_published|visible.
`output_format` / `test_output_format` / `test_name_format` "text" (its "Output String
Formatting"): outputs hold student-controlled text, which Gradescope would otherwise render as HTML.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .results import SubmissionResult, TestResult
from .spec import Exercise

FIXED_COLUMNS = ("student", "submission", "status", "score", "max_score", "error")
UNGRADABLE_TEST = "notebook"  # the one test an ungradable submission gets in Gradescope and JUnit

# XML 1.0 Char production: tab, LF, CR, and everything from U+0020 except surrogates, U+FFFE/F.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Terminal colour/cursor sequences: stripping only their ESC would leave "[31m" litter behind.
_ANSI_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 64


# ---------------------------------------------------------------------------------------- shared

def student_id(result: SubmissionResult) -> str:
    """Who submitted: the recorded student, else the notebook's file name without suffix."""
    return result.student or Path(result.submission).stem


def _num(x: float) -> str:
    """A score as text that parses back to the same float (2.0 -> "2", 3.33 -> "3.33")."""
    x = float(x)
    return str(int(x)) if x.is_integer() else repr(x)


def _item_scores(result: SubmissionResult) -> dict[str, float]:
    """Score per item, rounded so float noise from summing shares (9.999999...) never shows."""
    return {item: round(score, 6) for item, (score, _max) in result.item_scores().items()}


def _test_names(results: list[SubmissionResult]) -> list[str]:
    """Union of test names over all submissions, in first-seen order."""
    return list(dict.fromkeys(t.name for r in results for t in r.tests))


# ------------------------------------------------------------------------------------------- CSV

def csv_rows(exercise: Exercise, results: list[SubmissionResult]) -> tuple[list[str], list[dict[str, str]]]:
    """Header and one row per submission (all values as text), for write_csv and its callers."""
    tests = _test_names(results)
    items = [item.name for item in exercise.items]
    header = [*FIXED_COLUMNS, *items, *tests]
    rows = []
    for r in results:
        graded = r.status == "graded"
        row = {"student": student_id(r), "submission": r.submission, "status": r.status,
               "score": _num(r.score), "max_score": _num(r.max_score), "error": r.error or ""}
        scores = _item_scores(r)
        for item in items:  # a graded submission without tests for an item earned 0 on it (as report.py)
            row[item] = _num(scores.get(item, 0.0)) if graded else ""
        by_name = {t.name: t.score for t in r.tests}
        for name in tests:
            row[name] = _num(by_name[name]) if name in by_name else ""
        rows.append(row)
    return header, rows


def write_csv(path: Path, exercise: Exercise, results: list[SubmissionResult]) -> None:
    """One row per submission: fixed columns, one per graded item, one per test name.

    RFC 4180 (CRLF line ends, minimal quoting, quotes doubled), UTF-8 without BOM. Cells are
    written verbatim: a spreadsheet may read a cell starting with "=" as a formula.
    """
    header, rows = csv_rows(exercise, results)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writeheader()
        writer.writerows(rows)


# ------------------------------------------------------------------------------------ Gradescope

def safe_folder_name(student: str) -> str:
    """A folder name made of [A-Za-z0-9._-] that never is "", "." or ".." nor starts with a dot.

    An id that had to change gets a hash of the original appended, so "a b" and "a_b" (or
    "../x" and "x") stay apart regardless of the order they come in.
    """
    name = _UNSAFE_IN_NAME.sub("_", student).lstrip("._-")[:_MAX_NAME] or "student"
    if name != student:
        digest = hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        name = f"{name}-{digest}"
    return name


def unique_name(name: str, taken: set[str]) -> str:
    """name, or name-2, name-3...: case-insensitively new (macOS and Windows fold case)."""
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate.casefold())
    return candidate


def _gradescope_test(t: TestResult) -> dict[str, Any]:
    return {"name": t.name, "score": t.score, "max_score": t.max_score, "status": t.status,
            "output": t.output, "output_format": "text", "visibility": "visible"}


def _gradescope_summary(exercise: Exercise, r: SubmissionResult) -> str:
    """The top-level text: score, then one line per graded item (failed tests carry details)."""
    if r.status != "graded":
        return r.error or "This notebook could not be graded."
    passed = sum(t.status == "passed" for t in r.tests)
    lines = [f"{exercise.title}: {_num(r.score)}/{_num(r.max_score)} points, "
             f"{passed} of {len(r.tests)} tests passed."]
    scores = r.item_scores()
    for item in exercise.items:
        s, m = scores.get(item.name, (0.0, item.points))
        lines.append(f"{item.name}: {_num(round(s, 6))}/{_num(round(m, 6))}")
    return "\n".join(lines)


def gradescope_results(exercise: Exercise, r: SubmissionResult) -> dict[str, Any]:
    """One submission as Gradescope's results.json document.

    An ungradable notebook gets one failed test "notebook" worth the exercise, carrying the
    reason, so students see why they got 0 in the test list and not only in the summary.
    """
    if r.status == "graded":
        tests = [_gradescope_test(t) for t in r.tests]
    else:
        error = r.error or "This notebook could not be graded."
        tests = [_gradescope_test(TestResult(UNGRADABLE_TEST, 0.0, r.max_score, "failed", error))]
    seconds = r.duration_s if math.isfinite(r.duration_s) else 0.0
    return {"score": r.score, "execution_time": max(0, round(seconds)),
            "output": _gradescope_summary(exercise, r), "output_format": "text", "test_output_format": "text",
            "test_name_format": "text", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def write_gradescope(folder: Path, exercise: Exercise, results: list[SubmissionResult]) -> list[Path]:
    """folder/<safe student>/results.json per submission, in results order; returns the paths.

    Every path is checked to resolve inside `folder` (a symlink left in it cannot redirect a
    write); NaN scores raise instead of producing invalid JSON.
    """
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    taken: set[str] = set()
    paths = []
    for r in results:
        target = folder / unique_name(safe_folder_name(student_id(r)), taken) / "results.json"
        if not target.resolve().is_relative_to(root):
            raise ValueError(f"refusing to write {target}: it resolves outside {folder}")
        target.parent.mkdir(exist_ok=True)
        text = json.dumps(gradescope_results(exercise, r), indent=2, ensure_ascii=False, allow_nan=False)
        target.write_text(text + "\n", encoding="utf-8")
        paths.append(target)
    return paths


# ----------------------------------------------------------------------------------------- JUnit

def xml_text(text: str) -> str:
    """text without terminal escape sequences and without characters XML 1.0 forbids."""
    return _XML_ILLEGAL.sub("", _ANSI_CSI.sub("", text))


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _testcase(suite: ET.Element, classname: str, name: str) -> ET.Element:
    # Per-test durations are not recorded; time="0" keeps tools that require the attribute happy.
    return ET.SubElement(suite, "testcase", classname=classname, name=xml_text(name), time="0")


def _testsuite(exercise: Exercise, r: SubmissionResult) -> ET.Element:
    student = xml_text(student_id(r))
    suite = ET.Element("testsuite", name=student)
    classname = f"{exercise.name}.{student}"
    failures = errors = 0
    if r.status == "graded":
        for t in r.tests:
            case = _testcase(suite, classname, t.name)
            if t.status != "passed":
                output = xml_text(t.output)
                ET.SubElement(case, "failure", message=_first_line(output) or "failed").text = output
                failures += 1
    else:
        error = xml_text(r.error or "This notebook could not be graded.")
        ET.SubElement(_testcase(suite, classname, UNGRADABLE_TEST), "error",
                      message=_first_line(error) or "ungradable").text = error
        errors = 1
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("time", f"{r.duration_s:.3f}")
    return suite


def junit_tree(exercise: Exercise, results: list[SubmissionResult]) -> ET.ElementTree:
    """<testsuites> with one <testsuite> per submission and totals summed over them."""
    root = ET.Element("testsuites", name=exercise.name)
    suites = [_testsuite(exercise, r) for r in results]
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key)) for s in suites)))
    root.set("time", f"{sum(r.duration_s for r in results):.3f}")
    root.extend(suites)
    return ET.ElementTree(root)


def write_junit(path: Path, exercise: Exercise, results: list[SubmissionResult]) -> None:
    """JUnit XML for CI dashboards: a failed test is <failure>, an ungradable notebook <error>."""
    tree = junit_tree(exercise, results)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
