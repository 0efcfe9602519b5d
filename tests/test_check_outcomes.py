"""A check has one of four outcomes (passed, failed, error, skipped): how the runner
(grading._grade_item) gives them, how preconditions are declared (Check.requires), the one
property-check helper (checks.check_property), and how the results contract carries the outcomes:
JSON, gradebook, feedback and exports. No kernel: a stand-in kernel where every name is defined.
"""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import nbformat
import pytest
from hypothesis import strategies as st

from grader import exports, html_report, report, results, text
from grader.boundary import KernelFault
from grader.checks import (Check, Context, Failure, GraderFault, NotDeterministic, check_property, draw_examples,
                           input_size, requirement_problems)
from grader.gradebook import Gradebook, Provenance
from grader.grading import _grade_item
from grader.results import SubmissionResult, TestResult
from grader.spec import Item, SpecError, Tolerance, load_exercise


class Kernel:
    """A kernel stand-in: the names in `defined` (all of them if None) are defined."""

    def __init__(self, defined: set[str] | None = None):
        self._defined = defined

    def defined(self, names):
        return set(names) if self._defined is None else set(names) & self._defined


def grade(checks: dict[str, list[Check]], item: Item, earlier=(), kernel=None, public_only: bool = False,
          timings: dict[str, float] | None = None):
    exercise = SimpleNamespace(checks=SimpleNamespace(CHECKS=checks), item_checks=checks.__getitem__)
    run = SimpleNamespace(cells=[], skipped=[])
    return _grade_item(item, exercise, kernel or Kernel(), run, nbformat.v4.new_notebook(),
                       Context(Tolerance(1e-5, 1e-6), 1), public_only=public_only, earlier=earlier, timings=timings)


def passes(student, ctx) -> None:
    pass


def fails(student, ctx) -> None:
    raise Failure("expected 1, got 2")


def raises(exc: BaseException):
    def run(student, ctx) -> None:
        raise exc
    return run


class Spy:
    """A check that passes and counts its runs."""

    def __init__(self):
        self.runs = 0

    def __call__(self, student, ctx) -> None:
        self.runs += 1


# -- the four outcomes ------------------------------------------------------------------------------
def test_each_check_has_one_of_four_outcomes_and_only_passed_scores():
    trained = Spy()
    tests = grade({"f": [Check("built", passes), Check("wrong", fails),
                         Check("broken", raises(KeyError("weights"))),
                         Check("trained", trained, requires=("wrong",)),
                         Check("after", passes)]}, Item("f", 5.0))
    assert [(t.name, t.item, t.status, t.score, t.max_score) for t in tests] == [
        ("f: built", "f", "passed", 1.0, 1.0), ("f: wrong", "f", "failed", 0.0, 1.0),
        ("f: broken", "f", "error", 0.0, 1.0), ("f: trained", "f", "skipped", 0.0, 1.0),
        ("f: after", "f", "passed", 1.0, 1.0)]
    by_name = {t.name: t.output for t in tests}
    assert by_name["f: wrong"] == "expected 1, got 2"
    assert by_name["f: broken"] == "this check could not be run: KeyError: 'weights'"
    assert by_name["f: trained"] == "not checked because f: wrong failed"
    assert trained.runs == 0  # a skipped check is not run


def test_work_a_check_reused_is_in_the_timings_under_its_test_and_only_there():
    def reuses(student, ctx) -> None:  # e.g. a training of the same architecture, done before in 48 s
        ctx.reused.append(48.0)
        raise Failure("accuracy 0.2, the reference reaches 0.9")   # reused work can fail as well

    timings: dict[str, float] = {}
    tests = grade({"f": [Check("training", reuses), Check("after", passes)]}, Item("f", 2.0), timings=timings)
    assert [t.status for t in tests] == ["failed", "passed"]
    assert timings["reused: f: training"] == 48.0 and "reused: f: after" not in timings
    assert {"test: f: training", "test: f: after"} <= set(timings)


def test_an_error_does_not_stop_the_other_checks_of_the_item():
    after = Spy()
    tests = grade({"f": [Check("broken", raises(TypeError("unhashable type: 'list'"))), Check("after", after)]},
                  Item("f", 2.0))
    assert [(t.status, t.score) for t in tests] == [("error", 0.0), ("passed", 1.0)]
    assert after.runs == 1


