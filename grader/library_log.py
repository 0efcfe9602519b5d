"""Library noise off the grader's terminal: what TensorFlow and its kind write to the process's
stderr (file descriptor 2: absl's start-up lines, CUDA probing on a CPU-only machine, oneDNN
notices) goes to a log file instead, and so does that of every process the grader starts that
inherits it (batch workers, stand-in makers). Python's own sys.stderr (argparse's usage errors,
an uncaught traceback of the grader's) stays on the terminal.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def library_log(path: Path | None = None) -> Iterator[Path]:
    """While inside: descriptor 2 writes to `path` (default: a new file in the temporary folder).
    Yields the path; nothing is redirected where descriptor 2 cannot be (then the path stays empty)."""
    if path is None:
        fd, name = tempfile.mkstemp(prefix="convgrade-libraries-", suffix=".log")
        path = Path(name)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 at all
        os.close(fd)
        yield path
        return
    python_stderr = sys.stderr
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    os.dup2(fd, 2)
    os.close(fd)
    try:
        sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, errors="replace")
    except OSError:
        sys.stderr = python_stderr
    try:
        yield path
    finally:
        try:
            if sys.stderr is not python_stderr:
                sys.stderr.close()
        except OSError:
            pass
        sys.stderr = python_stderr
        os.dup2(saved, 2)
        os.close(saved)


def has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except OSError:
        return False
