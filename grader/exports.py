"""Exports of grading results to files other tools import: CSV, Gradescope JSON, JUnit XML.

Pure functions of (exercise, results): no kernel, no gradebook, nothing re-graded. Student
text (test outputs, errors, ids) can contain anything: batch grading cleans it once
(grader/text.py), and every writer still escapes for its format on its own (csv, json,
xml.etree) plus the few guards a library cannot give: ids turned into folder names (one rule,
text.file_name), cells a spreadsheet would evaluate as a formula (neutralise_cell), and
characters XML 1.0 cannot hold at all. One submission that cannot be written never stops the
others: the writer goes on and raises ExportError at the end, naming each failure.

Gradescope format: "Autograder Specifications", section "Output format" and "Test case status"
(gradescope/autograder_samples docs/specs.md, published at
https://gradescope-autograders.readthedocs.io/en/latest/specs/): top-level `score` overrides the
tests' total, `execution_time` is in seconds, test `status` "passed"/"failed" sets the test's
appearance (it knows no other: a check that could not be run, or was skipped, is "failed" there,
its output saying which), `visibility` / `stdout_visibility` take hidden|after_due_date|after_published|visible.
`output_format` / `test_output_format` / `test_name_format` "text" (its "Output String
Formatting"): outputs hold student-controlled text, which Gradescope would otherwise render as HTML.
"""

from __future__ import annotations

import csv
import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .results import SubmissionResult, TestResult
from .spec import Exercise
from .text import file_name, format_score, student_of

FIXED_COLUMNS = ("student", "submission", "status", "score", "max_score", "error")
UNGRADABLE_TEST = "notebook"  # the one test an ungradable submission gets in Gradescope and JUnit

# XML 1.0 Char production: tab, LF, CR, and everything from U+0020 except surrogates, U+FFFE/F.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# Terminal colour/cursor sequences: stripping only their ESC would leave "[31m" litter behind.
_ANSI_CSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# OWASP "CSV Injection": a cell starting with one of these is read as a formula by spreadsheets.
# Also their full-width forms, which some spreadsheets fold to ASCII on import.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class ExportError(ValueError):
    """Some submissions could not be exported; the others were."""

    def __init__(self, what: str, failures: list[str]):
        super().__init__(f"{what}: {len(failures)} submission(s) not written: " + "; ".join(failures))
        self.failures = failures


# ---------------------------------------------------------------------------------------- shared

def output_name(result: SubmissionResult) -> str:
    """The file or folder stem of a submission in every export: text.file_name of its id
    (text.student_of)."""
    return file_name(student_of(result))


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
        row = {"student": student_of(r), "submission": r.submission, "status": r.status,
               "score": format_score(r.score), "max_score": format_score(r.max_score), "error": r.error or ""}
        scores = {item: score for item, (score, _max) in r.item_scores().items()}
        for item in items:  # a graded submission without tests for an item earned 0 on it (as report.py)
            row[item] = format_score(scores.get(item, 0.0)) if graded else ""
        by_name = {t.name: t.score for t in r.tests}
        for name in tests:
            row[name] = format_score(by_name[name]) if name in by_name else ""
        rows.append(row)
    return header, rows