def test_a_check_runs_when_its_preconditions_passed():
    training = Spy()
    tests = grade({"f": [Check("architecture", passes), Check("training", training, requires=("architecture",))]},
                  Item("f", 2.0))
    assert [t.status for t in tests] == ["passed", "passed"] and training.runs == 1


def test_a_precondition_of_an_earlier_item_is_named_item_colon_aspect():
    earlier = grade({"f": [Check("architecture", fails), Check("counts", passes)]}, Item("f", 2.0))
    runs_g, runs_h = Spy(), Spy()
    g = grade({"g": [Check("training", runs_g, requires=("f: architecture",))]}, Item("g", 1.0), earlier=earlier)
    h = grade({"h": [Check("training", runs_h, requires=("f: counts",))]}, Item("h", 1.0), earlier=earlier)
    assert [(t.status, t.output) for t in g] == [("skipped", "not checked because f: architecture failed")]
    assert [t.status for t in h] == ["passed"] and (runs_g.runs, runs_h.runs) == (0, 1)


def test_a_skip_says_whether_its_precondition_failed_could_not_run_or_was_not_checked():
    tests = grade({"f": [Check("broken", raises(ValueError("x"))), Check("second", passes, requires=("broken",)),
                         Check("third", passes, requires=("second",))]}, Item("f", 3.0))
    assert [(t.status, t.output) for t in tests[1:]] == [
        ("skipped", "not checked because f: broken could not be run"),
        ("skipped", "not checked because f: second was not checked")]


def test_every_check_of_a_missing_function_fails_with_why_it_is_missing():
    tests = grade({"f": [Check("architecture", passes), Check("training", passes, requires=("architecture",))]},
                  Item("f", 2.0), kernel=Kernel(defined=set()))
    assert [t.status for t in tests] == ["failed", "failed"]
    assert all(t.output.startswith("f is not defined after running the notebook.") for t in tests)


def test_a_kernel_fault_fails_the_check_and_the_rest_of_its_item():
    later = Spy()
    tests = grade({"f": [Check("hangs", raises(KernelFault("timed out after 10 s"))), Check("later", later)]},
                  Item("f", 2.0))
    assert [(t.status, t.output) for t in tests] == [("failed", "f: timed out after 10 s"),
                                                      ("failed", "not run: f: timed out after 10 s")]
    assert later.runs == 0


def test_a_grader_fault_leaves_the_whole_submission_ungraded():
    with pytest.raises(GraderFault):
        grade({"f": [Check("worker", raises(GraderFault("the model worker could not start")))]}, Item("f", 1.0))


# -- declaring preconditions ----------------------------------------------------------------------------
def test_requirements_must_name_a_check_graded_before_and_a_public_one_for_a_public_check():
    checks = {"f": [Check("a", passes, public=True), Check("b", passes), Check("c", passes, requires=("a", "b")),
                    Check("d", passes, requires=("nope",)), Check("e", passes, public=True, requires=("b",))],
              "g": [Check("x", passes, requires=("f: a", "h: y"))],
              "h": [Check("y", passes)]}
    assert requirement_problems(["f", "g", "h"], checks) == [
        "'f: d' requires 'f: nope', which is not a check graded before it",
        "'f: e' is public but requires 'f: b', which the self-check does not run",
        "'g: x' requires 'h: y', which is not a check graded before it"]
    assert requirement_problems(["f", "h", "g"], {**checks, "f": checks["f"][:3]}) == []  # graded in that order


def test_an_exercise_whose_requires_is_wrong_is_refused_when_loaded(tmp_path):
    folder = tmp_path / "broken_exercise"
    folder.mkdir()
    (folder / "spec.toml").write_text('[[items]]\nname = "f"\npoints = 2\n')
    (folder / "checks.py").write_text(
        "from grader.checks import Check\n"
        "CHECKS = {'f': [Check('training', lambda s, c: None, requires=('architecture',))]}\n")
    with pytest.raises(SpecError, match="'f: training' requires 'f: architecture'"):
        load_exercise(str(folder))


# -- the one property-check helper ----------------------------------------------------------------------
def test_a_property_is_tried_on_the_inputs_draw_examples_gives_in_order():
    seen = []
    check_property(st.integers(0, 10**6), seen.append, examples=20, what="f", show_input=str)
    assert len(seen) == 20 and seen == draw_examples(st.integers(0, 10**6), 20)


