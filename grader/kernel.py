"""One submission's kernel: the notebook runner and the call bridge, composed.

notebook_runner.py starts the sandboxed kernel, runs the notebook's cells (nbclient, deadlines,
output caps) and restarts and replays; call_bridge.py carries the graded calls to it; boundary.py
encodes, checks and decodes everything that crosses. Checks see a KernelSession only as a
`Student` (call, call_many) and never import this module.
"""

from __future__ import annotations

from typing import Any

import nbformat

from .call_bridge import CallBridge, runtime_source
from .kernel_side import source as kernel_side_source
from .notebook_runner import NotebookRun, NotebookRunner
from .sandbox import Sandbox
from .spec import Limits


def prelude_sources(prelude: tuple[str, ...]) -> tuple[str, ...]:
    """Kernel-side code run before the notebook: the probe runtime, then the exercise's prelude
    (names of grader/kernel_side modules, or source texts of the exercise's own)."""
    return (runtime_source(), *(kernel_side_source(p) if p.isidentifier() else p for p in prelude))


class KernelSession:
    """The kernel of one submission. Use as a context manager.

    Time: the notebook phase has `notebook_timeout`, the calls after it `grading_timeout`
    (from the first call); a restart and its replay count against the deadline of the phase
    they happen in, so no kernel can buy time by dying (see NotebookRunner).
    """

    def __init__(self, nb: nbformat.NotebookNode, sandbox: Sandbox, limits: Limits,
                 prelude: tuple[str, ...] = (), skip_cells: tuple[str, ...] = (), needed: tuple[str, ...] = ()):
        self.runner = NotebookRunner(nb, sandbox, limits, prelude_sources(prelude), skip_cells, needed)
        self.bridge = CallBridge(self.runner, sandbox, limits)

    def __enter__(self) -> "KernelSession":
        self.runner.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.stop()

    @property
    def restarts(self) -> int:
        return self.runner.restarts

    def run_notebook(self) -> NotebookRun:
        """Run every code cell in order, within the per-cell and per-notebook time limits."""
        return self.runner.run_notebook()

    def call(self, function: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        """See CallBridge.call: plain data or a StudentException; ProbeError, KernelFault."""
        return self.bridge.call(function, args, kwargs)

    def call_many(self, function: str, calls: list[tuple[tuple, dict]]) -> list[Any]:
        """See CallBridge.call_many: many calls of `function` in one round trip."""
        return self.bridge.call_many(function, calls)

    def defined(self, names: list[str]) -> set[str]:
        """Which of `names` are defined in the kernel's namespace now (functions or variables)."""
        return self.bridge.defined(names)
