"""grader/html_report.py: the numbers are right, untrusted text stays text, files stay put.

The last test renders the class report in headless Chromium (marked slow) to check what a
browser really shows: the tables, two decodable PNG charts, and a non-blank page.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import statistics
import subprocess
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from markdown_it import MarkdownIt
from matplotlib import image as mpimg

from grader import html_report
from grader.results import SubmissionResult, TestResult
from grader.spec import Exercise, load_exercise

HOSTILE = "<script>alert(1)</script>"
BACKTICKS = "````"  # longer than the usual ``` fence
GENERATED = datetime(2025, 3, 14, 9, 26)


# -- building results --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exercise() -> Exercise:
    return load_exercise("conv_step_by_step")


def check_names(exercise: Exercise) -> list[tuple[str, float]]:
    """Every test the exercise grades, with its points (an item's points split over its checks)."""
    out = []
    for item in exercise.items:
        checks = exercise.checks.CHECKS[item.name]
        total = sum(c.weight for c in checks)
        out += [(f"{item.name}: {c.aspect}", item.points * c.weight / total) for c in checks]
    return out


def graded(exercise: Exercise, student: str, failing: dict[str, str], duration: float,
           notebook_errors: list[str] | None = None) -> SubmissionResult:
    tests = [TestResult(name, 0.0 if name in failing else pts, pts,
                        "failed" if name in failing else "passed", failing.get(name, ""))
             for name, pts in check_names(exercise)]
    return SubmissionResult(f"submissions/{student or 'anonymous'}.ipynb", "graded",
                            round(sum(t.score for t in tests), 2), exercise.max_score, tests=tests,
                            duration_s=duration, notebook_errors=notebook_errors or [], student=student)


CACHE_OUTPUT = (f"conv_forward returned a wrong cache for\n  A_prev = array of shape (1, 1, 1, 1)\n"
                f"  hparameters = {{'stride': 1, 'pad': 0}}\nexpected: (A_prev, W, b, hparameters)\n"
                f"got:      {HOSTILE} & {BACKTICKS}python\n```\n  a & b < c > d \"q\" 'r'")
PAD_OUTPUT = "zero_pad(X, pad=1) has shape (1, 3, 3, 1)\nexpected: (1, 5, 5, 1)\n``\n`"
RANDOM_OUTPUT = "conv_forward failed on\n  W = array([[1, 2]])\n```````\ngot [[0.]] & expected [[1.]]"
UNGRADABLE_ERROR = f"not a notebook: Expecting value: line 1 column 1 {HOSTILE} & ```"


@pytest.fixture(scope="module")
def results(exercise: Exercise) -> list[SubmissionResult]:
    return [
        graded(exercise, "alice", {}, 12.5),
        graded(exercise, "bob", {"conv_forward: cache": CACHE_OUTPUT,
                                 "pool_backward: random inputs": "pool_backward: wrong dA_prev"}, 40.0,
               notebook_errors=[f"cell 7 raised NameError: name 'x' is not defined {HOSTILE}"]),
        graded(exercise, "dan", {"conv_forward: cache": CACHE_OUTPUT,
                                 "zero_pad: course example": PAD_OUTPUT}, 8.25),
        SubmissionResult("submissions/carol.ipynb", "ungradable", 0.0, exercise.max_score,
                         error=UNGRADABLE_ERROR, duration_s=0.5, student="carol"),
        graded(exercise, "eve", {"conv_forward: course example": "x", "conv_forward: random inputs": RANDOM_OUTPUT,
                                 "conv_forward: cache": CACHE_OUTPUT}, 95.0),
    ]


# -- reading HTML back -------------------------------------------------------------------------
class Page(HTMLParser):
    """Tables by id (rows of cell texts), img attributes, and every start tag seen."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[dict[str, str]] = []
        self.tags: list[str] = []
        self.pre: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_pre = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self._table = a.get("id", f"table{len(self.tables)}")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(a)
        elif tag == "pre":
            self._in_pre = True
            self.pre.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "pre":
            self._in_pre = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_pre:
            self.pre[-1] += data


def body_rows(page: Page, table: str) -> list[list[str]]:
    return page.tables[table][1:]  # without the header row


def decode_png(uri: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    data = base64.b64decode(uri[len(prefix):], validate=True)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(io.BytesIO(data), format="png")


# -- class report: numbers -----------------------------------------------------------------------
def test_class_report_counts_and_mean(exercise: Exercise, results: list[SubmissionResult]) -> None:
    report = html_report.class_report(exercise, results, generated=GENERATED)
    scores = [r.score for r in results if r.status == "graded"]
    stats = html_report.class_stats(exercise, results)
    assert (stats.submissions, stats.graded, stats.ungradable) == (5, 4, 1)
    assert stats.mean == pytest.approx(statistics.fmean(scores))
    assert stats.median == pytest.approx(statistics.median(scores))
    # the numbers as printed: the cards read value then key
    text = re.sub(r"<[^>]+>", " ", report)
    words = " ".join(text.split())
    assert "5 submissions" in words and "4 graded" in words and "1 ungradable" in words
    mean = f"{statistics.fmean(scores):.2f}".rstrip("0").rstrip(".")
    assert f"{mean}/{exercise.max_score:g} mean score (graded)" in words
    assert exercise.title in words and "2025-03-14" in words


def test_class_report_pass_rates(exercise: Exercise, results: list[SubmissionResult]) -> None:
    page = Page(html_report.class_report(exercise, results, generated=GENERATED))
    rows = {r[0]: (r[1], r[2]) for r in body_rows(page, "pass-rates")}
    names = [name for name, _ in check_names(exercise)]
    assert list(rows) == names  # every check once, in the exercise's order
    assert rows["conv_forward: cache"] == ("1/4", "25%")
    assert rows["zero_pad: course example"] == ("3/4", "75%")
    assert rows["conv_forward: random inputs"] == ("3/4", "75%")
    assert rows["pool_backward: random inputs"] == ("3/4", "75%")
    assert rows["zero_pad: random inputs"] == ("4/4", "100%")
    # the ungradable submission counts in no denominator
    assert all(total.endswith("/4") for total, _ in rows.values())


def test_class_report_slowest_and_ungradable(exercise: Exercise, results: list[SubmissionResult]) -> None:
    many = results + [graded(exercise, f"s{i:02d}", {}, float(i)) for i in range(12)]
    page = Page(html_report.class_report(exercise, many, generated=GENERATED))
    slow = body_rows(page, "slowest")
    assert len(slow) == 10
    assert [r[0] for r in slow[:4]] == ["eve", "bob", "alice", "s11"]
    assert slow[0][4] == "95.0 s"
    bad = body_rows(page, "ungradable")
    assert [r[0] for r in bad] == ["carol"]
    assert bad[0][2] == UNGRADABLE_ERROR  # verbatim once unescaped


def test_class_report_is_self_contained_and_escaped(exercise: Exercise, results: list[SubmissionResult]) -> None:
    evil = SubmissionResult(f"x/{HOSTILE}.ipynb", "ungradable", 0.0, exercise.max_score,
                            error=HOSTILE, student=f'"><img src=x onerror=alert(1)>{HOSTILE}')
    report = html_report.class_report(exercise, results + [evil], generated=GENERATED)
    page = Page(report)
    assert "script" not in page.tags
    assert page.tags.count("img") == 2  # only the two charts; the student's <img> stays text
    assert "<script" not in report.lower().replace("&lt;script", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report
    assert not re.search(r"(src|href)=\"(https?:)?//", report)  # no external resource
    assert "<link" not in report
    for img in page.images:
        assert img["alt"].strip()
        assert decode_png(img["src"]).shape[0] > 100


def test_class_report_without_graded_submissions(exercise: Exercise) -> None:
    only = [SubmissionResult("a.ipynb", "ungradable", 0.0, exercise.max_score, error="broken", student="a")]
    page = Page(html_report.class_report(exercise, only))
    assert len(page.images) == 2
    assert body_rows(page, "ungradable")[0][2] == "broken"
    html_report.class_report(exercise, [])  # an empty batch still renders


def test_write_class_report(tmp_path: Path, exercise: Exercise, results: list[SubmissionResult]) -> None:
    path = html_report.write_class_report(tmp_path / "out" / "class.html", exercise, results, GENERATED)
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


# -- per-student feedback --------------------------------------------------------------------
def test_feedback_html_escapes_and_keeps_output_verbatim(exercise: Exercise, results: list[SubmissionResult]) -> None:
    bob = results[1]
    text = html_report.feedback_html(exercise, bob)
    pts = {item.name: item.points for item in exercise.items}
    page = Page(text)
    assert "script" not in page.tags
    assert CACHE_OUTPUT in page.pre  # verbatim, monospace, once unescaped
    assert any(HOSTILE in p for p in page.pre)  # the notebook problem
    items = {r[0]: r[1] for r in body_rows(page, "table0")}
    assert items["conv_forward"] == f"{round(pts['conv_forward'] * 2 / 3, 2):g}/{pts['conv_forward']:g}"
    assert items["pool_backward"] == f"{pts['pool_backward'] / 2:g}/{pts['pool_backward']:g}"
    assert items["zero_pad"] == f"{pts['zero_pad']:g}/{pts['zero_pad']:g}"
    assert f"Score: {bob.score:g}/{exercise.max_score:g}" in text


def test_feedback_html_ungradable(exercise: Exercise, results: list[SubmissionResult]) -> None:
    page = Page(html_report.feedback_html(exercise, results[3]))
    assert page.pre == [UNGRADABLE_ERROR]
    assert "script" not in page.tags


def rendered_code_blocks(markdown: str) -> tuple[str, list[str]]:
    """Render with a CommonMark parser (+ tables): the HTML, and every code block's text."""
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    page = Page(rendered)
    return rendered, page.pre


def test_feedback_markdown_fences_hold(exercise: Exercise, results: list[SubmissionResult]) -> None:
    for r in results:
        md = html_report.feedback_markdown(exercise, r)
        rendered, blocks = rendered_code_blocks(md)
        page = Page(rendered)
        assert "script" not in page.tags and "img" not in page.tags
        expected = [t.output for t in r.tests if t.status == "failed"] + r.notebook_errors
        if r.status != "graded":
            expected = [r.error]
        assert sorted(b.rstrip("\n") for b in blocks) == sorted(expected), r.student


def test_feedback_markdown_table_and_score(exercise: Exercise, results: list[SubmissionResult]) -> None:
    eve = results[4]
    md = html_report.feedback_markdown(exercise, eve)
    conv = next(item.points for item in exercise.items if item.name == "conv_forward")
    assert f"**Score: {exercise.max_score - conv:g}/{exercise.max_score:g}**" in md
    page = Page(MarkdownIt("commonmark").enable("table").render(md))
    table = body_rows(page, "table0")
    assert [r[0] for r in table] == [item.name for item in exercise.items]
    assert dict(table)["conv_forward"] == f"0/{conv:g}"
    assert "All tests passed." in html_report.feedback_markdown(exercise, results[0])


def test_markdown_text_is_literal() -> None:
    name = "a*b_c [x](http://e) <b>|&amp; `t` ~~s~~ $m$"
    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(
        "# " + html_report.md_text(name))
    page = Page(rendered)
    assert page.tags == ["h1"]
    assert html_report.md_code_block("a\n``````\nb").startswith("```````text\n")


# -- feedback files ----------------------------------------------------------------------------
def _hash(student: str) -> str:
    return hashlib.sha256(student.encode()).hexdigest()[:12]


def test_write_feedback_names_are_safe_and_distinct(tmp_path: Path, exercise: Exercise,
                                                    results: list[SubmissionResult]) -> None:
    awkward = ["../../etc/passwd", "Bob", "bob", "bob", "", "Zoë O'Brien", ".hidden", "CON",
               "a/b\\c", "\x00nul", "x" * 300, "李雷", "韩梅梅"]
    batch = results + [graded(exercise, s, {}, 1.0) for s in awkward]
    folder = tmp_path / "feedback"
    for fmt in ("md", "html"):
        paths = html_report.write_feedback(folder, exercise, batch, fmt)
        assert len(paths) == len(batch)
        assert len({p.name.lower() for p in paths}) == len(paths)
        for p in paths:
            assert p.parent == folder.resolve() and p.is_file() and p.suffix == f".{fmt}"
            assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", p.name), p.name
            assert len(p.name) < 100 and p.stem.split(".")[0].lower() != "con"
        names = [p.name for p in paths]
        assert names[:5] == [f"alice.{fmt}", f"bob.{fmt}", f"dan.{fmt}", f"carol.{fmt}", f"eve.{fmt}"]
        # text.file_name: a changed id keeps a readable prefix plus a hash of the id, so the
        # name depends on the id alone (not on which other students are in the batch)
        assert names[5] == f"etc_passwd-{_hash('../../etc/passwd')}.{fmt}"
        assert names[6] == f"Bob-{_hash('Bob')}.{fmt}"
        assert names[7:9] == [f"bob-2.{fmt}", f"bob-3.{fmt}"]  # the very same id again: a guard
        assert names[9] == f"anonymous.{fmt}"  # no student: the submission's stem
        assert names[10] == f"Zoe_O_Brien-{_hash(awkward[5])}.{fmt}"
    assert sorted(os.listdir(tmp_path)) == ["feedback"]
    assert len(os.listdir(folder)) == 2 * len(batch)
    assert HOSTILE in (folder / "bob.md").read_text(encoding="utf-8")
    assert HOSTILE not in (folder / "bob.html").read_text(encoding="utf-8")
    with pytest.raises(ValueError):
        html_report.write_feedback(folder, exercise, batch, "pdf")  # type: ignore[arg-type]


# -- in a real browser ---------------------------------------------------------------------------
def chromium_binary() -> str | None:
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_class_report_in_headless_chromium(tmp_path: Path, exercise: Exercise,
                                           results: list[SubmissionResult]) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("Chromium is not installed (no /usr/bin/chromium, no chromium on PATH); "
                    "apt-get install -y chromium")
    report = html_report.write_class_report(tmp_path / "class.html", exercise, results, GENERATED)
    url = report.resolve().as_uri()

    dumped = run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", url)
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    page = Page(dumped.stdout)
    assert "script" not in page.tags
    rates = body_rows(page, "pass-rates")
    assert len(rates) == len(check_names(exercise))
    assert ["conv_forward: cache", "1/4", "25%", ""] in rates
    assert [r[0] for r in body_rows(page, "ungradable")] == ["carol"]
    assert len(page.images) == 2
    for img in page.images:
        pixels = decode_png(img["src"])
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100

    shot = tmp_path / "shot.png"
    taken = run_chromium(binary, tmp_path / "profile-shot", f"--screenshot={shot}",
                         "--window-size=1200,1600", "--hide-scrollbars", url)
    assert taken.returncode == 0 and shot.is_file(), taken.stderr[-2000:]
    pixels = mpimg.imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    rgb = (pixels[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    colours = np.unique(rgb, axis=0)
    assert len(colours) > 50  # text, tables, charts: not a blank page
    non_white = np.any(rgb < 245, axis=1).mean()
    assert 0.02 < non_white < 0.9
