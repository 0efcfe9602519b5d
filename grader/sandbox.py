"""How the student's kernel process is started: the sandbox around it.

`bwrap` (the default) starts the kernel inside bubblewrap: no network, its own PID,
IPC and UTS namespaces, a fresh tmpfs /tmp, and a filesystem that holds only the
system libraries, this Python and its packages (read-only), and the few folders of
the submission's scratch folder the kernel needs. The grader's source, reference/,
tests, other submissions and the instructor's home are not there at all. Started as
root, the kernel runs as nobody. `none` runs the kernel as this user with resource
limits only. With a fork server (fork_server.py), bwrap runs a placeholder and `attach` has the
kernel forked into its namespaces; the sandbox itself is built the same way.

The scratch folder is laid out so that the kernel can write only inside leaf folders,
never in the folder that holds them:

    scratch/             the grader's only; the kernel never sees it
      kernel.log         the kernel's own stdout/stderr, opened once (O_EXCL, O_NOFOLLOW)
      staging/           call folders are filled here, then moved into exchange/
      work/              the notebook's folder (bound read-write; helpers and data read-only on top)
      home/              the kernel's $HOME (read-write; data files read-only on top)
      exchange/          call folders (read-write)
      ipc-N/             the Jupyter connection file and sockets of the N-th kernel start
      relay/             the grader's side of the channel relay (channel_relay.py): the grader's
                         sockets connect here, never to the kernel's own
                         (ipc-N and relay in a short folder of /tmp instead when the scratch path
                         is long: socket paths are limited to 108 bytes)

Everything the sandbox is built from (mounts, ownership, the log) is decided once by
`Sandbox(...)`, before the student's code first runs, and reused verbatim on every
restart: nothing the kernel wrote is listed, followed or chowned afterwards. Each start
gets a fresh ipc-N folder that the grader makes, so a kernel cannot leave anything there
for the next one.

What the kernel sends the grader over Jupyter's channels passes a relay that connects to the
very sockets `seal` checked (by descriptor, not by path) and passes only whole messages within
its limit: ZeroMQ bounds each part of a message but not their number, so the relay's limit and
the sockets' queues bound what the kernel can make the grader's process hold (`held_bound`). Each
channel also has a cap for the whole session (`channel_caps`); past it the channel is refused
for the rest of the session, and for any but the outputs (iopub) the kernel is killed.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import stat
import sys
import sysconfig
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, IO

from jupyter_client.manager import AsyncKernelManager

from . import cgroups, fork_server, seccomp
from .channel_relay import MESSAGE_LIMIT, PENDING_LIMIT, ChannelRelay
from .scratch import remove_tree, usage
from .spec import Limits

MODES = ("bwrap", "none")
SUBMISSION_NAME = "submission.ipynb"  # the submission's copy in the kernel's working folder
MPL_FOLDER = ".matplotlib"             # the kernel's MPLCONFIGDIR, in its home
KERNEL_HOME = "home"                  # the kernel's $HOME, in its scratch folder (e.g. ~/.keras/models)
NOBODY = 65534
CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
RESERVE_BYTES = 32 << 20  # room kept for the grader's own writes in the scratch folder
DISK_POLL_SECONDS = 0.5   # the disk watchdog's interval, where the scratch is not a tmpfs of its own
CHANNEL_SLACK = 4 << 20   # the small channels' caps, and room beside the output limit
JSON_GROWTH = 25          # what one decoded byte of JSON can cost in Python objects, at most (`[],` -> a list)
# The grader's libzmq reads into 8 KB buffers of about 18 KB each with their records, and a
# received part of 33 bytes or more points into its buffer (zero-copy; pyzmq offers no switch for
# it), keeping the whole buffer while it waits unread: a queued byte can cost about 3 bytes (a red
# team measured 19 to 26 KB kept per 8.3 KB charged), and any queued message at least a buffer
# at each of its ends.
ZMQ_BUFFER_COST = 18 << 10
PIN_GROWTH = 3.2

UNPROTECTED = ("--sandbox none: the student's code runs as you, with your files, your network and your "
               "environment; only memory, file size, open files and CPU time are limited. Use it only "
               "for code you trust.")


class SandboxUnavailable(Exception):
    """The requested sandbox cannot be used on this machine."""


def check_available(mode: str) -> None:
    if mode not in MODES:
        raise SandboxUnavailable(f"unknown sandbox {mode!r} (choose from {', '.join(MODES)})")
    if mode == "bwrap" and not shutil.which("bwrap"):
        raise SandboxUnavailable("--sandbox bwrap needs bubblewrap, which is not installed "
                                 "(apt-get install bubblewrap); --sandbox none grades without isolation")


def without_nproc(args: list[str]) -> list[str]:
    """A command line with prlimit's RLIMIT_NPROC option dropped: for a sandbox whose cgroup caps
    its processes exactly. RLIMIT_NPROC counts every process of the user (nobody, as root) on the
    machine, other kernels and model workers included, so beside them it refused a start that
    was within its own limit."""
    return [a for a in args if not a.startswith("--nproc=")]


def rlimit_args(limits: Limits, *, processes: bool, cpu: bool = True) -> list[str]:
    """prlimit options for the kernel (inherited by everything it starts).

    processes: set RLIMIT_NPROC. It counts every process of the kernel's user in the kernel's
    user namespace, so it is only meaningful where that user is the sandbox's alone: nobody
    (as root), or the user namespace bwrap makes for an ordinary user (Linux >= 5.14 counts
    processes per user namespace).
    cpu: set RLIMIT_CPU (the model worker, which serves many requests, sets its own per request).
    """
    mb = 1024 * 1024
    args = [
        f"--as={limits.memory_mb * mb}",
        f"--fsize={limits.file_size_mb * mb}",
        f"--nofile={limits.open_files}",
        "--core=0",
    ] + ([f"--cpu={limits.cpu_seconds}"] if cpu else [])
    return args + [f"--nproc={limits.processes}"] if processes else args


_RLIMITS = {"as": "RLIMIT_AS", "fsize": "RLIMIT_FSIZE", "nofile": "RLIMIT_NOFILE", "core": "RLIMIT_CORE",
            "cpu": "RLIMIT_CPU", "nproc": "RLIMIT_NPROC"}


def rlimit_values(limits: Limits, *, processes: bool) -> list[tuple[str, int, int]]:
    """rlimit_args as (resource's name, soft, hard): what a forked kernel sets itself."""
    values = []
    for arg in rlimit_args(limits, processes=processes):
        key, value = arg[2:].split("=")
        values.append((_RLIMITS[key], int(value), int(value)))
    return values


def _cmdline(pid: int) -> tuple[str, ...]:
    try:
        return tuple(Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1])
    except OSError:
        return ()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _find_anchor(top: int, timeout: float) -> int:
    """The process under `top` (bwrap, at most three levels down) running fork_server.ANCHOR."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        try:
            if Path(f"/proc/{top}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX":
                break   # bwrap has ended
        except OSError:
            break
        level = [top]
        for _ in range(3):
            level = [child for pid in level for child in _children(pid)]
            found = [pid for pid in level if _cmdline(pid) == fork_server.ANCHOR]
            if found:
                return found[0]
        time.sleep(0.002)
    raise fork_server.ForkServerError("the sandbox's placeholder process did not start", lasting=False)


def channel_caps(limits: Limits) -> dict[str, int]:
    """What the kernel may send the grader on each channel in a whole session (every start and
    replay), charged as the relay charges (bytes, and each message part's record): the outputs
    within four times the output limit (what the grader keeps of them is capped at the limit
    itself, the rest dropped; envelopes and flushed lines cost more than their text), replies
    within the limit, the other channels a little. A flood's bound, in bytes and in the relay's
    work: a channel past it is refused."""
    output = int(limits.output_mb * (1 << 20))
    return {"iopub": 4 * output + 4 * CHANNEL_SLACK, "shell": output + CHANNEL_SLACK,
            "stdin": CHANNEL_SLACK, "control": CHANNEL_SLACK, "hb": CHANNEL_SLACK}


def held_bound(limits: Limits, queued_messages: int) -> int:
    """At most what the kernel's messages can make the grader's process hold at once. Per grader
    socket: its queue of whole messages within the relay's MESSAGE_LIMIT (one more being read, one
    in the relay's buffer), each byte of them worth up to PIN_GROWTH in ZeroMQ's receive buffers
    and each message up to two buffers more, but never more bytes than the channel's cap; and one
    message being decoded (JSON_GROWTH)."""
    sockets = {"control": 2}      # the kernel manager's own, and the client's
    total = JSON_GROWTH * MESSAGE_LIMIT
    for channel, cap in channel_caps(limits).items():
        n = sockets.get(channel, 1) * (queued_messages + 2)
        total += int(PIN_GROWTH * min(cap, n * MESSAGE_LIMIT)) + n * 2 * ZMQ_BUFFER_COST
        total += sockets.get(channel, 1) * (PENDING_LIMIT + MESSAGE_LIMIT)
    return total


class WrappedKernelManager(AsyncKernelManager):
    """A KernelManager whose kernel command is prefixed by a wrapper command.

    jupyter_client 8 ignores KernelManager.kernel_cmd, so the wrapping happens in
    format_kernel_cmd, the one place every start goes through (after the connection
    file is written into the start's fresh ipc folder, so the sandbox can hand that
    file to the kernel's user). With `relay_ip`, the manager's own control socket and
    its clients connect to the relay's sockets (`<relay_ip>-<port>`) instead of the kernel's.
    """

    wrapper: list[str] = []
    kernel_owner: int | None = None
    relay_ip: str | None = None
    anchor: bool = False       # run fork_server.ANCHOR in the sandbox; the kernel is forked into it
    ended: Any = None          # forked: a callable, True once the kernel (or its waiter) has ended

    def _make_url(self, channel: str) -> str:
        if self.relay_ip is None:
            return super()._make_url(channel)
        return f"ipc://{self.relay_ip}-{getattr(self, channel + '_port')}"

    async def _async_is_alive(self) -> bool:
        """Whether the kernel runs: bwrap's process, and for a forked kernel also its waiter's
        status pipe still empty and open (a waiter that died would leave the placeholder, and so
        bwrap, running after the kernel's end). (Its clients ask this one.)"""
        if self.ended is not None and self.ended():
            return False
        return await super()._async_is_alive()

    is_alive = _async_is_alive

    async def _async_wait(self, pollinterval: float = 0.1) -> None:
        """Until the kernel has ended, polled every 5 ms (jupyter_client polls every 100 ms: a
        killed sandbox ends within a few ms, and every submission's shutdown waits for it)."""
        await super()._async_wait(pollinterval=min(pollinterval, 0.005))

    def client(self, **kwargs: Any) -> Any:
        kc = super().client(**kwargs)
        if self.relay_ip is not None:
            kc.ip = self.relay_ip
        return kc

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.kernel_owner is not None:
            os.chown(self.connection_file, self.kernel_owner, self.kernel_owner, follow_symlinks=False)
        return [*self.wrapper, *(fork_server.ANCHOR if self.anchor else cmd)]


def kernel_environment(sandboxed: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment. Sandboxed: a minimal one (no secrets of the grader's)."""
    fixed = {
        "MPLBACKEND": "Agg",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1"),
        "MKL_NUM_THREADS": os.environ.get("MKL_NUM_THREADS", "1"),
    }
    if sandboxed:
        # The home and the working folder are the student's to write: nothing there may run in the
        # next kernel before the grader has connected to it (PYTHONNOUSERSITE: no .pth files of the
        # home; PYTHONSAFEPATH: the working folder is not on sys.path while Python starts, so a
        # student's ipykernel_launcher.py is not the launcher; IPython adds it for the notebook).
        base = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                "IPYTHONDIR": "/tmp/.ipython", "TMPDIR": "/tmp",
                "PYTHONNOUSERSITE": "1", "PYTHONSAFEPATH": "1"}
        for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # needed on some CPUs for correct BLAS
            if key in os.environ:
                base[key] = os.environ[key]
    else:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "CONVGRADE_"))}
    return {**base, **fixed, **(extra or {})}


def python_roots() -> list[Path]:
    """Folders this interpreter and its packages live in (bound read-only into the sandbox)."""
    roots = {Path(sys.prefix), Path(sys.base_prefix), Path(os.path.realpath(sys.executable)).parent.parent}
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = sysconfig.get_paths().get(key)
        if path:
            roots.add(Path(path))
    # Keep only the outermost roots, and not the system's own /usr (bound as a whole anyway).
    roots = {r for r in roots if r.exists() and not str(r).startswith("/usr")}
    return sorted(r for r in roots if not any(o != r and o in r.parents for o in roots))


def _parents(path: Path) -> list[Path]:
    return [p for p in reversed(path.parents) if str(p) != "/"]


def system_args(limits: Limits, devices: list[str], as_root: bool) -> list[str]:
    """Namespaces, the read-only system, /proc, /dev and the private tmpfs folders."""
    args = [shutil.which("bwrap") or "bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    if not as_root:
        args.append("--unshare-user")
    args += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib64", "lib32"):
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    for f in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/localtime", "/etc/fonts"):
        if Path(f).exists():
            args += ["--ro-bind", f, f]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for node in devices:  # e.g. /dev/nvidia0 for --device gpu
        args += ["--dev-bind", node, node]
    # /tmp and /dev/shm: fresh, private and sized (POSIX semaphores live in /dev/shm: Python's
    # multiprocessing locks, e.g. the thread pool Keras lists image folders with, need it).
    for folder in ("/tmp", "/dev/shm"):
        args += ["--perms", "1777", "--size", str(limits.file_size_mb * 1024 * 1024), "--tmpfs", folder]
    return args


def bind_args(binds: list[tuple[str, Path]], made: set[Path]) -> list[str]:
    """--dir for every parent not made yet, then each (option, path) bind at its own path."""
    args: list[str] = []
    for option, path in binds:
        for parent in _parents(path):
            if parent not in made and not str(parent).startswith("/usr"):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += [option, str(path), str(path)]
        made.add(path)
    return args


def _tree(folder: Path) -> tuple[list[Path], list[Path]]:
    """The folders (`folder` included) and regular files under `folder`, links not followed
    (a grader-made tree, listed before any kernel ran)."""
    folders, files, stack = [], [], [folder]
    while stack:
        current = stack.pop()
        folders.append(current)
        with os.scandir(current) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    files.append(Path(entry.path))
    return sorted(folders), sorted(files)


def _socket_names(km: WrappedKernelManager) -> dict[str, str]:
    """Each channel's socket file name in the start's ipc folder (ipc transport: ip-port)."""
    return {channel: f"kernel-{getattr(km, channel + '_port')}" for channel in CHANNELS}


def _kill_first_process(pid: int) -> None:
    """Kill a start's first process (bwrap takes the rest of the sandbox with it). A pid of 0 (no
    start running) is ignored: os.kill(0, ...) would signal the grader's own process group."""
    if pid <= 0:
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _own(path: Path, owner: int) -> None:
    """Give `path` itself (never a link's target) to the kernel's user."""
    os.chown(path, owner, owner, follow_symlinks=False)


class Sandbox:
    """One submission's sandbox, decided once before its kernel first starts.

    `scratch` must be a folder only the grader can reach, holding `work/`, `home/` and
    `exchange/` as made by the grader (see the module docstring). Everything the sandbox
    needs from them (mounts, ownership, the log) is derived here and never again.
    """

    def __init__(self, mode: str, scratch: Path, limits: Limits, extra_env: dict[str, str] | None = None,
                 devices: list[str] = (), watch_disk: bool = False, forks: fork_server.ForkServer | None = None):
        """watch_disk: the scratch folder is not a filesystem of its own size (no root): a watchdog
        polls its size and kills the sandbox once it passes disk_mb. forks: kernels are forked
        from this fork server into the sandbox (bwrap only; fork_server.py), not started anew."""
        check_available(mode)
        self.scratch = scratch
        self.workdir = scratch / "work"
        self.home = scratch / KERNEL_HOME
        self.exchange = scratch / "exchange"
        self.staging = scratch / "staging"
        self.staging.mkdir(mode=0o700)
        # Unix socket paths are short (108 bytes): under a deep TMPDIR the sockets go to /tmp.
        self._ipc_root = scratch if len(str(scratch)) <= 60 else Path(tempfile.mkdtemp(prefix="cg-", dir="/tmp"))
        self._relay_dir = self._ipc_root / "relay"
        self._relay_dir.mkdir(mode=0o700)
        self.messages_exceeded: str | None = None    # a channel that passed its cap and ended the session
        self._kernel_pid = 0                         # the current start's first process
        self.limits = limits
        self.sandboxed = mode == "bwrap"
        as_root = os.geteuid() == 0
        self.kernel_owner = NOBODY if self.sandboxed and as_root else None
        self.forks = forks if self.sandboxed else None
        # matplotlib's folder in the home, where the grader puts the machine's font list (font_cache.py);
        # forked: the folder the zygote's matplotlib read at import, which every kernel sees read-only
        self.env = {**kernel_environment(self.sandboxed, extra_env), "HOME": str(self.home),
                    "MPLCONFIGDIR": str(self.forks.mpl_folder if self.forks else self.home / MPL_FOLDER)}
        self._status_fd: int | None = None           # a forked kernel's exit status comes here
        self.waiter = 0                              # the fork server's process that waits for it
        self._exit_code: int | None = None
        self._starts = 0
        self.group: cgroups.SandboxGroup | None = None  # the current start's cgroup
        self._filter_fd: int | None = None               # the current start's seccomp program
        self.watch_disk = watch_disk
        self.disk_exceeded = False
        self._watch_stop: threading.Event | None = None
        if self.sandboxed:
            # Data beside the notebook and in its home is read-only on top of the writable folders.
            home_folders, home_files = _tree(self.home)
            readonly = [p for p in sorted(self.workdir.iterdir()) if p.name != SUBMISSION_NAME] + home_files
            if self.kernel_owner is not None:  # the kernel runs as nobody: it owns its folders only
                for path in (self.workdir, self.exchange, self.workdir / SUBMISSION_NAME, *home_folders):
                    _own(path, self.kernel_owner)
            self._made: set[Path] = {Path("/tmp")}
            self._head = system_args(limits, list(devices), as_root)
            self._head += bind_args([("--ro-bind", r) for r in python_roots()], self._made)
            if self.forks is not None:
                self._head += bind_args([("--ro-bind", self.forks.mpl_folder)], self._made)
            self._head += bind_args([("--bind", self.workdir), ("--bind", self.home), ("--bind", self.exchange),
                                      *(("--ro-bind", p) for p in readonly)], self._made)
            self._tail = ["--chdir", str(self.workdir), "--clearenv"]
            for key, value in self.env.items():
                self._tail += ["--setenv", key, value]
            self._tail += ["--", shutil.which("prlimit") or "/usr/bin/prlimit", *rlimit_args(limits, processes=True), "--"]
            if self.kernel_owner is not None:
                self._tail += [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                               "--clear-groups", "--no-new-privs", "--"]
        # Room kept for the grader's own files (a call's inputs) in case the kernel fills the disk.
        self._reserve = scratch / "reserve"
        fd = os.open(self._reserve, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        except OSError:
            pass  # a filesystem without room or fallocate: no reserve
        finally:
            os.close(fd)
        # The kernel's own stdout/stderr (not the notebook's outputs, which come over Jupyter's
        # channels): one log for every start, opened once where the kernel cannot reach.
        fd = os.open(scratch / "kernel.log", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600)
        self.log: IO[bytes] = os.fdopen(fd, "ab")
        # Read back through a descriptor of its own, opened now, for the error of a start that failed.
        self._log_reader = os.open(scratch / "kernel.log", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        self.relay = ChannelRelay(channel_caps(limits), on_exceeded=self._messages_over).start()

    def kernel_manager(self) -> tuple[WrappedKernelManager, dict[str, Any]]:
        """A kernel manager for the next start, with a fresh ipc folder, and its start_kernel kwargs."""
        self.release()
        self._starts += 1
        ipc = self._ipc_root / f"ipc-{self._starts}"
        ipc.mkdir(mode=0o700)
        if self.kernel_owner is not None:
            _own(ipc, self.kernel_owner)
        km = WrappedKernelManager(kernel_name="python3", transport="ipc", ip=str(ipc / "kernel"),
                                  connection_file=str(ipc / "kernel.json"))
        km.relay_ip = str(self._relay_dir / "kernel")   # listening from `seal` on
        # The kernel is always this interpreter's ipykernel, whatever the notebook's metadata says.
        km.kernel_spec.argv[0] = sys.executable
        km.kernel_owner = self.kernel_owner
        km.anchor = self.forks is not None
        km.ended = self._forked_kernel_ended if self.forks is not None else None
        extra: dict[str, Any] = {}
        if self.sandboxed:
            # bwrap puts the kernel in a session of its own: interrupt by message, not by signal.
            km.kernel_spec.interrupt_mode = "message"
            # The seccomp program through a pipe of its own per start (bwrap reads it to the end;
            # the program is far smaller than a pipe's buffer).
        # Memory and processes for the whole sandbox (every process, its tmpfs included): a
        # cgroup per start that the first process joins before it runs anything else.
        group = cgroups.create(cgroups.unique_name(), self.limits.memory_mb * 1024 * 1024, self.limits.processes)
        if self.sandboxed:
            self._filter_fd = seccomp.filter_pipe()
            extra["pass_fds"] = (self._filter_fd,)
            tail = self._tail
            if not isinstance(group, cgroups.Unavailable) and group.limits_pids():
                tail = without_nproc(tail)
            km.wrapper = [*self._head, *bind_args([("--bind", ipc)], set(self._made)),
                          "--seccomp", str(self._filter_fd), *tail]
        else:
            prlimit = shutil.which("prlimit")
            km.wrapper = [prlimit, *rlimit_args(self.limits, processes=False), "--"] if prlimit else []
        if not isinstance(group, cgroups.Unavailable):  # else: per-process rlimits only (README)
            self.group = group
            km.wrapper = [*cgroups.launcher(group), *km.wrapper]
        return km, {"cwd": str(self.workdir), "env": self.env, "stdout": self.log, "stderr": self.log, **extra}

    def attach(self, km: WrappedKernelManager, timeout: float = 10.0) -> None:
        """Forked kernels: once bwrap runs the anchor, have the fork server fork the kernel into
        its namespaces (fork_server.py). Nothing of the submission has run yet: the process tree
        under bwrap is the grader's. ForkServerError (a RuntimeError) if it cannot."""
        if self.forks is None:
            return
        anchor = _find_anchor(km.provisioner.process.pid, timeout)
        try:
            pidfd = os.pidfd_open(anchor)
        except OSError as exc:   # (Linux < 5.3), or the placeholder is gone
            raise fork_server.ForkServerError(f"no pidfd for the sandbox's placeholder ({exc})") from None
        fds = [pidfd]
        try:
            if _cmdline(anchor) != fork_server.ANCHOR:   # still the anchor once the pidfd holds it
                raise fork_server.ForkServerError("the sandbox's placeholder process is gone", lasting=False)
            flags = fork_server.namespaces_to_join(anchor)
            bounding = fork_server.bounding_set(anchor)
            status_read, status_write = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            self._status_fd, self._exit_code = status_read, None
            fds += [os.dup(self.log.fileno()), status_write]
            if self.group is not None:
                fds += [os.open(folder / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for folder in self.group.folders]
            request = {"namespaces": flags, "bounding": bounding, "cwd": str(self.workdir), "env": self.env,
                       "uid": self.kernel_owner, "gid": self.kernel_owner,
                       "rlimits": rlimit_values(self.limits, processes=not (self.group and self.group.limits_pids())),
                       "seccomp": seccomp.filter_bytes().hex(), "connection_file": km.connection_file}
            self.waiter = self.forks.fork(request, fds)
        except OSError as exc:
            raise fork_server.ForkServerError(f"the sandbox's placeholder could not be joined ({exc})") from None
        finally:
            for fd in fds:
                os.close(fd)

    def forking_failed(self, error: BaseException) -> bool:
        """After a failed first start: whether forking the kernel is what failed (the fork server
        did not start or answer, or the kernel did not get through its own set-up). If so the
        next start of this sandbox is an ordinary one; a zygote that cannot start, or a kernel
        that cannot set itself up, gives the fork server up for good (this machine cannot)."""
        if self.forks is None:
            return False
        if isinstance(error, fork_server.ForkServerError):
            if error.lasting:
                self.forks.give_up(str(error))
        elif self.kernel_exit_code(None) == fork_server.START_FAILED:
            self.forks.give_up(f"a forked kernel could not set itself up: {self.log_tail(300)}")
        else:
            return False
        self.forks = None
        return True

    def _forked_kernel_ended(self) -> bool:
        """Whether the forked kernel's status pipe has its status, or its end (the waiter died)."""
        if self._status_fd is None:
            return False
        return bool(select.select([self._status_fd], [], [], 0)[0])

    def kernel_exit_code(self, bwrap_code: int | None) -> int | None:
        """How the kernel ended, as Popen.returncode: a forked kernel's own status (bwrap's is
        the anchor's), else `bwrap_code`."""
        if self._status_fd is None:
            return bwrap_code
        if self._exit_code is None:
            self._exit_code = fork_server.exit_status(self._status_fd)
        return self._exit_code if self._exit_code is not None else bwrap_code

    def _close_filter(self) -> None:
        if self._filter_fd is not None:
            os.close(self._filter_fd)
            self._filter_fd = None

    def watch(self, pid: int) -> None:
        """Without a filesystem of its own size, poll the scratch folder's size (links not
        followed, entries bounded) and kill the sandbox (its first process, `pid`: bwrap takes the
        rest with it) once it passes disk_mb. A kernel can write for one poll interval past it;
        `disk_over` measures at once, for the moments that must not wait for the next poll."""
        self._kernel_pid = pid
        if not self.watch_disk:
            return
        stop = self._watch_stop = threading.Event()

        def poll() -> None:
            while not stop.wait(DISK_POLL_SECONDS):
                if self._kill_if_over(pid):
                    return

        threading.Thread(target=poll, name="convgrade-disk-watch", daemon=True).start()

    def disk_over(self) -> bool:
        """Whether the scratch has passed disk_mb, measured now; if so the sandbox is killed. The
        notebook runner asks after every cell, so a cell that wrote past the limit and ended
        within one poll interval is caught before anything of the submission is graded."""
        if self.disk_exceeded:
            return True
        if not self.watch_disk or self._watch_stop is None:
            return False
        return self._kill_if_over(self._kernel_pid)

    def _kill_if_over(self, pid: int) -> bool:
        limit = self.limits.disk_mb * 1024 * 1024
        max_entries = max(4096, limit // 4096)   # empty files take no blocks: their number is bounded too
        size, entries = usage(self.scratch, max_entries)
        if size <= limit and entries <= max_entries:
            return False
        self.disk_exceeded = True
        _kill_first_process(pid)
        return True

    def _messages_over(self, channel: str) -> None:
        """The relay's call (from its thread) when the kernel passed a channel's cap; the relay
        has cut that channel for the rest of the session. Outputs (iopub): the kernel runs on,
        unheard (the grader's calls are answered on shell). Any other channel: the session is
        over, the kernel killed (its first process: bwrap takes the rest with it)."""
        if channel == "iopub":
            return
        self.messages_exceeded = channel
        _kill_first_process(self._kernel_pid)

    @property
    def output_cut(self) -> bool:
        """Whether the kernel's outputs passed the relay's cap (no more are received this session)."""
        return "iopub" in self.relay.exceeded

    def memory_killed(self) -> bool:
        """Whether the current start's cgroup killed a process for memory."""
        return bool(self.group is not None and self.group.oom_kills())

    def release(self) -> None:
        """End the current start's cgroup (its processes are killed); call after the kernel stopped."""
        self._close_filter()
        if self._status_fd is not None:
            os.close(self._status_fd)
            self._status_fd = None
        self.relay.drop_listeners()
        self._kernel_pid = 0          # ended: never signalled again (its number may be reused)
        if self._watch_stop is not None:
            self._watch_stop.set()
            self._watch_stop = None
        if self.group is not None:
            self.group.close()
            self.group = None

    def seal(self, km: WrappedKernelManager) -> None:
        """Once the kernel has bound its sockets, and before any student code runs: check that
        each is a socket its own start made, (as root) take the ipc folder back from the kernel's
        user, and hand each socket to the relay by descriptor, so that no later code can swap a
        socket for a link the grader would follow when it (re)connects.
        """
        ipc = Path(km.connection_file).parent
        fd = os.open(ipc, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            if self.kernel_owner is not None:
                os.fchown(fd, 0, 0)
                os.fchmod(fd, 0o755)
            sockets: dict[str, tuple[str, int]] = {}
            try:
                for channel, name in _socket_names(km).items():
                    sockets[channel] = name, os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    if not stat.S_ISSOCK(os.fstat(sockets[channel][1]).st_mode):
                        raise RuntimeError(f"the kernel's {channel} socket is not a socket")
            except BaseException:
                for _, socket_fd in sockets.values():
                    os.close(socket_fd)
                raise
        finally:
            os.close(fd)
        for channel, (name, socket_fd) in sockets.items():
            self.relay.add(channel, socket_fd, self._relay_dir / name)

    def free_reserve(self) -> bool:
        """Give the grader's reserved room back to the filesystem; False if it was used already."""
        try:
            self._reserve.unlink()
        except FileNotFoundError:
            return False
        return True

    def sockets_ready(self, km: WrappedKernelManager) -> bool:
        """Whether the kernel has bound every channel's socket (ipc transport)."""
        ipc = Path(km.connection_file).parent
        return all((ipc / name).exists() for name in _socket_names(km).values())

    def log_tail(self, limit: int) -> str:
        """The kernel log's last `limit` bytes (every start so far), as one line of plain text."""
        try:
            size = os.fstat(self._log_reader).st_size
            data = os.pread(self._log_reader, limit, max(0, size - limit))
        except OSError:
            return ""
        return " ".join(data.decode("utf-8", "replace").split())

    def close(self) -> None:
        self.release()
        self.relay.close()
        self.log.close()
        os.close(self._log_reader)
        if self._ipc_root != self.scratch:
            remove_tree(self._ipc_root)
