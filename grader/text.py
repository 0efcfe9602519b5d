"""The one rule for student-controlled text, and the one rule for file names made from ids.

Student ids (from paths), exception types and messages, cell errors and test outputs that
quote student values all reach the grader as arbitrary text. It is cleaned ONCE, where it
enters the grader's side (batch.discover for ids, batch.run_batch and the `check` command for
results), by `clean_text` / `clean_id` / `clean_result`:

- lone surrogates become U+FFFD; in ids, bytes that were not UTF-8 (Python's surrogateescape
  U+DC80..U+DCFF from a path) are shown as ``\\xNN`` so distinct folder names stay distinct;
- control characters (C0 except newline and tab in multi-line text, DEL, C1) are shown
  visibly as ``\\xNN``: an escape sequence (ANSI colours, OSC 52 clipboard, OSC 8 links)
  becomes inert printable text such as ``\\x1b]52;c;...``;
- bidi controls (embeddings, overrides, isolates, marks) are shown as ``\\uNNNN`` everywhere;
  in ids also zero-width characters and leading/trailing white space (look-alikes of other ids);
- lengths are bounded (an id keeps a hash of what was cut, so it stays distinct).

The rule is idempotent (cleaning clean text changes nothing), so results already stored are
cleaned again harmlessly. Every writer still escapes for its own format (rich markup, HTML,
XML, CSV formulas): cleaning makes text inert on a terminal, not safe in every syntax.

`file_name(id)` is the only way an id becomes a file or folder name (feedback files,
Gradescope folders): a pure function, distinct for distinct ids, case-insensitively too.

Two more rules every output shares: `path_id` / `student_of`, who a notebook or a result is
for (batch.discover, the table, feedback, reports and exports), and `format_score`, how points
are written (the table, feedback, CSV, Gradescope's summary, HTML).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from pathlib import PurePath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .results import SubmissionResult

MAX_TEXT = 20_000       # characters of one message or test output
MAX_ID = 100            # characters of a student id
MAX_PATH = 4096         # characters of a submission's path
MAX_NAME = 64           # characters of a file name stem before its hash suffix
HASH_CHARS = 12         # hex digits of the hash suffix (48 bits)
TRUNCATED = "\n[... truncated by the grader]"

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_ZERO_WIDTH = "\u200b-\u200d\u2060-\u2064\ufeff\u180e\u00ad\u034f\u115f\u1160\u3164\uffa0"
# What is shown escaped. Multi-line text keeps \n and \t; \r is shown (it rewinds a terminal line).
_UNSAFE_TEXT = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}\ud800-\udfff]")
_UNSAFE_ID = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}{_ZERO_WIDTH}\ud800-\udfff\u2028\u2029]")
_EDGE_SPACE = re.compile(r"^\s+|\s+$")

_SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_HASHED = re.compile(rf"-[0-9a-f]{{{HASH_CHARS}}}$")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def _visible(ch: str) -> str:
    code = ord(ch)
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def clean_text(text: object, limit: int = MAX_TEXT) -> str:
    """Multi-line student text made inert on a terminal (see the module doc); at most `limit`
    characters plus a truncation note. Non-str values (None excepted by callers) are str()'d."""
    text = text if isinstance(text, str) else str(text)
    cleaned = _UNSAFE_TEXT.sub(lambda m: _visible(m.group()), text)
    if len(cleaned) > limit and not cleaned.endswith(TRUNCATED):
        cleaned = cleaned[:limit] + TRUNCATED
    return cleaned


