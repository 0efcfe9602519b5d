"""The `convgrade` command: `convgrade [grade] ...`, `convgrade check NOTEBOOK`, `convgrade merge OUT IN...`.

    convgrade grade --exercise conv_step_by_step submissions/ --json results.json   # grade a batch
    convgrade merge grades.sqlite shard-*.sqlite                                     # join gradebooks
    convgrade check my_notebook.ipynb                                                # student self-check

`grade` may be left out (`convgrade --exercise ... submissions/`), as `python grade.py` always had it.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable

from rich.console import Console
from rich.text import Text

from grader.library_log import has_content, library_log
from grader.text import clean_text

from . import check, grade, merge
from .options import UsageError

USAGE_ERROR = 2
COMMANDS: dict[str, Callable[[list[str], Console, str], int]] = {"grade": grade.run, "check": check.run,
                                                                   "merge": merge.run}


class Terminal(io.TextIOBase):
    """What the console writes to: sys.stdout, except that nothing printed can stop a batch.

    A closed pipe (`convgrade grade ... | head -3`), or any other write error (a full disk, a closed
    stream), points stdout at /dev/null, as Python's docs advise (section "Note on SIGPIPE"),
    and the rest of the output is dropped; a terminal that
    cannot encode a character gets a backslash escape instead of an exception.
    """

    def __init__(self, stream):
        self._stream = stream
        self.gone = False

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"

    def isatty(self) -> bool:
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                try:
                    self._stream.write(text)
                except UnicodeEncodeError:
                    self._stream.write(text.encode(self.encoding, "backslashreplace").decode(self.encoding))
            except (OSError, ValueError):  # a closed pipe, a full disk, a closed stream
                self._hang_up()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._hang_up()

    def _hang_up(self) -> None:
        self.gone = True
        _stdout_to_devnull(self._stream)


def _stdout_to_devnull(stream) -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


def main(argv: list[str] | None = None, prog: str = "convgrade") -> int:
    """Run one command (the first argument, `grade` if it names none); returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    stdout = sys.stdout if sys.stdout is not None else open(os.devnull, "w")  # noqa: SIM115 (`>&-`)
    terminal = Terminal(stdout)
    console = Console(file=terminal, width=None if terminal.isatty() else 200)
    # TensorFlow's start-up lines and the like (theirs, and the batch workers') go to a log file,
    # named at the end; the terminal shows the grader's progress, table and feedback only.
    with library_log() as log:
        try:
            if argv and argv[0] in COMMANDS:
                code = COMMANDS[argv[0]](argv[1:], console, f"{prog} {argv[0]}")
            else:
                code = grade.run(argv, console, prog)
        except UsageError as exc:
            console.print(Text("error: ", style="red") + Text(clean_text(str(exc))))
            code = USAGE_ERROR
    if has_content(log):
        console.print(Text(f"Messages of the libraries (TensorFlow's start-up and the like): {log}", style="dim"))
    else:
        log.unlink(missing_ok=True)
    return code


def run(argv: list[str] | None = None, prog: str = "convgrade") -> int:
    """main() as the command line runs it: a reader that left early costs no traceback."""
    code = main(argv, prog)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # the reader left after the last write: nothing more to say
        _stdout_to_devnull(sys.stdout)
    return code
