"""One rule for each job (#17): who a result is for (text.student_of, text.path_id), how points
are written (text.format_score), and which file name a student gets (text.file_name). Every
output (the terminal table and feedback, CSV, Gradescope, JUnit, Markdown/HTML feedback and the
class report) must say the same thing for the same result."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console

from grader import exports, html_report, spec, text
from grader.batch import discover
from grader.report import feedback_text, summary_table
from grader.results import SubmissionResult, TestResult


@pytest.fixture(scope="module")
def exercise() -> spec.Exercise:
    return spec.load_exercise("conv_step_by_step")


def render(table) -> str:
    console = Console(width=250, record=True, color_system=None)
    console.print(table)
    return console.export_text()


def scored(score: float, student: str = "ana", submission: str = "subs/ana/W1A1.ipynb") -> SubmissionResult:
    """A graded result whose total and zero_pad item both score `score` (zero_pad's max is 10)."""
    tests = [TestResult("zero_pad: course example", score, score, "passed"),
             TestResult("zero_pad: random inputs", 0.0, 10.0 - score, "failed", "wrong")]
    return SubmissionResult(submission, "graded", score, 70.0, tests=tests, student=student, duration_s=1.0)


def every_score_shown(exercise: spec.Exercise, result: SubmissionResult) -> dict[str, tuple[str, str]]:
    """output -> (the total's text, the zero_pad item's text) as that output writes them."""
    table = render(summary_table(exercise, [result]))
    row = next(line for line in table.splitlines() if line.startswith("│ ana "))
    cells = [c.strip() for c in row.strip("│").split("│")]
    items = [item.name for item in exercise.items]
    _, rows = exports.csv_rows(exercise, [result])
    md = html_report.feedback_markdown(exercise, result)
    page = html_report.feedback_html(exercise, result)
    report = html_report.class_report(exercise, [result])
    summary = exports.gradescope_results(exercise, result)["output"]

    def one(pattern: str, doc: str) -> str:
        found = re.findall(pattern, doc)
        assert len(found) == 1, (pattern, doc[:2000])
        return html.unescape(found[0])

    return {
        "table": (cells[1].split("/")[0], cells[2 + items.index("zero_pad")].split("/")[0]),
        "terminal feedback": (one(r"^'ana' scored ([^/]+)/70", feedback_text(result)), "-"),
        "csv": (rows[0]["score"], rows[0]["zero_pad"]),
        "markdown": (one(r"\*\*Score: ([^/]+)/70\*\*", md), one(rf"\| {re.escape(html_report.md_text('zero_pad'))} \| ([^/]+)/10 \|", md)),
        "html": (one(r'<p class="score">Score: ([^/]+)/70</p>', page),
                 one(r'<td>zero_pad</td><td class="num">([^/]+)/10</td>', page)),
        "class report": (one(r'<td class="num">([^/<]+)/70</td>', report), "-"),
        "gradescope": (one(r": ([^/ ]+)/70 points", summary), one(r"(?m)^zero_pad: ([^/]+)/10$", summary)),
    }


@pytest.mark.parametrize("score, written", [
    (20 / 3, "6.67"),                  # an unrounded third: "6.66667" in the table, "6.667" nowhere
    (1.1 + 2.2, "3.3"),                # float noise of a sum of shares (3.3000000000000003)
    (1234567.5, "1234567.5"),          # {:g} would write 1.23457e+06
    (10.0, "10"),
    (0.5, "0.5"),
    (4e-9, "0"),                       # never "4e-09" nor "-0"
])
def test_every_output_writes_a_score_the_same_way(exercise, score, written):
    assert text.format_score(score) == written
    shown = every_score_shown(exercise, scored(score))
    assert {where: total for where, (total, _) in shown.items()} == dict.fromkeys(shown, written)
    items = {where: item for where, (_, item) in shown.items() if item != "-"}
    assert items == dict.fromkeys(items, written)


def test_format_score_never_loses_a_hundredth_of_a_share():
    """Shares are whole hundredths (grading._shares): formatting one gives it back exactly."""
    for cents in range(0, 100_001, 7):
        assert float(text.format_score(cents / 100)) == cents / 100


# -- who a result is for ------------------------------------------------------------------------------
def names_everywhere(exercise: spec.Exercise, result: SubmissionResult, tmp_path) -> dict[str, str]:
    """output -> the name it gives the result's student."""
    table = render(summary_table(exercise, [result]))
    row = next(line for line in table.splitlines() if "/70" in line)
    _, rows = exports.csv_rows(exercise, [result])
    suite = exports.junit_tree(exercise, [result]).getroot().find("testsuite")
    assert isinstance(suite, ET.Element)
    md = html_report.feedback_markdown(exercise, result)
    page = html_report.feedback_html(exercise, result)
    report = html_report.class_report(exercise, [result])
    return {
        "table": row.strip("│").split("│")[0].strip(),
        "terminal feedback": re.match(r"^'(.*)' scored ", feedback_text(result))[1],
        "csv": rows[0]["student"],
        "junit": suite.get("name"),
        "markdown": re.search(r"^# .*: feedback for (.*)$", md, re.M)[1],
        "html": html.unescape(re.search(r"<h1>.*: feedback for (.*)</h1>", page)[1]),
        "class report": html.unescape(re.search(r'<table id="slowest">.*?<tr><td>(.*?)</td>', report, re.S)[1]),
    }


@pytest.mark.parametrize("file_name", ["mine.ipynb", "Ana López (1).ipynb", "x.y.ipynb"])
def test_a_notebook_without_a_recorded_student_has_one_name_everywhere(exercise, tmp_path, file_name):
    """The self-check grades a notebook on its own: no student is recorded. Every output names it
    as batch.discover names that notebook given by itself (its cleaned stem), and its files are
    text.file_name of that name."""
    path = tmp_path / file_name
    path.write_text("{}")
    [job] = discover([path])
    result = SubmissionResult(str(path), "graded", 5.0, 70.0, tests=[
        TestResult("zero_pad: course example", 5.0, 5.0, "passed")], duration_s=1.0)
    assert text.student_of(result) == job.student
    assert names_everywhere(exercise, result, tmp_path) == dict.fromkeys(
        names_everywhere(exercise, result, tmp_path), job.student)
    [feedback] = html_report.write_feedback(tmp_path / "fb", exercise, [result], "md")
    [gradescope] = exports.write_gradescope(tmp_path / "gs", exercise, [result])
    assert feedback.stem == gradescope.parent.name == text.file_name(job.student)


def test_a_recorded_student_is_the_name_everywhere_not_the_notebook(exercise, tmp_path):
    """The README's layout, submissions/alice/W1A1.ipynb: alice everywhere, W1A1 as a name nowhere."""
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "W1A1.ipynb").write_text("{}")
    [job] = discover([tmp_path])
    assert job.student == "alice" == text.path_id(job.path.relative_to(tmp_path))
    result = SubmissionResult(str(job.path), "graded", 5.0, 70.0, student=job.student, duration_s=1.0)
    assert set(names_everywhere(exercise, result, tmp_path).values()) == {"alice"}


def test_path_id_is_the_folder_for_a_notebook_in_one_else_the_stem():
    from pathlib import PurePath

    assert text.path_id(PurePath("alice/W1A1.ipynb")) == "alice"
    assert text.path_id(PurePath("alice/week1/W1A1.ipynb")) == "alice"
    assert text.path_id(PurePath("bob.ipynb")) == "bob"
    assert text.path_id(PurePath("bob.v2.ipynb")) == "bob.v2"