def _id_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte of a path that was not UTF-8 (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    return _visible(ch)


def _invisible(ch: str) -> bool:
    """A character that shows as nothing (or as a plain space) on a terminal or a page."""
    code = ord(ch)
    category = unicodedata.category(ch)
    return (category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") or (category == "Zs" and ch != " ")
            or 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or 0x180B <= code <= 0x180F
            or code in (0x034F, 0x115F, 0x1160, 0x2800, 0x3164, 0xFFA0))


def clean_id(student: object, limit: int = MAX_ID) -> str:
    """A student id (or a path) as one inert, visible line of at most `limit` characters.

    Look-alikes stay apart: "alice " is shown as "alice\\x20", "ali\\u200bce" keeps its
    zero-width space visible. An id cut to length carries a hash of the whole.
    """
    student = student if isinstance(student, str) else str(student)
    cleaned = _UNSAFE_ID.sub(lambda m: _id_char(m.group()), student)
    cleaned = "".join(_visible(c) if _invisible(c) else c for c in cleaned)
    cleaned = _EDGE_SPACE.sub(lambda m: "".join(_visible(c) for c in m.group()), cleaned)
    if len(cleaned) > limit:
        cleaned = f"{cleaned[:limit - HASH_CHARS - 1]}~{_digest(cleaned)}"
    return cleaned


def clean_result(result: SubmissionResult) -> SubmissionResult:
    """A copy of `result` with every student-influenced string cleaned (id, paths, errors, tests)."""
    from .results import TEST_STATUSES

    tests = [dataclasses.replace(t, name=clean_text(t.name, 500), item=clean_text(t.item, 500),
                                 output=clean_text(t.output),
                                 status=t.status if t.status in TEST_STATUSES else "failed")
             for t in result.tests]
    return dataclasses.replace(
        result, submission=clean_id(result.submission, MAX_PATH),
        student=clean_id(result.student) if result.student else "",
        error=None if result.error is None else clean_text(result.error),
        tests=tests, notebook_errors=[clean_text(e) for e in result.notebook_errors],
        status=result.status if result.status in ("graded", "ungradable") else "ungradable",
        timings={clean_text(k, 500): v for k, v in result.timings.items()},
        environment={clean_text(k, 500): clean_text(v, 500) for k, v in result.environment.items()})


# -- file names ------------------------------------------------------------------------------------
def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


def file_name(student: str) -> str:
    """The file or folder stem for a student id: [A-Za-z0-9._-] only, never empty, hidden, a
    path, a Windows device name, nor longer than MAX_NAME + 1 + HASH_CHARS.

    The id itself when it is already such a name in lower case (and does not end like a hash
    suffix); otherwise a readable prefix plus "-" and a hash of the id. Distinct ids give
    distinct names, also on case-insensitive disks: unchanged names are lower case and never
    end in a hash suffix, changed ones always do, and their hashes differ.
    """
    if (_SAFE_NAME.fullmatch(student) and len(student) <= MAX_NAME and not _HASHED.search(student)
            and student.split(".", 1)[0] not in _WINDOWS_RESERVED and not student.endswith(".")):
        return student
    ascii_name = unicodedata.normalize("NFKD", student).encode("ascii", "ignore").decode("ascii")
    prefix = _UNSAFE_IN_NAME.sub("_", ascii_name).strip("._-")[:MAX_NAME - 1].rstrip("._-") or "student"
    stem, dot, rest = prefix.partition(".")
    if stem.lower() in _WINDOWS_RESERVED:  # "con.txt" is the device CON to Windows
        prefix = f"{stem}_{dot}{rest}"
    return f"{prefix}-{_digest(student)}"


# -- who, and how many points ----------------------------------------------------------------------
def path_id(relative: PurePath) -> str:
    """The raw (uncleaned) id of a notebook at `relative` under its submissions folder: the
    name of its first folder (one folder per student: "alice/W1A1.ipynb" is alice's), or, for a
    notebook at the top or named by itself, its file's stem."""
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def student_of(result: SubmissionResult) -> str:
    """Who a result is for, in every table, feedback file, report and export: the student id
    batch grading recorded; for a notebook graded on its own (the self-check), the id
    batch.discover gives a notebook named by itself (its cleaned file stem)."""
    return result.student or clean_id(path_id(PurePath(PurePath(result.submission).name))) or "submission"


def format_score(points: float) -> str:
    """Points as every output writes them: at most two decimals (a check's share is whole
    hundredths, see grading._shares, so nothing is lost), no trailing zeros: 10, 6.67, 0.5, 0."""
    text = f"{float(points):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
