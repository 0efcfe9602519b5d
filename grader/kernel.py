"""One submission's kernel: start it, run the notebook, answer calls, survive faults.

Cells run through nbclient (per-cell timeout that interrupts, errors recorded and
execution continued). After the notebook, graded functions are called through the
probe runtime (see probe.py). A kernel that dies or will not stop is restarted and
the cells that ran cleanly are replayed, so one fatal call costs only that call.
"""

from __future__ import annotations

import os
import re
import signal
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from . import probe
from .kernel_side import source as kernel_side_source
from .sandbox import kernel_manager
from .spec import Limits

TIMEOUT_ENAME = "CellTimeoutError"
MAX_CELL_OUTPUT_BYTES = 256 * 1024


class KernelFault(BaseException):
    """The kernel timed out or died. BaseException: hypothesis must not shrink on it."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


@dataclass
class CellRun:
    index: int
    error: str | None = None          # "NameError: ..." when the cell raised
    fatal: str | None = None          # the kernel died or hung in this cell


@dataclass
class NotebookRun:
    cells: list[CellRun] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)   # not run: the notebook's time was up

    def errors(self) -> list[CellRun]:
        return [c for c in self.cells if c.error or c.fatal]


class _CappedClient(NotebookClient):
    """nbclient with a cap on what one cell's outputs may hold in memory."""

    def output(self, outs, msg, display_id, cell_index):  # type: ignore[override]
        size = sum(len(str(o)) for o in outs)
        if size > MAX_CELL_OUTPUT_BYTES:
            if not outs or outs[-1].get("name") != "convgrade":
                outs.append(nbformat.v4.new_output("stream", name="convgrade", text="[output truncated]\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)


class KernelSession:
    """The kernel of one submission. Use as a context manager."""

    def __init__(self, nb: nbformat.NotebookNode, workdir: Path, exchange: Path, limits: Limits,
                 prelude: tuple[str, ...] = (), sandbox: str = "none", env: dict[str, str] | None = None,
                 skip_cells: tuple[str, ...] = (), devices: list[str] | None = None):
        self.nb = nb
        self.workdir = workdir
        self.exchange = exchange
        self.limits = limits
        # Kernel-side code run before the notebook: the probe runtime, then the exercise's
        # prelude (names of grader/kernel_side modules, or source texts of the exercise's own).
        self.prelude = (kernel_side_source("probe_runtime"),
                        *(kernel_side_source(p) if p.isidentifier() else p for p in prelude))
        self.sandbox = sandbox
        self.env = env or {}
        self.devices = devices or []
        self.skip = [re.compile(pattern) for pattern in skip_cells]
        self.restarts = 0
        self._clean_cells: list[int] = []
        self._client: NotebookClient | None = None
        self._km = None
        self._kc = None
        self._log = None
        self._last_error: str | None = None
        self._gone: str | None = None      # why the kernel is beyond restarting
        self._calls_deadline: float | None = None  # set when the first call is made

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "KernelSession":
        self._start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _start(self) -> None:
        km, start_kwargs = kernel_manager(self.sandbox, self.workdir, self.exchange, self.limits, self.env,
                                          self.devices)
        self._log = start_kwargs.get("stderr")
        run_sync(km.start_kernel)(**start_kwargs)
        self._km = km
        client = _CappedClient(self.nb, km=km, allow_errors=True, interrupt_on_timeout=True,
                               error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": "", "traceback": []},
                               timeout=int(self.limits.cell_timeout), startup_timeout=60,
                               iopub_timeout=5, record_timing=False)
        client.on_cell_error = self._on_cell_error
        client.kc = km.client()
        client.kc.start_channels()
        run_sync(client.kc.wait_for_ready)(timeout=60)
        self._kc = client.kc
        self._client = client
        for code in self.prelude:
            self._run_hidden(code)

    def _stop(self) -> None:
        if self._kc is not None:
            self._kc.stop_channels()
        if self._km is not None:
            try:
                run_sync(self._km.shutdown_kernel)(now=True)
            except Exception:
                pass
        if self._log is not None:
            self._log.close()
        self._client = self._km = self._kc = self._log = None

    def _restart(self, cause: str) -> None:
        """Replace a dead or stuck kernel and replay the cells that ran cleanly.

        After max_restarts, or if the replay itself kills the kernel, the session is
        gone: every later call fails at once with the reason (never a crash, never a pass).
        """
        self._stop()
        self.restarts += 1
        if self.restarts > self.limits.max_restarts:
            self._gone = f"{cause}; the kernel was restarted {self.limits.max_restarts} times, giving up"
            raise KernelFault(self._gone)
        try:
            self._start()
            for index in self._clean_cells:
                self._client.execute_cell(self.nb.cells[index], index)
        except DeadKernelError:
            self._stop()
            self._gone = f"{cause}; the kernel died again while replaying cell {index}"
            raise KernelFault(self._gone) from None
        except (RuntimeError, TimeoutError) as exc:
            self._stop()
            self._gone = f"{cause}; the kernel could not be restarted ({exc})"
            raise KernelFault(self._gone) from None

    def _run_hidden(self, code: str) -> None:
        reply = self._execute(code, timeout=60)
        if reply is None or reply["content"]["status"] != "ok":
            c = reply["content"] if reply else {"ename": "Timeout", "evalue": ""}
            raise RuntimeError(f"grader prelude failed in the kernel: {c.get('ename')}: {c.get('evalue')}")

    def _execute(self, code: str, timeout: float) -> dict | None:
        """Run grader code silently; the shell reply, or None if none came in time."""
        return run_sync(self._async_execute)(code, timeout)

    async def _async_execute(self, code: str, timeout: float) -> dict | None:
        await self._async_drain_iopub()
        msg_id = self._kc.execute(code, silent=True, store_history=False, allow_stdin=False, stop_on_error=False)
        return await self._async_reply(msg_id, timeout)

    async def _async_reply(self, msg_id: str, timeout: float) -> dict | None:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self._kc.get_shell_msg(timeout=min(0.5, left))
            except Empty:
                if not await self._km.is_alive():
                    return None
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg
        return None

    async def _async_drain_iopub(self) -> None:
        try:
            while True:
                await self._kc.get_iopub_msg(timeout=0)
        except Empty:
            pass

    # -- the notebook ---------------------------------------------------------------------
    def run_notebook(self) -> NotebookRun:
        """Run every code cell in order, within the per-cell and per-notebook time limits."""
        run = NotebookRun()
        deadline = time.monotonic() + self.limits.notebook_timeout
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if any(p.search(cell.source) for p in self.skip):  # e.g. the student's own training
                continue
            remaining = deadline - time.monotonic()
            if remaining < 1:
                run.skipped.append(index)
                continue
            self._client.timeout = max(1, int(min(self.limits.cell_timeout, remaining)))
            record = CellRun(index)
            self._last_error = None
            try:
                self._client.execute_cell(cell, index)
            except Exception as exc:  # died, or (e.g. a patched json module) garbled its messages
                record.fatal = (f"the kernel died while running this cell ({self._death_cause()})"
                                if isinstance(exc, DeadKernelError) else
                                f"the kernel stopped speaking the Jupyter protocol ({type(exc).__name__}: {exc})")
                run.cells.append(record)
                self._restart(record.fatal)
                continue
            record.error = self._last_error
            if record.error == TIMEOUT_ENAME:
                record.fatal = f"the cell ran longer than {self._client.timeout}s and was interrupted"
                record.error = None
                if not self._responsive():
                    self._restart(record.fatal)
            else:
                # Replayed after a restart; a cell that raised may still have defined functions
                # before its error. Cells that killed the kernel or timed out are not replayed.
                self._clean_cells.append(index)
            run.cells.append(record)
        return run

    def _on_cell_error(self, cell: Any, cell_index: int, execute_reply: dict) -> None:
        content = execute_reply.get("content", {})
        ename, evalue = str(content.get("ename", "Error")), str(content.get("evalue", ""))
        self._last_error = ename if ename == TIMEOUT_ENAME else f"{ename}: {evalue}"[:500]

    def _responsive(self, timeout: float = 5.0) -> bool:
        reply = self._execute("", timeout)
        return reply is not None and reply["content"]["status"] == "ok"

    def _death_cause(self) -> str:
        proc = getattr(getattr(self._km, "provisioner", None), "process", None)
        code = proc.poll() if proc is not None else None
        if code is None:
            return "cause unknown"
        if code < 0:
            return self._describe_signal(-code)
        if code > 128 and code - 128 in signal.Signals._value2member_map_:  # bwrap reports 128 + signal
            return self._describe_signal(code - 128)
        return f"it exited with status {code}"

    @staticmethod
    def _describe_signal(number: int) -> str:
        hints = {signal.SIGKILL: " (out of memory, or killed)", signal.SIGSEGV: " (a crash in native code)",
                 signal.SIGXCPU: " (the CPU time limit)", signal.SIGXFSZ: " (the file size limit)"}
        return f"killed by {signal.Signals(number).name}{hints.get(number, '')}"

    # -- calls -------------------------------------------------------------------------------
    def call(self, function: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        """Call the student's `function` in the kernel; return plain data or a StudentException.

        Raises probe.ProbeError for a protocol violation, KernelFault if the call hung or
        killed the kernel (after which the kernel has been restarted for the next call).
        """
        call_dir = self._call_dir()
        probe.write_call(call_dir, function, args, kwargs or {})
        self._execute_call(call_dir, f"{function}()")
        if call_dir.is_symlink() or not call_dir.is_dir():
            raise probe.ProbeError("the call's folder was tampered with")
        return probe.read_result(call_dir, int(self.limits.max_result_mb * 1024 * 1024))

    def call_many(self, function: str, calls: list[tuple[tuple, dict]]) -> list[Any]:
        """Many calls of `function` in one round trip (see call()).

        The whole batch gets one call's time limit: callers fall back to call() on a fault,
        which then finds the input at fault (and a slow but correct function still passes).
        """
        call_dir = self._call_dir()
        probe.write_batch(call_dir, function, calls)
        self._execute_call(call_dir, f"{function}() on {len(calls)} inputs")
        if call_dir.is_symlink() or not call_dir.is_dir():
            raise probe.ProbeError("the call's folder was tampered with")
        return probe.read_batch(call_dir, len(calls), int(self.limits.max_result_mb * 1024 * 1024))

    def defined(self, names: list[str]) -> set[str]:
        """Which of `names` are defined in the kernel's namespace now (functions or variables)."""
        call_dir = self._call_dir()
        probe.write_call(call_dir, "", (), {}, query={"defined": list(names)})
        self._execute_call(call_dir, "looking up the graded functions")
        value = probe.read_result(call_dir, 1 << 16)
        if not isinstance(value, list):
            raise probe.ProbeError("the lookup answer has the wrong form")
        return {n for n in value if isinstance(n, str)} & set(names)

    def _call_dir(self) -> Path:
        """A fresh, unguessable folder for one call, writable by the kernel's user."""
        call_dir = self.exchange / uuid.uuid4().hex
        call_dir.mkdir()
        owner = getattr(self._km, "kernel_owner", None)
        if owner is not None:
            os.chown(call_dir, owner, owner)
        return call_dir

    def _execute_call(self, call_dir: Path, what: str) -> None:
        if self._gone:
            raise KernelFault(f"not run: {self._gone}")
        now = time.monotonic()
        if self._calls_deadline is None:
            self._calls_deadline = now + self.limits.grading_timeout
        if now >= self._calls_deadline:
            self._gone = f"the grading time limit ({self.limits.grading_timeout:g}s for all calls) was reached"
            raise KernelFault(f"not run: {self._gone}")
        timeout = min(self.limits.call_timeout, self._calls_deadline - now)
        try:
            reply = self._execute(f"__convgrade_call__({str(call_dir)!r})", timeout)
        except Exception as exc:  # garbled messages: the kernel is unusable
            cause = f"the kernel stopped speaking the Jupyter protocol during {what} ({type(exc).__name__})"
            self._restart(cause)
            raise KernelFault(cause) from None
        if reply is not None:
            return
        if not run_sync(self._km.is_alive)():
            cause = f"the kernel died during {what} ({self._death_cause()})"
        else:
            cause = f"{what} ran longer than {timeout:g}s"
            run_sync(self._km.interrupt_kernel)()
            if self._responsive(3.0):
                raise KernelFault(cause)
        self._restart(cause)
        raise KernelFault(cause)
