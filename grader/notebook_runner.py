"""The notebook runner: one submission's kernel, its cells, its deadlines and restarts.

The kernel starts in its sandbox (sandbox.py), runs the kernel-side prelude, then the notebook's
code cells through nbclient (per-cell timeout that interrupts, errors recorded and execution
continued, what the kernel's messages may make the grader hold capped). A kernel that dies or
will not stop is restarted and the cells that ran cleanly are replayed, so one fatal cell or call
costs only itself. After the notebook, run_call executes the grader's code for one call within
the calls' deadlines; what that code carries is call_bridge.py's and boundary.py's business.
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

import nbformat
import zmq
from jupyter_core.utils import run_sync
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .boundary import KernelFault
from .channel_relay import MESSAGE_LIMIT
from .notebook import cells_to_skip
from .sandbox import Sandbox
from .spec import Limits

TIMEOUT_ENAME = "CellTimeoutError"
MAX_CELL_OUTPUT_BYTES = 256 * 1024
# Jupyter messages: the largest part of one the grader's ZeroMQ accepts (the channel relay
# already drops any message larger in all) and how many may wait unread on a socket: with the
# relay's limit, what bounds what the kernel can make the grader hold (sandbox.held_bound).
MAX_MESSAGE_BYTES = MESSAGE_LIMIT
MAX_QUEUED_MESSAGES = 16
# Before a call, iopub messages left from earlier work are dropped: at most this many, for at
# most this long (a kernel that floods iopub cannot keep the grader draining).
DRAIN_MESSAGES = 2 * MAX_QUEUED_MESSAGES
DRAIN_SECONDS = 0.25
# A first start that fails (no code of the submission has run yet) is tried again this many times
# in all; the kernel's log's last bytes go into the error when every attempt failed.
START_ATTEMPTS = 2
# How long a start waits, after its first kernel_info reply, for the kernel's status on IOPub (proof
# that the client's IOPub subscription has joined; if not, it asks again, waiting twice as long
# each time, up to jupyter_client's 0.2 s).
IOPUB_JOIN_SECONDS = 0.02
LOG_TAIL_BYTES = 600


@dataclass
class CellRun:
    index: int
    error: str | None = None          # "NameError: ..." when the cell raised
    fatal: str | None = None          # the kernel died or hung in this cell


@dataclass
class NotebookRun:
    cells: list[CellRun] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)   # not run: the notebook's time was up
    notes: list[str] = field(default_factory=list)     # e.g. the session's output limit was reached

    def errors(self) -> list[CellRun]:
        return [c for c in self.cells if c.error or c.fatal]


# Run first, once the grader is connected: the sandbox starts Python with PYTHONSAFEPATH (nothing
# in the student's folder may run before the grader connects); the notebook then gets the path
# Jupyter gives it (its folder first, for the course's helper modules), and its subprocesses the
# usual one.
NOTEBOOK_PATH = ("import os as _os, sys as _sys\n_os.environ.pop('PYTHONSAFEPATH', None)\n"
                 "if '' not in _sys.path:\n    _sys.path.insert(0, '')\ndel _os, _sys")


def message_size(content: Any, buffers: list | None = None, limit: int | None = None) -> int:
    """About how many bytes a Jupyter message's content costs the grader to hold.

    Strings and buffers by their length, and every other node at least what a Python object
    of it costs (an empty list is 56 bytes): a message of millions of `[]` is not free.
    With `limit`, the count stops as soon as it passes `limit` (the answer is then only known to
    be more than `limit`): a budget need not walk all of a flood to refuse it.
    """
    total, stack = sum(len(b) for b in buffers or ()), [content]
    while stack:
        if limit is not None and total > limit:
            return total
        node = stack.pop()
        if isinstance(node, str | bytes | bytearray | memoryview):
            total += len(node) + 16
        elif isinstance(node, int):   # JSON's integers have up to 4300 digits
            total += 16 + node.bit_length() // 8
        elif isinstance(node, dict):
            total += 64
            stack += node.keys()
            stack += node.values()
        elif isinstance(node, list | tuple):
            total += 56
            stack += node
        else:
            total += 16
    return total


class OutputBudget:
    """What the kernel may send over iopub in a whole session (all cells, restarts, replays)."""

    def __init__(self, limit_bytes: int):
        self.left = limit_bytes

    def take(self, size: int) -> bool:
        """Spend `size` bytes; False once the budget is gone (the message is then dropped)."""
        self.left -= size
        return self.left >= 0

    @property
    def spent(self) -> bool:
        return self.left < 0


# What an output holds beyond its message's content (its output_type, ...), counted with it.
OUTPUT_OVERHEAD = 128


def _prompt_number(value: Any) -> bool:
    """Whether `value` is an execution count a cell may keep (None, or a small whole number)."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**31)


