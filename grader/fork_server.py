"""The fork server: kernels forked from a preloaded process instead of started from nothing.

A fresh kernel spends about a CPU-second before a NumPy notebook's first line of its own: Python,
ipykernel's start and the notebook's `import numpy, matplotlib.pyplot` (BENCHMARKS, "What a fresh
kernel costs"). With a fork server, one process per grading process and exercise (the "zygote",
kernel_side/zygote.py) imports those once; each kernel is then a fork of it.

The sandbox stays bwrap's: the grader starts bwrap exactly as for an ordinary kernel (the same
mounts, namespaces, seccomp program, rlimits, user, cgroup), but with a placeholder command (the
anchor, ANCHOR). The zygote's fork then joins the anchor's namespaces and takes each of the other
properties itself before ipykernel starts (kernel_side/zygote.py lists them in order). When the
kernel ends, the anchor is killed and bwrap ends with it; when the grader kills bwrap, the pid
namespace ends and the kernel with it. The kernel's exit status comes back over a pipe.

Used only for exercises that name modules to preload (`[kernel] preload` in spec.toml), under
bwrap, and where matplotlib's font list is in the data cache (the zygote's matplotlib reads it at
import from a folder that every kernel sees at the same path, read-only).

The zygote never runs code of a submission and imports nothing of the grader, so what a kernel
inherits from it is the libraries' state; every kernel gets fresh random seeds.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .seccomp import CLONE_NAMESPACE_FLAGS

ZYGOTE = Path(__file__).resolve().parent / "kernel_side" / "zygote.py"
ANCHOR = ("sleep", "infinity")          # the placeholder bwrap runs (found on the kernel's PATH)
START_FAILED = 126                      # a forked kernel's status when it could not set itself up (zygote.py)
READY_SECONDS = 120                     # the zygote's imports (TensorFlow-free: seconds)
# /proc/PID/ns/<name> -> its setns flag (the CLONE_NEW* values the seccomp filter knows already)
NAMESPACES = {name: CLONE_NAMESPACE_FLAGS[f"CLONE_NEW{suffix}"] for name, suffix in
              (("mnt", "NS"), ("cgroup", "CGROUP"), ("uts", "UTS"), ("ipc", "IPC"), ("user", "USER"),
               ("pid", "PID"), ("net", "NET"))}
MUST_DIFFER = ("mnt", "pid", "net", "ipc", "uts")   # bwrap always unshares these for a kernel


class ForkServerError(RuntimeError):
    """A kernel could not be forked (its start fails and is tried again, as an ordinary start).
    `lasting`: this machine cannot (the zygote does not start, pidfds or setns are refused): the
    fork server is given up; else (the zygote died, the placeholder went away) it is used again."""

    def __init__(self, message: str, lasting: bool = True):
        super().__init__(message)
        self.lasting = lasting


class ForkServer:
    """One zygote: the kernel environment it was started with (everything but HOME) and the
    modules it preloaded. Thread-safe; started on first use; close() ends it."""

    def __init__(self, env: dict[str, str], preload: tuple[str, ...], mpl_folder: Path):
        self.env = dict(env)
        self.preload = tuple(preload)
        self.mpl_folder = mpl_folder
        self._process: subprocess.Popen | None = None
        self._channel: socket.socket | None = None
        self._ready = False
        self._lock = threading.Lock()
        self.broken: str | None = None     # why this machine cannot fork kernels: never tried again

    def prestart(self) -> None:
        """Start the zygote now (its imports take a second), without waiting for it."""
        with self._lock:
            if self.broken is None and (self._process is None or self._process.poll() is not None):
                self._launch()

    def _launch(self) -> None:
        self._close()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._process = subprocess.Popen(
                [sys.executable, str(ZYGOTE), str(theirs.fileno()), *self.preload], pass_fds=(theirs.fileno(),),
                env=self.env, cwd="/", stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        ours.settimeout(READY_SECONDS)
        self._channel = ours

    def _await_ready(self) -> None:
        try:
            hello = json.loads(self._channel.recv(1 << 16) or b"{}")
        except (OSError, ValueError) as exc:
            hello = {"error": str(exc)}
        if not hello.get("ready"):
            self._close()
            raise ForkServerError(f"the fork server did not start ({hello.get('error', 'no answer')})")
        self._ready = True

    def fork(self, request: dict[str, Any], fds: list[int]) -> int:
        """Send one kernel's request with its descriptors (anchor pidfd, log, status pipe,
        cgroup.procs files); the waiter's pid. ForkServerError if it cannot: a zygote that died is
        started again at the next request."""
        with self._lock:
            if self.broken is not None:
                raise ForkServerError(self.broken)
            if self._process is None or self._process.poll() is not None:
                self._launch()
            if not self._ready:
                self._await_ready()
            try:
                socket.send_fds(self._channel, [json.dumps(request).encode()], fds)
                reply = json.loads(self._channel.recv(1 << 16) or b"{}")
            except (OSError, ValueError) as exc:
                self._close()
                raise ForkServerError(f"the fork server did not answer ({exc})", lasting=False) from None
        if "waiter" not in reply:
            raise ForkServerError(f"the fork server could not fork: {reply.get('error', 'no answer')}")
        return int(reply["waiter"])

    def give_up(self, reason: str) -> None:
        """This machine cannot fork kernels into bwrap's sandbox (e.g. setns on a pidfd needs
        Linux 5.8): kernels start anew from now on."""
        self.broken = reason
        self.close()

    def _close(self) -> None:
        self._ready = False
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def close(self) -> None:
        with self._lock:
            self._close()


def namespaces_to_join(anchor: int) -> int:
    """setns flags for every namespace of `anchor` that is not this process's; ForkServerError
    unless the anchor has its own mount, pid, network, ipc and uts namespaces."""
    flags = 0
    for name, flag in NAMESPACES.items():
        theirs = os.stat(f"/proc/{anchor}/ns/{name}").st_ino
        if theirs != os.stat(f"/proc/self/ns/{name}").st_ino:
            flags |= flag
        elif name in MUST_DIFFER:
            raise ForkServerError(f"the sandbox has no {name} namespace of its own")
    return flags


def bounding_set(anchor: int) -> int:
    """The anchor's capability bounding set (the kernel's is made the same)."""
    for line in Path(f"/proc/{anchor}/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16)
    raise ForkServerError("the anchor's capability bounding set is unknown")


def exit_status(status_fd: int) -> int | None:
    """The kernel's end as Popen.returncode has it (-signal or the exit code), once the waiter has
    written it; None before."""
    try:
        data = os.read(status_fd, 4)
    except BlockingIOError:
        return None
    if len(data) != 4:
        return None
    status = struct.unpack("i", data)[0]
    return os.waitstatus_to_exitcode(status)
