"""The call bridge: carries the grader's calls of a student's functions to the kernel and back.

Each call gets a fresh, unguessable folder: made and filled (boundary.write_call) where the
kernel cannot reach, handed to the kernel's user by its descriptor, moved into the exchange
folder the kernel sees; the kernel-side probe runtime (grader/kernel_side/probe_runtime.py, run
as a prelude) is called on it through the notebook runner (run_call: deadlines, restarts), and
its answer is read back through the same descriptor and decoded by boundary.read_result. What
may cross, and every check on it, is boundary.py's; this module only carries.
"""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from . import boundary
from .boundary import KernelFault
from .kernel_side import source as kernel_side_source
from .sandbox import Sandbox
from .scratch import remove_tree
from .spec import Limits

# The kernel-side module that answers calls, and the function it defines in the kernel.
RUNTIME = "probe_runtime"
ENTRY_POINT = "__convgrade_call__"
LOOKUP_MAX_BYTES = 1 << 16


class CallRunner(Protocol):
    """What the bridge needs of the notebook runner: run the grader's code for one call."""

    def run_call(self, code: str, what: str) -> None: ...


def runtime_source() -> str:
    """The probe runtime's source, to run in the kernel before the notebook."""
    return kernel_side_source(RUNTIME)


def call_code(call_dir: Path) -> str:
    """The code the kernel runs for the call whose folder is `call_dir`."""
    return f"{ENTRY_POINT}({str(call_dir)!r})"


class CallBridge:
    """Calls into one submission's kernel, as plain data both ways."""

    def __init__(self, runner: CallRunner, sandbox: Sandbox, limits: Limits):
        self.runner = runner
        self.sandbox = sandbox
        self.limits = limits

    def call(self, function: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        """Call the student's `function` in the kernel; return plain data or a StudentException.

        Raises boundary.ProbeError for a protocol violation, KernelFault if the call hung or
        killed the kernel (after which the kernel has been restarted for the next call).
        """
        with self._call_folder(lambda staged: boundary.write_call(staged, function, args, kwargs or {})) as (path, folder):
            self.runner.run_call(call_code(path), f"{function}()")
            return boundary.read_result(folder, int(self.limits.max_result_mb * 1024 * 1024))

    def call_many(self, function: str, calls: list[tuple[tuple, dict]]) -> list[Any]:
        """Many calls of `function` in one round trip (see call()).

        The whole batch gets one call's time limit: callers fall back to call() on a fault,
        which then finds the input at fault (and a slow but correct function still passes).
        """
        with self._call_folder(lambda staged: boundary.write_batch(staged, function, calls)) as (path, folder):
            self.runner.run_call(call_code(path), f"{function}() on {len(calls)} inputs")
            return boundary.read_batch(folder, len(calls), int(self.limits.max_result_mb * 1024 * 1024))

    def defined(self, names: list[str]) -> set[str]:
        """Which of `names` are defined in the kernel's namespace now (functions or variables)."""
        query = {"defined": list(names)}
        with self._call_folder(lambda staged: boundary.write_call(staged, "", (), {}, query=query)) as (path, folder):
            self.runner.run_call(call_code(path), "looking up the graded functions")
            value = boundary.read_result(folder, LOOKUP_MAX_BYTES)
        if not isinstance(value, list):
            raise boundary.ProbeError("the lookup answer has the wrong form")
        return {n for n in value if isinstance(n, str)} & set(names)

    @contextmanager
    def _call_folder(self, fill: Callable[[Path], None]) -> Iterator[tuple[Path, boundary.AnswerFolder]]:
        """A fresh, unguessable folder for one call: made and filled where the kernel cannot
        reach (staging/), held by a descriptor, given to the kernel's user by that descriptor,
        then moved into exchange/. Answers are read through the descriptor only."""
        name = uuid.uuid4().hex
        staged = self.sandbox.staging / name
        staged.mkdir(mode=0o700)
        folder = boundary.AnswerFolder(staged)
        try:
            try:
                fill(staged)
            except OSError as exc:  # the kernel filled the disk: use the grader's reserve, once
                if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not self.sandbox.free_reserve():
                    raise KernelFault(f"the submission's files fill its disk space ({self.limits.disk_mb} MB): "
                                      "the grader could not write the call's inputs") from None
                fill(staged)
            owner = self.sandbox.kernel_owner
            if owner is not None:
                os.fchown(folder.fd, owner, owner)
            os.rename(staged, self.sandbox.exchange / name)
            yield self.sandbox.exchange / name, folder
        finally:
            folder.close()
            remove_tree(self.sandbox.exchange / name)  # links are removed, not followed