class _CappedClient(NotebookClient):
    """nbclient with caps on what the kernel's messages may make it hold.

    Per cell: the outputs stored for one cell (MAX_CELL_OUTPUT_BYTES, counted as the outputs
    arrive, each with OUTPUT_OVERHEAD; past it, one "[output truncated]" marker). Per session
    (`budget`): every iopub message but status (streams, display data and updates, comm
    messages, results) is counted, and once the budget is spent, dropped unread. Nothing else
    of a message is kept: an execution count that is not a small number (from any message,
    status included) is stored as None, display updates are not applied (they would rewrite
    outputs already stored, in any cell, past both caps; the grader reads no output), and
    widget state is not kept at all.
    """

    budget: OutputBudget
    _held_outs: list | None = None   # the outputs list last counted, its length then, and its size
    _held_length: int = -1
    _held_size: int = 0

    def process_message(self, msg, cell, cell_index):  # type: ignore[override]
        content = msg.get("content")
        if isinstance(content, dict) and not _prompt_number(content.get("execution_count")):
            content["execution_count"] = None
        if msg.get("msg_type") != "status":
            if self.budget.spent:  # dropped unread: a flood costs no more than receiving it
                return None
            size = message_size(content, msg.get("buffers"), limit=self.budget.left)
            if not self.budget.take(size):
                return None
        return super().process_message(msg, cell, cell_index)

    def _update_display_id(self, display_id, msg):  # type: ignore[override]
        return None

    def _held(self, outs: list) -> int:
        """The size of the outputs in `outs` (known since the last output, or counted up to the cap)."""
        if self._held_outs is outs and self._held_length == len(outs):
            return self._held_size
        return message_size(list(outs), limit=MAX_CELL_OUTPUT_BYTES)

    def _remember(self, outs: list, size: int) -> None:
        self._held_outs, self._held_length, self._held_size = outs, len(outs), size

    def output(self, outs, msg, display_id, cell_index):  # type: ignore[override]
        clearing = getattr(self, "clear_before_next_output", False)  # (set by nbclient as a cell starts)
        held = 0 if clearing else self._held(outs)   # a clear waiting: the outputs go first
        left = MAX_CELL_OUTPUT_BYTES - held - OUTPUT_OVERHEAD
        size = held + OUTPUT_OVERHEAD + (message_size(msg.get("content"), limit=left) if left >= 0 else 0)
        if size > MAX_CELL_OUTPUT_BYTES:
            if clearing:  # the clear the kernel asked for, then the marker
                outs[:] = []
                self.clear_display_id_mapping(cell_index)
                self.clear_before_next_output = False
            if not outs or outs[-1].get("name") != "convgrade":
                marker = nbformat.v4.new_output("stream", name="convgrade", text="[output truncated]\n")
                outs.append(marker)
                held += message_size(marker)
            self._remember(outs, held)
            return None
        out = super().output(outs, msg, display_id, cell_index)
        if out is not None and outs and outs[-1] is out:
            self._remember(outs, size)
        else:
            self._held_outs = None
        return out


def _bound_messages(context: Any) -> None:
    """Defaults for every socket the context makes from now on (set before connecting)."""
    context.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    context.setsockopt(zmq.RCVHWM, MAX_QUEUED_MESSAGES)