def test_a_failure_is_shrunk_to_the_minimal_input_and_reported():
    def holds(x: int) -> None:
        if x >= 10:
            raise Failure(f"f({x}) is too big")

    with pytest.raises(Failure) as failure:
        check_property(st.integers(0, 10**6), holds, examples=50, what="f", show_input=str)
    assert str(failure.value) == "f(10) is too big" and failure.value.__cause__ is None
    with pytest.raises(Failure, match="^reported for 10$"):
        check_property(st.integers(0, 10**6), holds, examples=50, what="f", show_input=str,
                       report=lambda exc, x: Failure(f"reported for {x}"))


def test_past_the_budget_the_smallest_failing_input_seen_is_reported():
    seen: list[tuple[list[int], bool]] = []

    def holds(xs: list[int]) -> None:
        failed = sum(xs) > 100
        seen.append((xs, failed))
        if failed:
            raise Failure(f"sum of {xs} is over 100")

    budget = 3
    with pytest.raises(Failure) as failure:
        check_property(st.lists(st.integers(0, 1000), max_size=30), holds, examples=100, what="f",
                       show_input=str, budget=budget)
    stop = next(i for i, (_, failed) in enumerate(seen, 1) if failed and i > budget)
    assert len(seen) == stop  # no call after the budget was spent
    failing = [xs for xs, failed in seen if failed]
    smallest = min(failing, key=input_size)  # the first of the smallest
    assert str(failure.value) == f"sum of {smallest} is over 100"


def test_a_property_that_fails_then_passes_on_an_input_is_not_deterministic():
    calls = []

    def holds(x: int) -> None:
        calls.append(x)
        if len(calls) == 1:
            raise Failure("wrong")

    with pytest.raises(NotDeterministic) as failure:
        check_property(st.integers(0, 9), holds, examples=20, what="block", show_input=lambda x: f"  x = {x}")
    assert str(failure.value).startswith(f"block returns different results for the same input:\n  x = {calls[0]}\n")


# -- the results contract ---------------------------------------------------------------------------------
def outcomes_result(student: str = "ana") -> SubmissionResult:
    tests = [TestResult("f: built", 1.0, 1.0, "passed", item="f"),
             TestResult("f: wrong", 0.0, 1.0, "failed", "expected 1, got 2", item="f"),
             TestResult("f: broken", 0.0, 1.0, "error", "this check could not be run: KeyError: 'weights'", item="f"),
             TestResult("f: trained", 0.0, 1.0, "skipped", "not checked because f: wrong failed", item="f")]
    return SubmissionResult(f"subs/{student}/W1.ipynb", "graded", 1.0, 4.0, tests=tests, student=student)


def test_results_json_has_a_schema_version_and_each_test_its_item_and_outcome(tmp_path):
    path = tmp_path / "r.json"
    results.write_json(path, "ex", [outcomes_result()])
    doc = json.loads(path.read_text())
    assert doc["schema_version"] == results.SCHEMA_VERSION == 2
    assert [(t["item"], t["status"]) for t in doc["submissions"][0]["tests"]] == [
        ("f", "passed"), ("f", "failed"), ("f", "error"), ("f", "skipped")]


def test_a_version_1_test_without_item_still_loads_and_counts_for_its_item():
    old = {"name": "conv_forward: cache", "score": 0.0, "max_score": 2.0, "status": "failed", "output": "x"}
    test = TestResult(**old)
    assert test.item == "conv_forward"
    result = SubmissionResult("s.ipynb", "graded", 1.0, 3.0,
                              tests=[test, TestResult("odd: name", 1.0, 1.0, "passed", item="conv_forward")])
    assert result.item_scores() == {"conv_forward": (1.0, 3.0)}


def test_cleaning_a_result_keeps_error_and_skipped():
    cleaned = text.clean_result(outcomes_result())
    assert [t.status for t in cleaned.tests] == ["passed", "failed", "error", "skipped"]
    assert {t.item for t in cleaned.tests} == {"f"}


# -- gradebook ----------------------------------------------------------------------------------------------
PROVENANCE = Provenance("c", "s", "v")


def test_the_gradebook_round_trips_every_outcome_and_the_item(tmp_path):
    with Gradebook(tmp_path / "g.sqlite") as book:
        book.record("ex", outcomes_result(), PROVENANCE)
        (back,) = book.results("ex")
    assert [(t.name, t.item, t.status, t.output) for t in back.tests] == \
        [(t.name, t.item, t.status, t.output) for t in outcomes_result().tests]


