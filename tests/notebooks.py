"""Building test notebooks: a bundled sample plus cells a hostile student might add."""

from __future__ import annotations

from pathlib import Path

import nbformat

from grader import spec

SAMPLES = spec.EXERCISES_DIR / "conv_step_by_step" / "samples"


def with_cells(tmp_path: Path, *sources: str, base: str = "correct", name: str = "sub.ipynb",
               at: int | None = None, metadata: dict | None = None) -> Path:
    """SAMPLES/base.ipynb with code cells added (at the end, or before cell `at`)."""
    nb = nbformat.read(SAMPLES / f"{base}.ipynb", as_version=4)
    cells = [nbformat.v4.new_code_cell(s) for s in sources]
    position = len(nb.cells) if at is None else at
    nb.cells[position:position] = cells
    if metadata:
        nb.metadata.update(metadata)
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


def results_by_item(result) -> dict[str, str]:
    """item -> 'passed' if all its tests passed else 'failed'."""
    out: dict[str, str] = {}
    for t in result.tests:
        out[t.item] = "failed" if t.status != "passed" or out.get(t.item) == "failed" else "passed"
    return out
