"""Anything that is not a usable notebook is 'ungradable' with a message saying why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import nbformat
import pytest

from grader import notebook


def write(tmp_path, content: bytes | str, name="sub.ipynb"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def good_notebook() -> str:
    # a fixed cell id: the text is a test parameter, and pytest-xdist needs the same ids on every worker
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", id="cell-1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="old output")]
    return nbformat.writes(nb)


def test_a_valid_notebook_loads_with_its_old_outputs_dropped(tmp_path):
    nb = notebook.load(write(tmp_path, good_notebook()))
    assert nb.cells[0].source == "x = 1" and nb.cells[0].outputs == []


@pytest.mark.parametrize("content, message", [
    ("def zero_pad(X, pad): ...", "invalid JSON"),
    (good_notebook()[:200], "cut short"),
    (b"\xff\xfe\x00binary", "not UTF-8"),
    ('{"hello": 1}', "no cells"),
    (json.dumps({"cells": [], "metadata": {}, "nbformat": 99, "nbformat_minor": 0}), "version 99"),
    (json.dumps({"cells": [{"cell_type": "code"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}),
     "not a valid notebook"),
])
def test_unusable_files_are_ungradable_with_a_reason(tmp_path, content, message):
    with pytest.raises(notebook.Ungradable, match=message):
        notebook.load(write(tmp_path, content))


def test_a_missing_file_is_ungradable(tmp_path):
    with pytest.raises(notebook.Ungradable, match="cannot read"):
        notebook.load(tmp_path / "nope.ipynb")


def test_defining_cells_finds_every_definition_not_the_header_comment():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# GRADED FUNCTION: zero_pad\nx = 1"),
        nbformat.v4.new_code_cell("def zero_pad(X, pad):\n    return X"),
        nbformat.v4.new_markdown_cell("def zero_pad("),
        nbformat.v4.new_code_cell("import numpy\n    def zero_pad (X, pad): pass"),
    ])
    assert notebook.defining_cells(nb, "zero_pad") == [1, 3]


HUGE_CELLS = """
import nbformat
from grader import notebook
nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("\\n" * (1 << 20) + "x"),
                                     nbformat.v4.new_code_cell("\\n" * (1 << 20) + "    zero_pad = None")])
