"""grader/exports.py: CSV, Gradescope results.json and JUnit XML from SubmissionResults."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from grader.exports import write_csv, write_gradescope, write_junit
from grader.results import SubmissionResult, TestResult
from grader.spec import Exercise, load_exercise
from grader.text import file_name

NASTY = ('expected "ok", got <ndarray shape=(1, 2)> & more,\n'
         "  line 2: \x1b[31mred\x1b[0m bell\x07 'single' ünïcödé ≠ 日本\n"
         "last, line")
ERROR = 'not a notebook: line 1, column 2: "quoted" <tag> & ümlaut'


@pytest.fixture(scope="module")
def exercise() -> Exercise:
    return load_exercise("conv_step_by_step")


def graded(student: str = "ana.lópez", submission: str = "subs/ana.ipynb") -> SubmissionResult:
    """zero_pad 5/10, conv_forward 3.3/10 (1.1 + 2.2 + 0: 3.3000000000000003 in floats), no other items."""
    tests = [
        TestResult("zero_pad: shape", 5.0, 5.0, "passed"),
        TestResult("zero_pad: values", 0.0, 5.0, "failed", NASTY),
        TestResult("conv_forward: course example", 1.1, 1.1, "passed"),
        TestResult("conv_forward: random inputs", 2.2, 2.2, "passed"),
        TestResult("conv_forward: cache", 0.0, 6.7, "failed", "cache, \"wrong\"\nsecond line"),
    ]
    return SubmissionResult(submission, "graded", 8.3, 70.0, tests=tests, duration_s=12.6,
                            notebook_errors=["cell 3: NameError"], student=student)


def ungradable(submission: str = "subs/bob.ipynb") -> SubmissionResult:
    return SubmissionResult(submission, "ungradable", 0.0, 70.0, error=ERROR, duration_s=0.4)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


# ------------------------------------------------------------------------------------------- CSV

def test_csv_columns_are_fixed_then_items_then_tests_in_first_seen_order(tmp_path, exercise):
    other = SubmissionResult("subs/c.ipynb", "graded", 1.0, 70.0, tests=[
        TestResult("pool_forward: max", 1.0, 1.0, "passed"),
        TestResult("zero_pad: shape", 0.0, 5.0, "failed", "x")])
    write_csv(tmp_path / "r.csv", exercise, [graded(), ungradable(), other])
    header, _ = read_csv(tmp_path / "r.csv")
    assert header == ["student", "submission", "status", "score", "max_score", "error",
                      *[item.name for item in exercise.items],
                      "zero_pad: shape", "zero_pad: values", "conv_forward: course example",
                      "conv_forward: random inputs", "conv_forward: cache", "pool_forward: max"]


def test_csv_round_trips_numbers_and_hostile_text(tmp_path, exercise):
    results = [graded(), ungradable()]
    write_csv(tmp_path / "r.csv", exercise, results)
    _, rows = read_csv(tmp_path / "r.csv")
    assert [(r["student"], r["submission"], r["status"]) for r in rows] == [
        ("ana.lópez", "subs/ana.ipynb", "graded"), ("bob", "subs/bob.ipynb", "ungradable")]
    assert [float(r["score"]) for r in rows] == [8.3, 0.0]
    assert [float(r["max_score"]) for r in rows] == [70.0, 70.0]
    assert rows[0]["error"] == "" and rows[1]["error"] == ERROR
    assert float(rows[0]["conv_forward: cache"]) == 0.0 and float(rows[0]["conv_forward: course example"]) == 1.1


def test_csv_quotes_a_multiline_cell_and_round_trips_it_exactly(tmp_path, exercise):
    result = ungradable()
    result.error = NASTY
    write_csv(tmp_path / "r.csv", exercise, [result])
    raw = (tmp_path / "r.csv").read_bytes()
    assert b'"expected ""ok"", got' in raw          # RFC 4180: quoted cell, inner quotes doubled
    assert raw.endswith(b"\r\n")                     # RFC 4180 record separator
    _, rows = read_csv(tmp_path / "r.csv")
    assert len(rows) == 1 and rows[0]["error"] == NASTY


def test_csv_item_columns_sum_their_tests_and_are_empty_when_ungradable(tmp_path, exercise):
    write_csv(tmp_path / "r.csv", exercise, [graded(), ungradable()])
    _, (row, bad) = read_csv(tmp_path / "r.csv")
    items = [item.name for item in exercise.items]
    assert row["zero_pad"] == "5"
    assert row["conv_forward"] == "3.3"                                    # not 3.3000000000000003
    assert row["pool_forward"] == "0"                                      # graded, no tests: 0
    for item in items:
        tests = [float(v) for k, v in row.items() if k.startswith(f"{item}:") and v != ""]
        assert float(row[item]) == pytest.approx(sum(tests))
    assert sum(float(row[item]) for item in items) == pytest.approx(float(row["score"]))
    assert all(bad[item] == "" for item in items)
    assert all(bad[k] == "" for k in row if ":" in k)                      # no test scores either


# ------------------------------------------------------------------------------------ Gradescope

TOP_KEYS = {"score": (int, float), "execution_time": int, "output": str, "output_format": str,
            "test_output_format": str, "test_name_format": str, "visibility": str,
            "stdout_visibility": str, "tests": list}
TEST_KEYS = {"name": str, "score": (int, float), "max_score": (int, float), "status": str,
             "output": str, "output_format": str, "visibility": str}


def check_schema(doc: dict) -> None:
    assert set(doc) == set(TOP_KEYS)
    for key, kind in TOP_KEYS.items():
        assert isinstance(doc[key], kind) and not isinstance(doc[key], bool), key
    assert doc["visibility"] == "visible" and doc["stdout_visibility"] == "hidden"
    assert doc["output_format"] == "text" and all(t["output_format"] == "text" for t in doc["tests"])
    for test in doc["tests"]:
        assert set(test) == set(TEST_KEYS)
        for key, kind in TEST_KEYS.items():
            assert isinstance(test[key], kind) and not isinstance(test[key], bool), key
        assert test["status"] in ("passed", "failed") and test["visibility"] == "visible"


def test_gradescope_writes_one_schema_conforming_file_per_submission(tmp_path, exercise):
    paths = write_gradescope(tmp_path / "gs", exercise, [graded(), ungradable()])
    assert [p.relative_to(tmp_path / "gs").parts[1:] for p in paths] == [("results.json",)] * 2
    assert sorted(tmp_path.joinpath("gs").rglob("results.json")) == sorted(paths)
    docs = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    for doc in docs:
        check_schema(doc)
    assert docs[0]["execution_time"] == 13 and docs[1]["execution_time"] == 0


def test_gradescope_graded_scores_and_outputs_match_the_results(tmp_path, exercise):
    (path,) = write_gradescope(tmp_path, exercise, [graded()])
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["score"] == 8.3
    assert sum(t["score"] for t in doc["tests"]) == pytest.approx(doc["score"])
    assert [(t["name"], t["status"]) for t in doc["tests"]] == [(t.name, t.status) for t in graded().tests]
    assert doc["tests"][1]["output"] == NASTY                              # verbatim, JSON escapes it
    assert "8.3/70" in doc["output"] and "conv_forward: 3.3/10" in doc["output"]


def test_gradescope_ungradable_shows_the_error_and_scores_zero(tmp_path, exercise):
    (path,) = write_gradescope(tmp_path, exercise, [ungradable()])
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["output"] == ERROR and doc["score"] == 0
    assert [(t["name"], t["score"], t["max_score"], t["status"], t["output"]) for t in doc["tests"]] == [
        ("notebook", 0.0, 70.0, "failed", ERROR)]
    assert path.parent.name == "bob"                                       # student from the file stem


def test_gradescope_ids_that_sanitise_alike_get_distinct_folders(tmp_path, exercise):
    ids = ["j doe", "j_doe", "j/doe", "j\\doe", "Eve", "eve", "eve", "", "."]
    results = [graded(student=s, submission=f"subs/{i}.ipynb") for i, s in enumerate(ids)]
    paths = write_gradescope(tmp_path, exercise, results)
    folders = [p.parent.name for p in paths]
    assert len({f.casefold() for f in folders}) == len(ids)
    assert folders[1] == "j_doe" and folders[0].startswith("j_doe-")      # unchanged ids stay readable
    assert all(p.is_file() for p in paths)


def test_gradescope_never_writes_outside_the_folder(tmp_path, exercise):
    folder = tmp_path / "a" / "gs"
    hostile = ["../../etc", "..", "/tmp/abs", "../gs2/x", "~root", "a/../../b"]
    paths = write_gradescope(folder, exercise, [graded(student=s) for s in hostile])
    for p in paths:
        assert p.resolve().parent.parent == folder.resolve()
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert written == set(paths)
    assert not (tmp_path / "etc").exists() and not (tmp_path / "a" / "gs2").exists()


def test_gradescope_refuses_a_symlink_that_leads_out(tmp_path, exercise):
    folder, outside = tmp_path / "gs", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    (folder / "mallory").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValueError, match="outside"):
        write_gradescope(folder, exercise, [graded(student="mallory")])
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("student", ["", ".", "..", "...", "../../etc", "/", "-rf", "日本", "a" * 300])
def test_file_name_is_a_plain_bounded_name(student):
    name = file_name(student)
    assert name not in ("", ".", "..") and not name.startswith((".", "-"))
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)
    assert len(name) <= 80


# ----------------------------------------------------------------------------------------- JUnit

def write_and_parse(tmp_path: Path, exercise: Exercise, results: list[SubmissionResult]) -> ET.Element:
    write_junit(tmp_path / "junit.xml", exercise, results)
    return ET.parse(tmp_path / "junit.xml").getroot()


def test_junit_counts_are_right_per_suite_and_in_total(tmp_path, exercise):
    root = write_and_parse(tmp_path, exercise, [graded(), ungradable()])
    assert root.tag == "testsuites" and root.get("name") == "conv_step_by_step"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "2", "1")
    assert float(root.get("time")) == pytest.approx(13.0)
    suites = root.findall("testsuite")
    assert [(s.get("name"), s.get("tests"), s.get("failures"), s.get("errors")) for s in suites] == [
        ("ana.lópez", "5", "2", "0"), ("bob", "1", "0", "1")]
    for s in suites:                                      # the attributes agree with the elements
        assert int(s.get("tests")) == len(s.findall("testcase"))
        assert int(s.get("failures")) == len(s.findall("testcase/failure"))
        assert int(s.get("errors")) == len(s.findall("testcase/error"))
    assert float(suites[0].get("time")) == pytest.approx(12.6)


def test_junit_testcases_name_the_exercise_student_and_test(tmp_path, exercise):
    root = write_and_parse(tmp_path, exercise, [graded()])
    cases = root.findall("testsuite/testcase")
    assert {c.get("classname") for c in cases} == {"conv_step_by_step.ana.lópez"}
    assert [c.get("name") for c in cases] == [t.name for t in graded().tests]
    assert all(c.get("time") is not None for c in cases)


def test_junit_failure_carries_the_output_without_control_characters(tmp_path, exercise):
    write_junit(tmp_path / "junit.xml", exercise, [graded()])
    raw = (tmp_path / "junit.xml").read_text(encoding="utf-8")
    assert "\x1b" not in raw and "\x07" not in raw and "[31m" not in raw
    failures = ET.parse(tmp_path / "junit.xml").getroot().findall("testsuite/testcase/failure")
    assert failures[0].get("message") == 'expected "ok", got <ndarray shape=(1, 2)> & more,'
    assert failures[0].text == NASTY.replace("\x1b[31m", "").replace("\x1b[0m", "").replace("\x07", "")
    assert "ünïcödé ≠ 日本" in failures[0].text and "last, line" in failures[0].text
    assert (failures[1].get("message"), failures[1].text) == ('cache, "wrong"', 'cache, "wrong"\nsecond line')


def test_junit_ungradable_is_one_notebook_error_with_the_reason(tmp_path, exercise):
    root = write_and_parse(tmp_path, exercise, [ungradable()])
    (case,) = root.findall("testsuite/testcase")
    assert (case.get("name"), case.get("classname")) == ("notebook", "conv_step_by_step.bob")
    error = case.find("error")
    assert error is not None and error.get("message") == ERROR and error.text == ERROR
    assert case.find("failure") is None


def test_junit_survives_control_characters_in_ids_and_names(tmp_path, exercise):
    result = graded(student="eve\x00\x1f")
    result.tests[0].name = "zero_pad: sh\x0bape"
    root = write_and_parse(tmp_path, exercise, [result])
    assert root.find("testsuite").get("name") == "eve"
    assert root.find("testsuite/testcase").get("name") == "zero_pad: shape"