def test_a_gradebook_written_before_items_were_recorded_still_opens(tmp_path):
    path = tmp_path / "old.sqlite"
    with Gradebook(path) as book:
        book.record("ex", outcomes_result(), PROVENANCE)
    with sqlite3.connect(path) as db:  # the tests table as it was, without its item column
        rows = db.execute("SELECT exercise, student, position, name, score, max_score, status, output "
                          "FROM tests").fetchall()
        db.execute("DROP TABLE tests")
        db.execute("CREATE TABLE tests (exercise TEXT NOT NULL, student TEXT NOT NULL, position INTEGER NOT NULL, "
                   "name TEXT NOT NULL, score REAL NOT NULL, max_score REAL NOT NULL, status TEXT NOT NULL, "
                   "output TEXT NOT NULL, PRIMARY KEY (exercise, student, name))")
        db.executemany("INSERT INTO tests VALUES (?,?,?,?,?,?,?,?)", [r for r in rows if r[6] != "error"])
    with Gradebook(path) as book:
        (old,) = book.results("ex")
        assert [(t.item, t.status) for t in old.tests] == [("f", "passed"), ("f", "failed"), ("f", "skipped")]
        book.record("ex", outcomes_result("bo"), PROVENANCE)
        assert [t.status for t in book.results("ex", ["bo"])[0].tests] == ["passed", "failed", "error", "skipped"]


def test_merging_a_shard_keeps_error_and_skipped_tests(tmp_path):
    with Gradebook(tmp_path / "shard.sqlite") as shard:
        shard.record("ex", outcomes_result(), PROVENANCE)
    with Gradebook(tmp_path / "main.sqlite") as book:
        assert book.merge_from(tmp_path / "shard.sqlite") == 1 and book.refused == []
        assert [t.status for t in book.results("ex")[0].tests] == ["passed", "failed", "error", "skipped"]


# -- feedback and exports -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exercise():
    return load_exercise("conv_step_by_step")


def test_the_feedback_shows_errors_and_skips_as_such():
    lines = report.feedback_text(outcomes_result()).splitlines()
    assert f"- f: broken (0/1): {report.STATUS_LABELS['error']}" in lines
    assert f"- f: trained (0/1): {report.STATUS_LABELS['skipped']}" in lines
    assert "    | not checked because f: wrong failed" in lines


def test_the_markdown_and_html_feedback_have_a_section_per_outcome(exercise):
    md = html_report.feedback_markdown(exercise, outcomes_result())
    page = html_report.feedback_html(exercise, outcomes_result())
    for heading in ("Failed tests", "Checks that could not be run", "Checks not run"):
        assert f"## {heading}" in md and f"<h2>{heading}</h2>" in page
    assert md.index("## Checks not run") < md.index("### f: trained") and "All tests passed" not in md
    only_skipped = SubmissionResult("s.ipynb", "graded", 1.0, 2.0, tests=[
        TestResult("f: a", 1.0, 1.0, "passed"), TestResult("f: b", 0.0, 1.0, "skipped", "not checked because x")])
    assert "All tests passed" not in html_report.feedback_markdown(exercise, only_skipped)


def test_junit_has_native_error_and_skipped_elements(tmp_path, exercise):
    exports.write_junit(tmp_path / "j.xml", exercise, [outcomes_result(), outcomes_result("bo")])
    root = ET.parse(tmp_path / "j.xml").getroot()
    suite = root.find("testsuite")
    kinds = {case.get("name"): [child.tag for child in case] for case in suite.findall("testcase")}
    assert kinds == {"f: built": [], "f: wrong": ["failure"], "f: broken": ["error"], "f: trained": ["skipped"]}
    assert suite.find("testcase[@name='f: trained']/skipped").get("message") == "not checked because f: wrong failed"
    assert [suite.get(k) for k in ("tests", "failures", "errors", "skipped")] == ["4", "1", "1", "1"]
    assert [root.get(k) for k in ("tests", "failures", "errors", "skipped")] == ["8", "2", "2", "2"]


def test_gradescope_shows_errors_and_skips_as_failed_with_the_reason(exercise):
    doc = exports.gradescope_results(exercise, outcomes_result())
    assert [(t["status"], t["output"]) for t in doc["tests"]] == [
        ("passed", ""), ("failed", "expected 1, got 2"),
        ("failed", "this check could not be run: KeyError: 'weights'"),
        ("failed", "not checked because f: wrong failed")]
    assert "1 of 4 tests passed (1 could not be run, 1 not checked)." in doc["output"]