print(notebook.defining_cells(nb, "zero_pad"))
"""


def test_defining_cells_on_a_huge_cell_of_newlines_finds_nothing_and_returns():
    # In a child process: a regex search holds the GIL, so a regression could not be timed out in a thread.
    try:
        done = subprocess.run([sys.executable, "-c", HUGE_CELLS], capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).resolve().parent.parent)
    except subprocess.TimeoutExpired:
        pytest.fail("defining_cells did not return on two 1 MB cells of newlines")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1]"


def test_defining_cells_finds_indented_definitions_and_assignments_not_comparisons():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("\n" * 1000 + "if True:\n\tdef zero_pad(X, pad):\n\t\treturn X"),
        nbformat.v4.new_code_cell("\n\n   model = build()"),
        nbformat.v4.new_code_cell("assert model == 1\nmodel== 2"),
        nbformat.v4.new_code_cell("x = 1\n  \n    def  zero_pad  (X, pad): pass"),
    ])
    assert notebook.defining_cells(nb, "zero_pad") == [0, 3]
    assert notebook.defining_cells(nb, "model") == [1]


def test_deeply_nested_json_is_ungradable(tmp_path):
    content = '{"cells": ' + "[" * 100_000 + "]" * 100_000 + ', "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    with pytest.raises(notebook.Ungradable, match="nested too deeply"):
        notebook.load(write(tmp_path, content))


def test_deeply_nested_json_inside_a_cell_is_ungradable(tmp_path):
    doc = {"cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
                      "source": "x = 1"}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    content = json.dumps(doc).replace('"metadata": {}', '"metadata": {"a": ' + "[" * 50_000 + "]" * 50_000 + "}", 1)
    with pytest.raises(notebook.Ungradable, match="nested too deeply"):
        notebook.load(write(tmp_path, content))


def load_in_thread(path):
    """notebook.load(path) in a thread: (finished in time, what it returned or raised)."""
    outcome = []

    def target():
        try:
            outcome.append(notebook.load(path))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=10)
    return not thread.is_alive(), outcome[0] if outcome else None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_ungradable_without_blocking(tmp_path):
    fifo = tmp_path / "sub.ipynb"
    os.mkfifo(fifo)
    finished, outcome = load_in_thread(fifo)
    if not finished:  # unblock the stuck reader so the thread can end
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    assert finished, "load() blocked on a FIFO"
    assert isinstance(outcome, notebook.Ungradable) and "not a regular file" in str(outcome)


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="no /dev/null here")
def test_a_device_is_ungradable(tmp_path):
    link = tmp_path / "sub.ipynb"
    link.symlink_to("/dev/null")  # not /dev/zero: were it read, it would never end
    with pytest.raises(notebook.Ungradable, match="not a regular file"):
        notebook.load(link)


def test_a_directory_is_ungradable(tmp_path):
    with pytest.raises(notebook.Ungradable, match="not a regular file"):
        notebook.load(tmp_path)


def test_a_symlink_to_a_notebook_is_still_followed(tmp_path):
    link = tmp_path / "link.ipynb"
    link.symlink_to(write(tmp_path, good_notebook()))
    assert notebook.load(link).cells[0].source == "x = 1"


def test_a_file_over_the_limit_is_ungradable(tmp_path, monkeypatch):
    monkeypatch.setattr(notebook, "MAX_NOTEBOOK_BYTES", 100)
    with pytest.raises(notebook.Ungradable, match="are not graded"):
        notebook.load(write(tmp_path, good_notebook()))


def test_a_lone_surrogate_escape_is_ungradable(tmp_path):
    """It loads as JSON, but the notebook could not be written out as UTF-8 for the kernel."""
    doc = json.loads(good_notebook())
    doc["cells"][0]["source"] = "x = '\ud800'"
    with pytest.raises(notebook.Ungradable, match="not valid Unicode"):
        notebook.load(write(tmp_path, json.dumps(doc)))


def test_an_emoji_written_as_an_escaped_surrogate_pair_still_loads(tmp_path):
    doc = json.loads(good_notebook())
    doc["cells"][0]["source"] = "x = '\U0001F600'"
    assert notebook.load(write(tmp_path, json.dumps(doc))).cells[0].source == "x = '\U0001F600'"


def test_a_notebook_of_a_version_the_exercise_does_not_grade_is_named_as_such(tmp_path):
    """#18: the pre-2021 Residual_Networks (blocks with `stage` and `block`) is reported as a
    different version, ungradable, before any kernel starts: never failed check by check."""
    import time

    from grader.grading import grade_submission
    from grader.spec import load_exercise

    exercise = load_exercise("resnet50")
    nb = nbformat.read(exercise.samples / "correct.ipynb", as_version=4)
    old = nbformat.v4.new_code_cell("def identity_block(X, f, filters, stage, block):\n    return X\n")
    nb.cells.append(old)
    path = tmp_path / "old.ipynb"
    nbformat.write(nb, path)
    started = time.monotonic()
    result = grade_submission(path, exercise)
    assert result.status == "ungradable" and result.score == 0 and result.tests == []
    assert result.error.startswith("a different version of the assignment: the pre-2021 Residual_Networks")
    assert "this exercise grades the 2021-2023" in result.error
    assert time.monotonic() - started < 30   # no kernel was started for it
    old.source = "def identity_block(X, f, filters, training=True, initializer=None):\n    return X\n"
    nbformat.write(nb, path)
    from grader import notebook
    assert notebook.other_version(notebook.load(path), exercise.other_versions) is None


# -- which cells a grading run leaves out -------------------------------------------------------
SKIP = [__import__("re").compile(p) for p in (r"\.fit\(", r"=\s*ResNet50\(", r"\.compile\(")]


def cells(*sources: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s, id=f"c{i}") for i, s in enumerate(sources)])


def test_the_course_layout_leaves_out_the_model_builds_and_the_training():
    nb = cells("def ResNet50():\n    model = Model()\n    return model",
               "model = ResNet50()\nprint(model.summary())",
               "from outputs import ResNet50_summary\nmodel = ResNet50()\ncomparator(summary(model), ResNet50_summary)",
               "model.compile(optimizer='adam')",
               "X_train = load_dataset()",
               "model.fit(X_train, epochs=10)")
    assert notebook.cells_to_skip(nb, SKIP, ["ResNet50"]) == {1, 2, 3, 5}


def test_a_matching_cell_that_defines_what_the_grader_calls_runs():
    nb = cells("def ResNet50():\n    return Model()\nmodel = ResNet50()", "model.fit(x)")
    assert notebook.cells_to_skip(nb, SKIP, ["ResNet50"]) == {1}


def test_a_matching_cell_runs_when_a_cell_that_runs_reads_what_it_binds():
    """Directly, inside a function (a global read at call time), and through a chain: the builder
    runs because the compile cell must, and the compile cell because a later cell reads it."""
    assert notebook.cells_to_skip(cells("model = ResNet50()", "for layer in model.layers: print(layer)"),
                                  SKIP, []) == set()
    assert notebook.cells_to_skip(cells("helper = 3\nmodel = ResNet50()", "def graded():\n    return helper"),
                                  SKIP, ["graded"]) == set()
    assert notebook.cells_to_skip(cells("base = ResNet50()", "compiled = base.compile()", "print(compiled)"),
                                  SKIP, []) == set()


def test_a_local_of_the_same_name_is_not_a_read():
    nb = cells("model = ResNet50()", "def graded():\n    model = 1\n    return model")
    assert notebook.cells_to_skip(nb, SKIP, ["graded"]) == {0}


def test_what_cannot_be_analysed_runs_and_counts_every_word_as_read():
    # a matching cell that is not Python: runs; one that does not match: its words count as reads
    assert notebook.cells_to_skip(cells("model = ResNet50(\n"), SKIP, []) == set()
    assert notebook.cells_to_skip(cells("model = ResNet50()", "print(model.summary() +"), SKIP, []) == set()
    # IPython lines are set aside, the rest analysed
    assert notebook.cells_to_skip(cells("%matplotlib inline\n!ls\nmodel = ResNet50()"), SKIP, []) == {0}
