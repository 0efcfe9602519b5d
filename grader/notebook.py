"""Loading a submission: anything that is not a usable notebook becomes a clear error."""

from __future__ import annotations

import json
import os
import re
import stat
import symtable
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat

MAX_NOTEBOOK_BYTES = 50 * 1024 * 1024


class Ungradable(Exception):
    """The submission cannot be graded at all; the message tells the student why."""


def load(path: Path) -> nbformat.NotebookNode:
    """Read and validate a notebook, upgraded to nbformat 4, with outputs dropped.

    Raises Ungradable, and nothing else, whatever the file holds.
    """
    raw = _read(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Ungradable(f"the file is not UTF-8 text (byte {exc.start}); is it really a .ipynb?") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = " (it looks cut short)" if exc.pos >= len(text.rstrip()) - 1 else ""
        raise Ungradable(f"not a notebook: invalid JSON at line {exc.lineno}, column {exc.colno}{hint}") from None
    except RecursionError:
        raise Ungradable(_TOO_DEEP) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise Ungradable(f"not a notebook: invalid JSON ({str(exc)[:200]})") from None
    if not isinstance(doc, dict) or "cells" not in doc and "worksheets" not in doc:
        raise Ungradable("not a notebook: the JSON has no cells")
    major = doc.get("nbformat")
    if major not in (3, 4):
        raise Ungradable(f"unsupported notebook format version {repr(major)[:40]} (expected 4)")
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except RecursionError:
        raise Ungradable(_TOO_DEEP) from None
    except Exception as exc:  # nbformat raises several types for malformed documents
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Ungradable(f"not a valid notebook: {first[:300]}") from None
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    try:  # the notebook is written out again as UTF-8 for the kernel: a lone "\ud800" escape cannot be
        nbformat.writes(nb).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Ungradable(f"not a valid notebook: it holds text that is not valid Unicode "
                         f"({exc.object[exc.start:exc.end].encode('unicode_escape').decode()[:40]}, "
                         "a lone surrogate escape)") from None
    except RecursionError:
        raise Ungradable(_TOO_DEEP) from None
    return nb


_TOO_DEEP = "not a notebook: its JSON is nested too deeply (lists or objects inside each other)"


def _read(path: Path) -> bytes:
    """The file's bytes, if it is a regular file (a symlink to one is followed) within the size limit.

    Opened without blocking (a FIFO has no writer to wait for), checked on the open file (so
    it cannot be swapped in between), and read from that same file, never past the limit.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise Ungradable(f"cannot read the file: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a pipe" if stat.S_ISFIFO(info.st_mode) \
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "a socket or other"
            raise Ungradable(f"not a regular file ({kind}); submit the .ipynb file itself")
        _check_size(info.st_size)
        chunks, left = [], MAX_NOTEBOOK_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        raw = b"".join(chunks)
        _check_size(len(raw))  # it grew after fstat
        return raw
    except OSError as exc:
        raise Ungradable(f"cannot read the file: {exc.strerror}") from None
    finally:
        os.close(fd)


def _check_size(size: int) -> None:
    if size > MAX_NOTEBOOK_BYTES:
        raise Ungradable(f"the file is {size / 2**20:.0f} MB; notebooks over {MAX_NOTEBOOK_BYTES >> 20} MB "
                         "are not graded (clear the outputs and resubmit)")


def defining_cells(nb: nbformat.NotebookNode, name: str) -> list[int]:
    """Indices of the code cells that define function `name`, or assign a variable `name`."""
    n = re.escape(name)
    # [ \t], not \s: \s spans newlines, which makes the search quadratic in a cell of blank lines.
    pattern = re.compile(rf"^[ \t]*(def[ \t]+{n}[ \t]*\(|{n}[ \t]*=[^=])", re.MULTILINE)
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and pattern.search(c.source)]


def other_version(nb: nbformat.NotebookNode, versions: "tuple[tuple[str, re.Pattern[str]], ...]") -> str | None:
    """The name of the first of `versions` (name, pattern) whose pattern occurs in the notebook's
    code (e.g. the definition of a graded function with another version's signature), or None."""
    code = _code(nb)
    return next((name for name, pattern in versions if pattern.search(code)), None)


def graded_variant(nb: nbformat.NotebookNode, variants: Sequence[Any]) -> Any | None:
    """The first of `variants` (spec.Version: a published version the exercise grades besides its
    main one) whose recognition the notebook's code meets (Version.matches), or None: the main one."""
    code = _code(nb)
    return next((v for v in variants if v.matches(code)), None)


def _code(nb: nbformat.NotebookNode) -> str:
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code" and isinstance(cell.source, str))


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NOT_PYTHON = re.compile(r"^[ \t]*[%!?].*$", re.MULTILINE)   # IPython magics, shell escapes, help


def cell_names(source: str) -> tuple[frozenset[str], frozenset[str]] | None:
    """(names a cell binds at its top level: assigned, imported, defined; names it reads as
    globals: at its top level, or inside its functions and classes when not their own), or None
    if its code is not Python even without its IPython lines (magics, shell escapes)."""
    try:
        table = symtable.symtable(_NOT_PYTHON.sub("", source), "<cell>", "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    bound = frozenset(s.get_name() for s in table.get_symbols()
                      if s.is_assigned() or s.is_imported() or s.is_namespace())
    reads: set[str] = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    nested = list(table.get_children())
    while nested:
        scope = nested.pop()
        reads |= {s.get_name() for s in scope.get_symbols() if s.is_global() and s.is_referenced()}
        nested += scope.get_children()
    return bound, frozenset(reads)


def cells_to_skip(nb: nbformat.NotebookNode, patterns: Sequence[re.Pattern[str]],
                  needed: Sequence[str]) -> frozenset[int]:
    """The code cells a grading run leaves out: those matching one of `patterns` (the exercise's
    `skip_cells`: the student's own training, the course's printouts) that bind nothing another
    cell that runs reads as a global, nor any of `needed` (the names the grader calls). A cell
    whose code cannot be analysed runs if it matches, and counts as reading every word it holds
    if it does not: whatever is unclear runs, as the student wrote it."""
    if not patterns:
        return frozenset()
    candidates: dict[int, tuple[frozenset[str], frozenset[str]]] = {}
    reads = set(needed)
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not isinstance(cell.source, str):
            continue
        names = cell_names(cell.source)
        if any(p.search(cell.source) for p in patterns) and names is not None:
            candidates[index] = names
        else:
            reads |= names[1] if names is not None else set(_IDENTIFIER.findall(cell.source))
    skipped = set(candidates)
    changed = True
    while changed:              # a cell that must run may read what another candidate binds
        changed = False
        for index in sorted(skipped):
            bound, cell_reads = candidates[index]
            if bound & reads:
                skipped.discard(index)
                reads |= cell_reads
                changed = True
    return frozenset(skipped)