def neutralise_cell(value: str) -> str:
    """A cell a spreadsheet will not evaluate: text starting with = + - @ tab or CR gets a
    leading single quote (OWASP's advice); numbers ("-1.5", "+2e3") stay numbers."""
    if value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def write_csv(path: Path, exercise: Exercise, results: list[SubmissionResult]) -> None:
    """One row per submission: fixed columns, one per graded item, one per test name.

    RFC 4180 (CRLF line ends, minimal quoting, quotes doubled), UTF-8 without BOM. Every cell,
    header included, goes through neutralise_cell: a text cell that a spreadsheet would read as
    a formula starts with a single quote (so "=HYPERLINK(...)" reads "'=HYPERLINK(...)").
    """
    header, rows = csv_rows(exercise, results)
    with path.open("w", encoding="utf-8", errors="replace", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
        writer.writerow([neutralise_cell(h) for h in header])
        writer.writerows([neutralise_cell(row.get(h, "")) for h in header] for row in rows)


# ------------------------------------------------------------------------------------ Gradescope

def unique_name(name: str, taken: set[str]) -> str:
    """name, or name-2, name-3...: case-insensitively new (macOS and Windows fold case).

    A guard only: names from text.file_name are already distinct for distinct ids; this
    keeps two results that carry the very same id (not possible from a batch) apart."""
    candidate, n = name, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{name}-{n}"
    taken.add(candidate.casefold())
    return candidate


def _gradescope_test(t: TestResult) -> dict[str, Any]:
    # Gradescope's status is passed or failed; the output of an error or skip says which it was.
    return {"name": t.name, "score": t.score, "max_score": t.max_score,
            "status": "passed" if t.status == "passed" else "failed",
            "output": t.output, "output_format": "text", "visibility": "visible"}


def _gradescope_summary(exercise: Exercise, r: SubmissionResult) -> str:
    """The top-level text: score, then one line per graded item (failed tests carry details)."""
    if r.status != "graded":
        return r.error or "This notebook could not be graded."
    passed = sum(t.status == "passed" for t in r.tests)
    others = [f"{count} {what}" for status, what in (("error", "could not be run"), ("skipped", "not checked"))
              if (count := sum(t.status == status for t in r.tests))]
    lines = [f"{exercise.title}: {format_score(r.score)}/{format_score(r.max_score)} points, "
             f"{passed} of {len(r.tests)} tests passed" + (f" ({', '.join(others)})." if others else ".")]
    scores = r.item_scores()
    for item in exercise.items:
        s, m = scores.get(item.name, (0.0, item.points))
        lines.append(f"{item.name}: {format_score(s)}/{format_score(m)}")
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
    """folder/<output_name>/results.json per submission, in results order; returns the paths.

    Every path is checked to resolve inside `folder` (a symlink left in it cannot redirect a
    write); a NaN score is refused instead of producing invalid JSON. A submission that cannot
    be written is skipped, the others are written, then ExportError names what was skipped.
    """
    folder.mkdir(parents=True, exist_ok=True)
    root = folder.resolve()
    taken: set[str] = set()
    paths, failures = [], []
    for r in results:
        target = folder / unique_name(output_name(r), taken) / "results.json"
        try:
            if not target.resolve().is_relative_to(root):
                raise ValueError(f"refusing to write {target}: it resolves outside {folder}")
            text = json.dumps(gradescope_results(exercise, r), indent=2, ensure_ascii=False, allow_nan=False)
            target.parent.mkdir(exist_ok=True)
            target.write_text(text + "\n", encoding="utf-8", errors="replace")
        except Exception as exc:  # noqa: BLE001 (one submission's export never stops the others)
            failures.append(f"{student_of(r)!r}: {exc}")
            continue
        paths.append(target)
    if failures:
        raise ExportError(f"Gradescope results in {folder}", failures)
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
    student = xml_text(student_of(r))
    suite = ET.Element("testsuite", name=student)
    classname = f"{exercise.name}.{student}"
    failures = errors = skipped = 0
    if r.status == "graded":
        for t in r.tests:
            case = _testcase(suite, classname, t.name)
            if t.status != "passed":  # JUnit's own kinds: <failure>, <error> (could not run), <skipped>
                output = xml_text(t.output)
                kind = t.status if t.status in ("error", "skipped") else "failure"
                ET.SubElement(case, kind, message=_first_line(output) or t.status).text = output
                failures += kind == "failure"
                errors += kind == "error"
                skipped += kind == "skipped"
    else:
        error = xml_text(r.error or "This notebook could not be graded.")
        ET.SubElement(_testcase(suite, classname, UNGRADABLE_TEST), "error",
                      message=_first_line(error) or "ungradable").text = error
        errors = 1
    suite.set("tests", str(len(suite)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suite.set("time", f"{r.duration_s:.3f}")
    return suite


def junit_tree(exercise: Exercise, results: list[SubmissionResult]) -> ET.ElementTree:
    """<testsuites> with one <testsuite> per submission and totals summed over them."""
    root = ET.Element("testsuites", name=exercise.name)
    suites = [_testsuite(exercise, r) for r in results]
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key)) for s in suites)))
    root.set("time", f"{sum(r.duration_s for r in results):.3f}")
    root.extend(suites)
    return ET.ElementTree(root)


def write_junit(path: Path, exercise: Exercise, results: list[SubmissionResult]) -> None:
    """JUnit XML for CI dashboards: a failed test is <failure>, a check that could not run <error>,
    a skipped one <skipped>, an ungradable notebook one <error>."""
    tree = junit_tree(exercise, results)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
