"""Loading a submission: anything that is not a usable notebook becomes a clear error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024


class Ungradable(Exception):
    """The submission cannot be graded at all; the message tells the student why."""


def load(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook, upgraded to nbformat 4, with outputs dropped."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise Ungradable(f"cannot read the file: {exc.strerror}") from None
    if size > MAX_NOTEBOOK_BYTES:
        raise Ungradable(f"the file is {size / 2**20:.0f} MB; notebooks over {MAX_NOTEBOOK_BYTES >> 20} MB "
                         "are not graded (clear the outputs and resubmit)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Ungradable(f"the file is not UTF-8 text (byte {exc.start}); is it really a .ipynb?") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (it looks cut short)" if exc.pos >= len(text.rstrip()) - 1 else ""
        raise Ungradable(f"not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno}{hint}") from None
    if not isinstance(doc, dict) or "cells" not in doc and "worksheets" not in doc:
        raise Ungradable("not a notebook: the JSON has no cells")
    major = doc.get("nbformat")
    if major not in (3, 4):
        raise Ungradable(f"unsupported notebook format version {major!r} (expected 4)")
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # nbformat raises several types for malformed documents
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Ungradable(f"not a valid notebook: {first[:300]}") from None
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def defining_cells(nb: nbformat.NotebookNode, name: str) -> list[int]:
    """Indices of the code cells that define function `name`, or assign a variable `name`."""
    n = re.escape(name)
    pattern = re.compile(rf"^\s*(def\s+{n}\s*\(|{n}\s*=[^=])", re.MULTILINE)
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and pattern.search(c.source)]
