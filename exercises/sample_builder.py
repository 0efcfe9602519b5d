"""Building an exercise's sample submissions from its template notebook (samples/build_samples.py).

A sample is the template with the code regions of its graded cells filled in the way a student
would, plus whatever edits real submissions show. The helpers here find cells by nbgrader grade_id
(or cell id), fill the region between the course's start and end markers, edit text, and write
notebooks with cleared outputs, deterministically (the same run rewrites identical files).

Not an exercise (no spec.toml): the grader never loads it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import nbformat
from nbformat import NotebookNode


class Template:
    """One exercise's template notebook and the markers of its code regions."""

    def __init__(self, path: Path, solution_ids: Mapping[str, str], start: str, end: str):
        self.path, self.solution_ids, self.start, self.end = path, dict(solution_ids), start, end

    def load(self) -> NotebookNode:
        return nbformat.read(str(self.path), as_version=4)

    @staticmethod
    def cell_index(nb: NotebookNode, grade_id: str) -> int:
        hits = [k for k, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id]
        assert len(hits) == 1, (grade_id, hits)
        return hits[0]

    @staticmethod
    def cell_index_by_id(nb: NotebookNode, cell_id: str) -> int:
        hits = [k for k, c in enumerate(nb.cells) if c.get("id") == cell_id]
        assert len(hits) == 1, (cell_id, hits)
        return hits[0]

    def solution_cell(self, nb: NotebookNode, name: str) -> NotebookNode:
        return nb.cells[self.cell_index(nb, self.solution_ids[name])]

    def fill(self, nb: NotebookNode, name: str, body: str, indent: int = 4) -> None:
        """Replace the lines between the start and end markers of name's solution cell with body."""
        cell = self.solution_cell(nb, name)
        lines = cell.source.split("\n")
        starts = [k for k, line in enumerate(lines) if line.strip() == self.start]
        ends = [k for k, line in enumerate(lines) if line.strip() == self.end]
        assert len(starts) == 1 and len(ends) == 1 and starts[0] < ends[0], name
        body = textwrap.dedent(body).strip("\n")
        new = [(" " * indent + line) if line.strip() else "" for line in body.split("\n")]
        cell.source = "\n".join(lines[:starts[0] + 1] + new + lines[ends[0]:])

    def edit(self, nb: NotebookNode, name: str, old: str, new: str, count: int = 1) -> None:
        """Replace text in name's solution cell; old must occur exactly count times."""
        edit_cell(self.solution_cell(nb, name), old, new, count)

    def fill_all(self, nb: NotebookNode, bodies: Mapping[str, str], indent: int = 4) -> NotebookNode:
        for name, body in bodies.items():
            self.fill(nb, name, body, indent)
        return nb


def edit_cell(cell: NotebookNode, old: str, new: str, count: int = 1) -> None:
    assert cell.source.count(old) == count, (old, cell.source.count(old))
    cell.source = cell.source.replace(old, new)


def changed(body: str, old: str, new: str, count: int = 1) -> str:
    """body with one textual change (old must occur count times)."""
    assert body.count(old) == count, (old, body.count(old))
    return body.replace(old, new)


def insert_cell(nb: NotebookNode, index: int, source: str, cell_id: str) -> None:
    cell = nbformat.v4.new_code_cell(textwrap.dedent(source).strip("\n"))
    cell.id = cell_id
    nb.cells.insert(index, cell)


def clear_outputs(nb: NotebookNode) -> NotebookNode:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def notebook_text(nb: NotebookNode) -> str:
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def write_samples(folder: Path, samples: Mapping[str, Callable[[], NotebookNode]]) -> list[Path]:
    """Build and write every sample as folder/NAME.ipynb; print and return the paths."""
    written = []
    for name, build in samples.items():
        path = folder / f"{name}.ipynb"
        path.write_text(notebook_text(clear_outputs(build())), encoding="utf-8")
        written.append(path)
        print("wrote", path)
    return written
