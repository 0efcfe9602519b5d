"""Anything that is not a usable notebook is 'ungradable' with a message saying why."""

from __future__ import annotations

import json

import nbformat
import pytest

from grader import notebook


def write(tmp_path, content: bytes | str, name="sub.ipynb"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def good_notebook() -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
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
