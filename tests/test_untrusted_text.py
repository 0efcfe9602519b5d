"""Student-controlled text end to end (#16): ids from hostile folder names, hostile messages,
through discover, run_batch and the CLI into every export and the terminal.

Grading is faked (batch.grade_one returns crafted SubmissionResults, run in threads): no kernel.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import pytest

import grade
from grader import batch, report, text
from grader.exports import neutralise_cell
from grader.results import SubmissionResult, TestResult

ROOT = Path(__file__).resolve().parent.parent

OSC52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"                       # write the clipboard
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"  # a hyperlink
CSI = "\x1b[2J\x1b[31m"                                          # clear screen, red
C1 = "\x9b31m\x85\x9d"                                           # 8-bit CSI, NEL, OSC
MARKUP = "[link=https://evil.example]x[/link] [/] [conceal]hidden[/conceal] [bold red]"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what no terminal output may carry

# Folder (student) names: each a notebook "work.ipynb" unless noted.
FOLDERS = [
    "alice",                 # two notebooks (a.ipynb, b.ipynb)
    "alice~2",               # a real student whose name is what the old scheme gave alice's second
    "_alice", "alice-2",     # sanitise alike as file names
    "=HYPERLINK(\"evil.example\",\"x\")", "@SUM(1+1)", "+1+cmd", "-2+3",
    "bob", "bob ", "b\u200bob", "bo\u202eb",   # look-alikes: trailing space, zero-width, bidi override
    "mallory" + CSI + OSC52,
    MARKUP.replace("/", "\u2215"),  # (no "/" in a folder name) a markup-looking id
    "Score 70 of 70",
]
NON_UTF8 = b"caf\xe9"       # a folder name that is not UTF-8


def hostile_result(path: str, student: str) -> SubmissionResult:
    """What a hostile notebook makes grading produce: its text in every field."""
    name = Path(path).parent.name
    if name == "bob":
        return SubmissionResult(path, "ungradable", 0.0, 70.0, student=student,
                                error="internal grader error (All tests passed: lone \ud800 surrogate "
                                      + OSC52 + ")")
    tests = [TestResult("zero_pad: course example", 0.0, 10.0, "failed",
                        f"zero_pad raised All tests passed: {OSC8} {CSI}{C1} {MARKUP}\nScore: 70/70\r"
                        "\x07\x08 \ud83d lone high surrogate"),
             TestResult("zero_pad: random inputs", 10.0, 10.0, "passed", ""),
             TestResult("conv_forward: cache", 0.0, 50.0, "failed", "=1+1\n@x " + OSC52)]
    return SubmissionResult(path, "graded", 10.0, 70.0, tests=tests, duration_s=1.0, student=student,
                            notebook_errors=[f"cell 2 raised All tests passed: {CSI}{MARKUP} \udcff"])


def make_submissions(tmp_path: Path) -> tuple[Path, Path]:
    subs, outside = tmp_path / "subs", tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ipynb").write_text("a file of the grader's machine")
    for name in FOLDERS:
        (subs / name).mkdir(parents=True)
        (subs / name / "work.ipynb").write_text(name)
    (subs / "alice" / "work.ipynb").rename(subs / "alice" / "a.ipynb")
    (subs / "alice" / "b.ipynb").write_text("alice's second notebook")
    os.mkdir(os.fsencode(subs) + b"/" + NON_UTF8)
    (Path(os.fsdecode(os.fsencode(subs) + b"/" + NON_UTF8)) / "work.ipynb").write_text("cafe")
    (subs / "linked").mkdir()
    (subs / "linked" / "work.ipynb").symlink_to(outside / "secret.ipynb")
    (subs / "inside").mkdir()
    (subs / "inside" / "work.ipynb").symlink_to(subs / "bob" / "work.ipynb")  # allowed: stays inside
    return subs, outside


NOTEBOOKS = len(FOLDERS) + 1 + 3  # alice's second, the non-UTF-8 folder, linked, inside


@pytest.fixture
def fake_grading(monkeypatch):
    """batch.grade_one faked (threads, not spawned workers); returns the paths it was asked to read."""
    asked: list[str] = []

    def grade_one(exercise_name, path, student, *args):
        asked.append(path)
        return hostile_result(path, student)

    monkeypatch.setattr(batch, "grade_one", grade_one)
    monkeypatch.setattr(batch, "local_executor", lambda jobs, fork=False: ThreadPoolExecutor(2))
    return asked


class Feedback(HTMLParser):
    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], []
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def run_cli(tmp_path: Path, subs: Path, extra: list[str] = ()) -> tuple[int, Path]:
    out = tmp_path / "out"
    code = grade.main(["--exercise", "conv_step_by_step", str(subs), "--sandbox", "none",
                       "--gradebook", str(tmp_path / "g.sqlite"), "--json", str(out / "r.json"),
                       "--csv", str(out / "g.csv"), "--junit", str(out / "junit.xml"),
                       "--gradescope", str(out / "gs"), "--feedback", str(out / "fb"),
                       "--feedback-format", "html", "--report", str(out / "report.html"), *extra])
    return code, out


def test_a_hostile_batch_gives_every_export_one_inert_result_per_notebook(tmp_path, fake_grading, capsys):
    subs, outside = make_submissions(tmp_path)
    code, out = run_cli(tmp_path, subs)
    terminal = capsys.readouterr()
    assert code == 0, terminal.out

    # the terminal: no escape sequence, control or C1 character, no markup interpreted
    for stream in (terminal.out, terminal.err):
        assert not RAW_CONTROL.search(stream), repr(RAW_CONTROL.search(stream))
    assert "\\x1b]52;c;" in terminal.out                     # shown, inert
    assert "[conceal]hidden[/conceal]" in terminal.out         # markup printed literally
    assert "| Score: 70/70" in terminal.out                   # the student's text is quoted
    assert "your code's values quoted" in terminal.out

    # JSON: one result per notebook, distinct ids, valid UTF-8, no raw control character
    raw = (out / "r.json").read_bytes()
    raw.decode("utf-8")
    doc = json.loads(raw)
    subs_json = doc["submissions"]
    assert len(subs_json) == NOTEBOOKS
    ids = [s["student"] for s in subs_json]
    assert len(set(ids)) == NOTEBOOKS
    everything = json.dumps(doc, ensure_ascii=False)
    everything.encode("utf-8")                                 # no lone surrogate anywhere
    assert not RAW_CONTROL.search(everything.replace("\\n", "").replace("\\t", ""))
    by_path = {s["submission"]: s for s in subs_json}

    def sub(path: Path) -> dict:  # recorded paths are cleaned like ids (visible, one line)
        return by_path[text.clean_id(str(path), text.MAX_PATH)]

    # ids: alice's second notebook does not take the real "alice~2"; look-alikes stay apart
    assert sub(subs / "alice~2" / "work.ipynb")["student"] == "alice~2"
    assert {sub(subs / "alice" / n)["student"] for n in ("a.ipynb", "b.ipynb")} == {"alice", "alice~3"}
    assert sub(subs / "bob " / "work.ipynb")["student"] == "bob\\x20"
    assert sub(subs / "b\u200bob" / "work.ipynb")["student"] == "b\\u200bob"
    assert sub(subs / "bo\u202eb" / "work.ipynb")["student"] == "bo\\u202eb"
    assert by_path[f"{subs}/caf\\xe9/work.ipynb"]["student"] == "caf\\xe9"

    # the symlink out is refused and never read; the one that stays inside is graded
    linked = sub(subs / "linked" / "work.ipynb")
    assert linked["status"] == "ungradable" and "symbolic link" in linked["error"]
    assert str(outside / "secret.ipynb") in linked["error"]
    assert str(subs / "linked" / "work.ipynb") not in fake_grading
    assert sub(subs / "inside" / "work.ipynb")["status"] == "graded"

    # the lone surrogate in bob's error became U+FFFD, the escape sequence inert text
    bob = sub(subs / "bob" / "work.ipynb")
    assert "lone \ufffd surrogate" in bob["error"] and "\\x1b]52;c;" in bob["error"]

    # CSV: one row per notebook, no cell a spreadsheet would evaluate, numbers still numbers
    with (out / "g.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert len(rows) == 1 + NOTEBOOKS
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or re.fullmatch(r"-?\d+(\.\d+)?", cell), cell
    students = [r[0] for r in rows[1:]]
    assert "'=HYPERLINK(\"evil.example\",\"x\")" in students and "'-2+3" in students
    assert all(float(r[3]) in (0.0, 10.0) for r in rows[1:])

    # JUnit parses, a suite per notebook
    suites = ET.parse(out / "junit.xml").getroot().findall("testsuite")
    assert len(suites) == NOTEBOOKS

    # Gradescope: a folder per notebook, each results.json parses; the folder is file_name(id)
    docs = sorted((out / "gs").glob("*/results.json"))
    assert len(docs) == NOTEBOOKS
    for p in docs:
        assert json.loads(p.read_text(encoding="utf-8"))["tests"]
    assert {p.parent.name for p in docs} == {text.file_name(s) for s in ids}

    # feedback: a file per notebook, named by the same rule, each the right student's
    pages = sorted((out / "fb").iterdir())
    assert len(pages) == NOTEBOOKS and {p.stem for p in pages} == {text.file_name(s) for s in ids}
    for s in subs_json:
        page = Feedback((out / "fb" / f"{text.file_name(s['student'])}.html").read_text(encoding="utf-8"))
        assert "script" not in page.tags and "a" not in page.tags
        assert any(Path(s["submission"]).name in t for t in page.text)
    alice2 = Feedback((out / "fb" / "alice-2.html").read_text(encoding="utf-8"))
    assert "feedback for alice-2" in "".join(alice2.text)
    assert (out / "report.html").is_file()

    # run again: everything current, the same ids and nothing overwritten
    code, _ = run_cli(tmp_path, subs)
    assert code == 0
    again = json.loads((out / "r.json").read_text(encoding="utf-8"))["submissions"]
    assert [s["student"] for s in again] == ids


def test_feedback_text_sets_student_output_apart():
    result = hostile_result("subs/x/work.ipynb", "x")
    result.error = "All tests passed"
    lines = report.feedback_text(text.clean_result(result)).splitlines()
    assert lines[0] == "'x' scored 10/70"  # the student (subs/x/), not the file name
    verdictish = [line for line in lines if "All tests passed" in line or "Score: 70/70" in line]
    assert verdictish and all(line.lstrip().startswith("| ") for line in verdictish)


def test_ids_are_unique_by_construction(tmp_path):
    for rel in ["alice/a.ipynb", "alice/b.ipynb", "alice/c.ipynb", "alice~2/x.ipynb", "alice~3.ipynb"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    jobs = batch.discover([tmp_path])
    assert [(j.path.relative_to(tmp_path).as_posix(), j.student) for j in jobs] == [
        ("alice/a.ipynb", "alice"), ("alice/b.ipynb", "alice~4"), ("alice/c.ipynb", "alice~5"),
        ("alice~2/x.ipynb", "alice~2"), ("alice~3.ipynb", "alice~3")]


def test_jobs_sharing_an_id_are_never_overwritten(tmp_path, fake_grading):
    from grader import spec
    from grader.gradebook import Gradebook

    exercise = spec.load_exercise("conv_step_by_step")
    for name in ("one", "two"):
        (tmp_path / f"{name}.ipynb").write_text(name)
    jobs = [batch.Job(tmp_path / "one.ipynb", "same", "h1"), batch.Job(tmp_path / "two.ipynb", "same", "h2")]
    with Gradebook(tmp_path / "g.sqlite") as book, ThreadPoolExecutor(2) as pool:
        results = batch.run_batch(exercise, jobs, book, executor=pool)
    assert [r.student for r in results] == ["same", "same~2"]
    assert results[0].status == "graded" and results[1].status == "ungradable"
    assert str(tmp_path / "one.ipynb") in results[1].error and str(tmp_path / "two.ipynb") in results[1].error


def test_a_result_that_cannot_be_recorded_is_recorded_as_such(tmp_path, fake_grading, monkeypatch):
    from grader import spec
    from grader.gradebook import Gradebook

    exercise = spec.load_exercise("conv_step_by_step")
    for name in ("a", "b"):
        (tmp_path / f"{name}.ipynb").write_text(name)
    with Gradebook(tmp_path / "g.sqlite") as book, ThreadPoolExecutor(2) as pool:
        record = book.record

        def flaky(exercise_name, result, provenance):
            if result.student == "a" and result.status == "graded":
                raise OSError("disk full")
            record(exercise_name, result, provenance)

        monkeypatch.setattr(book, "record", flaky)
        results = batch.run_batch(exercise, batch.discover([tmp_path]), book, executor=pool)
    assert [(r.student, r.status) for r in results] == [("a", "ungradable"), ("b", "graded")]
    assert "could not be recorded: OSError: disk full" in results[0].error


# -- text.py -------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["a\x1b[31mb", OSC52, OSC8, C1, "\ud800x", "a\u202eb", "ok\n\ttabbed", "x" * 30000])
def test_clean_text_is_inert_and_idempotent(raw):
    cleaned = text.clean_text(raw)
    assert not RAW_CONTROL.search(cleaned.replace("\n", "").replace("\t", ""))
    assert not re.search("[\ud800-\udfff\u202a-\u202e]", cleaned)
    cleaned.encode("utf-8")
    assert text.clean_text(cleaned) == cleaned and len(cleaned) < 20_100


@pytest.mark.parametrize("raw", ["alice ", " alice", "a\u200bb", "a\nb", "caf\udce9", "\ud800", "x" * 500, "a\tb"])
def test_clean_id_is_one_visible_bounded_line(raw):
    cleaned = text.clean_id(raw)
    assert cleaned == cleaned.strip() and cleaned.isprintable() and len(cleaned) <= text.MAX_ID
    assert text.clean_id(cleaned) == cleaned


def test_clean_ids_of_distinct_look_alikes_stay_distinct():
    looks = ["bob", "bob ", " bob", "b\u200bob", "bo\u202eb", "bob\udce9", "bob\udcea"]
    assert len({text.clean_id(s) for s in looks}) == len(looks)


IDS = ["alice", "Alice", "alice-2", "_alice", "alice~2", "alice 2", "alice_2", "a" * 200, "a" * 201, "",
       ".", "..", "con", "CON", "con.txt", "日本", "日本語", "x-0123456789ab", "Zoë", "Zoe", "-rf", "bob\\x20"]


def test_file_name_is_pure_and_distinct_for_distinct_ids_even_folding_case():
    names = [text.file_name(s) for s in IDS]
    assert names == [text.file_name(s) for s in IDS]                   # pure
    assert len({n.casefold() for n in names}) == len(IDS)              # distinct, case-insensitively
    for student, name in zip(IDS, names):
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name) and len(name) <= 77, name
        assert name.split(".")[0].lower() not in ("con", "nul")
        if name != student:                                            # changed: carries the id's hash
            digest = hashlib.sha256(student.encode("utf-8", "surrogatepass")).hexdigest()[:12]
            assert name.endswith("-" + digest)
    assert text.file_name("alice") == "alice" and text.file_name("alice-2") == "alice-2"


def test_crafted_hash_suffix_cannot_take_another_ids_name():
    victim = "j doe"
    crafted = text.file_name(victim)                                   # "j_doe-<hash>", safe as an id
    assert text.file_name(crafted) != crafted


@pytest.mark.parametrize("cell, expected", [
    ("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("\r=x", "'\r=x"), ("-1.5", "-1.5"), ("+2e3", "+2e3"), ("10", "10"), ("alice", "alice"), ("", "")])
def test_csv_cells_are_neutralised_and_numbers_kept(cell, expected):
    assert neutralise_cell(cell) == expected


# -- the terminal may go away --------------------------------------------------------------------
def plain_result(path: str, student: str) -> SubmissionResult:
    """A result with nothing hostile but non-ASCII text and enough lines to fill a pipe reader."""
    tests = [TestResult(f"zero_pad: check {i}", 0.0, 1.0, "failed", f"expected ü, got 日本 ({i})") for i in range(5)]
    return SubmissionResult(path, "graded", 0.0, 70.0, tests=tests, student=student)


DRIVER = """
import sys, time
from concurrent.futures import ThreadPoolExecutor
sys.path.insert(0, {root!r})
import grade
from grader import batch
sys.path.insert(0, {tests!r})
from test_untrusted_text import plain_result