class NotebookRunner:
    """The kernel of one submission and its notebook's run. Use as a context manager.

    Time: the notebook phase has `notebook_timeout`, the calls after it `grading_timeout`
    (from the first call); a restart and its replay count against the deadline of the phase
    they happen in, so no kernel can buy time by dying.
    """

    def __init__(self, nb: nbformat.NotebookNode, sandbox: Sandbox, limits: Limits,
                 prelude: tuple[str, ...] = (), skip_cells: tuple[str, ...] = (), needed: tuple[str, ...] = ()):
        """skip_cells: patterns of cells not to run, unless they bind what other cells or the
        grader (`needed`: the names it calls) read (notebook.cells_to_skip)."""
        self.nb = nb
        self.sandbox = sandbox
        self.limits = limits
        # Kernel-side code (source texts) run before the notebook, after the notebook's path.
        self.prelude = (NOTEBOOK_PATH, *prelude)
        self.skip = cells_to_skip(nb, [re.compile(pattern) for pattern in skip_cells], needed)
        self.restarts = 0
        self.start_notes: list[str] = []   # a first start that had to be tried again
        self.output = OutputBudget(int(limits.output_mb * 1024 * 1024))
        self._clean_cells: list[int] = []
        self._client: NotebookClient | None = None
        self._km = None
        self._kc = None
        self._last_error: str | None = None
        self._gone: str | None = None      # why the kernel is beyond restarting
        self._deadline: float | None = None  # of the current phase (notebook, then calls)
        self._calls_deadline: float | None = None  # set when the first call is made

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "NotebookRunner":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _left(self, cap: float) -> float:
        """Seconds an operation may take: `cap`, or less if the phase's deadline is nearer."""
        return cap if self._deadline is None else min(cap, self._deadline - time.monotonic())

    def start(self) -> None:
        """Start the kernel in its sandbox, connect to it, and run the prelude.

        The first start is tried START_ATTEMPTS times: until the prelude has run, no code of the
        submission has (its cells run later; its files are the grader's copies), so a kernel that
        dies or stalls here failed for the machine's reasons (a loaded machine, a start that lost
        a race), not the student's. A start that fails every time raises RuntimeError with the
        kernel's last words (its log), which the grader records as its own fault.
        """
        causes: list[str] = []
        for attempt in range(START_ATTEMPTS):
            try:
                self._start()
            except RuntimeError as exc:
                tail = self.sandbox.log_tail(LOG_TAIL_BYTES)
                if self.sandbox.forking_failed(exc):   # the next attempt starts an ordinary kernel
                    exc = RuntimeError(f"{exc}; forking the kernel failed")
                self.stop()
                causes.append(f"{exc}" + (f" (its log ends: {tail})" if tail else ""))
                if attempt + 1 == START_ATTEMPTS:
                    raise RuntimeError(f"the kernel failed to start {START_ATTEMPTS} times: "
                                       + "; ".join(causes)) from None
                continue
            if causes:
                self.start_notes.append(f"the kernel failed to start ({causes[0]}) and was started again "
                                        "before any of the notebook's code ran")
            return

    def _start(self) -> None:
        """One start: the kernel in its sandbox, its sockets sealed, the client ready, the prelude run."""
        km, start_kwargs = self.sandbox.kernel_manager()
        self._km = km
        _bound_messages(km.context)
        run_sync(km.start_kernel)(**start_kwargs)
        self.sandbox.watch(km.provisioner.process.pid)
        self.sandbox.attach(km)   # a forked kernel: into bwrap's sandbox now
        startup = self._left(60)
        until = time.monotonic() + startup
        while not self.sandbox.sockets_ready(km):  # connect only to what this start's kernel bound
            if time.monotonic() > until or not run_sync(km.is_alive)():
                raise RuntimeError("the kernel did not start")
            time.sleep(0.005)
        self.sandbox.seal(km)
        client = _CappedClient(self.nb, km=km, allow_errors=True, interrupt_on_timeout=True,
                               error_on_timeout={"ename": TIMEOUT_ENAME, "evalue": "", "traceback": []},
                               timeout=int(self.limits.cell_timeout), startup_timeout=60,
                               iopub_timeout=5, record_timing=False, store_widget_state=False)
        client.budget = self.output
        client.on_cell_error = self._on_cell_error
        client.kc = km.client()
        _bound_messages(client.kc.context)
        client.kc.start_channels()
        run_sync(self._async_wait_ready)(client.kc, max(1.0, self._left(60)))
        self._kc = client.kc
        self._client = client
        for code in self.prelude:
            self._run_hidden(code)

    async def _async_wait_ready(self, kc: Any, timeout: float) -> None:
        """Until the kernel answers kernel_info on the shell channel and its status reaches the
        client's IOPub: jupyter_client's wait_for_ready, less its fixed waits (it then waits 0.2 s
        for IOPub to fall silent, about half of a forked kernel's start; the grader drains IOPub
        before each of its own requests anyway)."""
        deadline = time.monotonic() + timeout
        join = IOPUB_JOIN_SECONDS
        while True:
            kc.kernel_info()
            try:
                msg = await kc.get_shell_msg(timeout=max(0.01, min(1.0, deadline - time.monotonic())))
            except Empty:
                msg = None
            if msg is not None and msg["msg_type"] == "kernel_info_reply":
                try:
                    await kc.get_iopub_msg(timeout=join)
                except Empty:   # IOPub has not joined yet: its status was missed; ask again
                    join = min(0.2, 2 * join)
                else:
                    kc._handle_kernel_info_reply(msg)
                    return
            if not await self._km.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:.1f} seconds")

    def stop(self) -> None:
        """Stop the kernel (if any) and release the sandbox's processes."""
        if self._kc is not None:
            self._kc.stop_channels()
            self._kc.context.destroy(linger=0)
        if self._km is not None:
            try:
                run_sync(self._km.shutdown_kernel)(now=True)
            except Exception:
                pass
        self.sandbox.release()
        self._client = self._km = self._kc = None

    def _restart(self, cause: str) -> None:
        """Replace a dead or stuck kernel and replay the cells that ran cleanly.

        After max_restarts, when the phase's time is up, or if the replay itself kills the
        kernel, the session is gone: every later call fails at once with the reason (never a
        crash, never a pass).
        """
        self.stop()
        self.restarts += 1
        # Its files are still there, or its channels are refused: a new kernel would not help.
        if self.sandbox.disk_exceeded or self.sandbox.messages_exceeded:
            self._gone = cause
            raise KernelFault(self._gone)
        if self.restarts > self.limits.max_restarts:
            self._gone = f"{cause}; the kernel was restarted {self.limits.max_restarts} times, giving up"
            raise KernelFault(self._gone)
        index = None
        try:
            if self._left(1.0) < 1.0:
                raise TimeoutError("no time was left to restart it")
            self._start()
            for index in self._clean_cells:
                left = self._left(self.limits.cell_timeout)
                if left < 1:
                    raise TimeoutError(f"the time limit was reached while replaying cell {index}")
                self._client.timeout = int(left)
                self._last_error = None
                self._client.execute_cell(self.nb.cells[index], index)
                if self._last_error == TIMEOUT_ENAME:
                    raise TimeoutError(f"replaying cell {index} ran out of time")
        except DeadKernelError:
            self.stop()
            self._gone = f"{cause}; the kernel died again while replaying cell {index}"
            raise KernelFault(self._gone) from None
        except (RuntimeError, TimeoutError) as exc:
            self.stop()
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
        until = time.monotonic() + DRAIN_SECONDS
        try:
            for _ in range(DRAIN_MESSAGES):
                if time.monotonic() > until:
                    break
                await self._kc.get_iopub_msg(timeout=0)
        except Empty:
            pass

    # -- the notebook ---------------------------------------------------------------------
    def run_notebook(self) -> NotebookRun:
        """Run every code cell in order, within the per-cell and per-notebook time limits."""
        run = NotebookRun(notes=list(self.start_notes))
        deadline = self._deadline = time.monotonic() + self.limits.notebook_timeout
        for index, cell in enumerate(self.nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            if index in self.skip:  # e.g. the student's own training
                continue
            remaining = deadline - time.monotonic()
            if remaining < 1:
                run.skipped.append(index)
                continue
            if self.sandbox.output_cut:   # no outputs come any more: do not wait for them
                self._client.iopub_timeout = 0
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
            # wrote past the disk limit within the watchdog's last interval, or sent past a channel's cap
            if self.sandbox.disk_over() or self.sandbox.messages_exceeded:
                record.fatal = f"the kernel died while running this cell ({self._death_cause()})"
                run.cells.append(record)
                self._restart(record.fatal)
                continue
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
        dropped = self.sandbox.relay.dropped["iopub"]
        if dropped:
            run.notes.append(f"{dropped} of the notebook's output messages were over {MESSAGE_LIMIT >> 20} MB each "
                             "and were dropped (the output limit)")
        if self.output.spent or self.sandbox.output_cut:
            run.notes.append(f"the notebook's output passed the output limit ({self.limits.output_mb:g} MB for the "
                             "whole session): the rest was dropped")
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
        code = self.sandbox.kernel_exit_code(proc.poll() if proc is not None else None)
        if self.sandbox.disk_exceeded:
            return f"killed: the submission's files passed the disk limit ({self.limits.disk_mb} MB)"
        if self.sandbox.messages_exceeded:
            return (f"killed: it sent the grader more than its {self.sandbox.messages_exceeded} channel allows "
                    f"for a session (the output limit is {self.limits.output_mb:g} MB)")
        if code is None:
            return "cause unknown"
        if self.sandbox.memory_killed():
            return (f"killed: the sandbox's processes together passed the memory limit "
                    f"({self.limits.memory_mb} MB)")
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

    # -- the grader's calls -----------------------------------------------------------------
    def run_call(self, code: str, what: str) -> None:
        """Run the grader's `code` for one call (`what`, for messages) in the kernel, silently.

        The calls' phase has `grading_timeout` from the first call, each call at most
        `call_timeout`. Raises KernelFault if the session is gone, or if the call hung or killed
        the kernel (which has then been restarted for the next call).
        """
        if self._gone:
            raise KernelFault(f"not run: {self._gone}")
        now = time.monotonic()
        if self._calls_deadline is None:  # the calls' phase begins: restarts now count against it
            self._calls_deadline = self._deadline = now + self.limits.grading_timeout
        if now >= self._calls_deadline:
            self._gone = f"the grading time limit ({self.limits.grading_timeout:g}s for all calls) was reached"
            raise KernelFault(f"not run: {self._gone}")
        timeout = min(self.limits.call_timeout, self._calls_deadline - now)
        try:
            reply = self._execute(code, timeout)
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