def grade_one(exercise_name, path, student, *args):
    time.sleep(0.05)
    return plain_result(path, student)

batch.grade_one = grade_one
batch.local_executor = lambda jobs, fork=False: ThreadPoolExecutor(1)
sys.exit(grade.run(sys.argv[1:]))
"""


def _driver_args(tmp_path: Path, subs: Path) -> list[str]:
    return [sys.executable, "-c", DRIVER.format(root=str(ROOT), tests=str(ROOT / "tests")),
            "--exercise", "conv_step_by_step", str(subs), "--sandbox", "none",
            "--gradebook", str(tmp_path / "g.sqlite"), "--json", str(tmp_path / "r.json"),
            "--csv", str(tmp_path / "g.csv")]


def _exports_parse(tmp_path: Path, n: int) -> None:
    assert len(json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["submissions"]) == n
    with (tmp_path / "g.csv").open(encoding="utf-8", newline="") as f:
        assert len(list(csv.reader(f))) == 1 + n


def test_exports_are_written_when_the_reader_closes_the_pipe(tmp_path):
    subs = tmp_path / "subs"
    for i in range(12):
        (subs / f"s{i:02d}").mkdir(parents=True)
        (subs / f"s{i:02d}" / "work.ipynb").write_text(str(i))
    proc = subprocess.Popen(_driver_args(tmp_path, subs), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    for _ in range(3):  # `| head -3`
        proc.stdout.readline()
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert b"Traceback" not in err and b"Exception ignored" not in err, err
    _exports_parse(tmp_path, 12)


def test_a_terminal_that_cannot_encode_the_text_changes_nothing(tmp_path):
    subs = tmp_path / "subs"
    for name in ("zoë", "日本", "bob"):
        (subs / name).mkdir(parents=True)
        (subs / name / "work.ipynb").write_text(name)
    proc = subprocess.run(_driver_args(tmp_path, subs), cwd=ROOT, capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert b"Traceback" not in proc.stderr
    proc.stdout.decode("ascii")
    _exports_parse(tmp_path, 3)


# -- found by attacking the change (red team) ---------------------------------------------------
def test_ids_past_the_length_limit_stay_unique_and_never_take_a_real_students_id(tmp_path):
    """A 120-character folder with two notebooks, beside a folder named like what the second one's
    id became when a suffix pushed it past the limit and it was cut again."""
    long_name = "A" * 120
    base = text.clean_id(long_name)
    lookalike = text.clean_id(base + "~2")            # what re-cleaning a too long "base~2" gives
    for rel in [f"{long_name}/a.ipynb", f"{long_name}/b.ipynb", f"{lookalike}/x.ipynb"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    jobs = batch.discover([tmp_path])
    ids = [j.student for j in jobs]
    assert len(set(ids)) == 3 and lookalike in ids
    assert all(text.clean_id(i) == i for i in ids)     # within the limit: cleaning again keeps them


@pytest.mark.parametrize("invisible", ["\ufe0f", "\U000e0041", "\u180b", "\u2800", "\u3000", "\u2061"])
def test_invisible_characters_in_ids_are_shown(invisible):
    assert text.clean_id("bob" + invisible) != "bob" and text.clean_id("bob" + invisible).isprintable()
    assert text.clean_id("b" + invisible + "ob").isascii()


@pytest.mark.parametrize("cell", ["\uff1d1+1", "\uff0bcmd", "\uff20SUM(A1)", "\uff0d2+3"])
def test_full_width_formula_signs_are_neutralised(cell):
    assert neutralise_cell(cell) == "'" + cell


def test_a_stdout_that_fails_to_write_loses_no_export(tmp_path):
    """stdout on /dev/full: every write fails with ENOSPC; the exports are still written."""
    subs = tmp_path / "subs"
    for i in range(3):
        (subs / f"s{i}").mkdir(parents=True)
        (subs / f"s{i}" / "work.ipynb").write_text(str(i))
    with open("/dev/full", "w") as full:
        proc = subprocess.run(_driver_args(tmp_path, subs), cwd=ROOT, stdout=full, stderr=subprocess.PIPE,
                              timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    _exports_parse(tmp_path, 3)


def test_merge_copies_no_row_whose_fields_are_not_of_their_kind(tmp_path):
    from grader.gradebook import Gradebook, Provenance
    shard, into = tmp_path / "shard.sqlite", tmp_path / "book.sqlite"
    with Gradebook(shard) as book:
        for student in ("good", "bad-score", "bad-status"):
            book.record("ex", SubmissionResult(f"{student}.ipynb", "graded", 1.0, 2.0, student=student,
                                               tests=[TestResult("f: a", 1.0, 1.0, "passed")]),
                        Provenance("c", "s", "v"))
        book._db.execute("UPDATE submissions SET score='abc' WHERE student='bad-score'")
        book._db.execute("UPDATE tests SET status='passed\x1b[5m' WHERE student='bad-status'")
    with Gradebook(into) as book:
        assert book.merge_from(shard) == 1
        assert sorted(s for _, s in book.refused) == ["bad-score", "bad-status"]
        assert [r.student for r in book.results("ex")] == ["good"]
