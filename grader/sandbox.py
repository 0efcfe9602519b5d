"""How the student's kernel process is started: the sandbox around it.

`bwrap` (the default) starts the kernel inside bubblewrap: no network, its own PID,
IPC and UTS namespaces, a fresh tmpfs /tmp, and a filesystem that holds only the
system libraries, this Python and its packages (read-only), and the submission's
scratch folder. The grader's source, reference/, tests, other submissions and the
instructor's home are not there at all. Started as root, the kernel runs as nobody.
`none` runs the kernel as this user with resource limits only.

Both are a KernelManager whose command line is wrapped, so the rest of the grader
does not know which one it talks to.
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from .spec import Limits

MODES = ("bwrap", "none")
SUBMISSION_NAME = "submission.ipynb"  # the submission's copy in the kernel's working folder
KERNEL_HOME = "home"                  # the kernel's $HOME, in its scratch folder (e.g. ~/.keras/models)
NOBODY = 65534

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


def rlimit_args(limits: Limits, *, processes: bool) -> list[str]:
    """prlimit options for the kernel (inherited by everything it starts)."""
    mb = 1024 * 1024
    args = [
        f"--as={limits.memory_mb * mb}",
        f"--fsize={limits.file_size_mb * mb}",
        f"--nofile={limits.open_files}",
        f"--cpu={limits.cpu_seconds}",
        "--core=0",
    ]
    # RLIMIT_NPROC counts every process of the user: only meaningful for a user of its own.
    return args + [f"--nproc={limits.processes}"] if processes else args


class WrappedKernelManager(AsyncKernelManager):
    """A KernelManager whose kernel command is prefixed by a wrapper command.

    jupyter_client 8 ignores KernelManager.kernel_cmd, so the wrapping happens in
    format_kernel_cmd, the one place every start goes through (after the connection
    file is written, so the sandbox can hand that file to the kernel's user).
    """

    wrapper: list[str] = []
    kernel_owner: int | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        cmd = super().format_kernel_cmd(extra_arguments)
        if self.kernel_owner is not None:
            os.chown(self.connection_file, self.kernel_owner, self.kernel_owner)
        return [*self.wrapper, *cmd]


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
        base = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
                "MPLCONFIGDIR": "/tmp/.matplotlib", "IPYTHONDIR": "/tmp/.ipython", "TMPDIR": "/tmp"}
        for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # needed on some CPUs for correct BLAS
            if key in os.environ:
                base[key] = os.environ[key]
    else:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("JPY_", "CONVGRADE_"))}
    return {**base, **fixed, **(extra or {})}


def _python_roots() -> list[Path]:
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


def bwrap_args(scratch: Path, workdir: Path, env: dict[str, str], limits: Limits, as_root: bool,
               readonly: list[Path] = (), devices: list[str] = ()) -> list[str]:
    """The bubblewrap command line (everything before the kernel's own argv).

    `readonly`: files inside the scratch folder (helpers, data) bound read-only on top.
    """
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
    made: set[Path] = {Path("/tmp")}
    for root in [*_python_roots(), scratch]:
        for parent in _parents(root):
            if parent not in made and not str(parent).startswith("/usr"):
                args += ["--perms", "0755", "--dir", str(parent)]
                made.add(parent)
        args += ["--bind" if root == scratch else "--ro-bind", str(root), str(root)]
        made.add(root)
    for path in readonly:
        args += ["--ro-bind", str(path), str(path)]
    args += ["--chdir", str(workdir), "--clearenv"]
    for key, value in env.items():
        args += ["--setenv", key, value]
    args += ["--", shutil.which("prlimit") or "/usr/bin/prlimit", *rlimit_args(limits, processes=as_root), "--"]
    if as_root:
        args += [shutil.which("setpriv") or "/usr/bin/setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                 "--clear-groups", "--no-new-privs", "--"]
    return args


def kernel_manager(mode: str, workdir: Path, exchange: Path, limits: Limits, extra_env: dict[str, str] | None = None,
                   devices: list[str] = ()) -> tuple[AsyncKernelManager, dict[str, Any]]:
    """A kernel manager for `mode` and the keyword arguments for its start_kernel."""
    check_available(mode)
    scratch = exchange.parent
    ipc = scratch / "ipc"
    ipc.mkdir(exist_ok=True)
    km = WrappedKernelManager(kernel_name="python3", transport="ipc", ip=str(ipc / "kernel"),
                              connection_file=str(ipc / "kernel.json"))
    # The kernel is always this interpreter's ipykernel, whatever the notebook's metadata says.
    km.kernel_spec.argv[0] = sys.executable
    sandboxed = mode == "bwrap"
    home = scratch / KERNEL_HOME
    home.mkdir(exist_ok=True)
    env = {**kernel_environment(sandboxed, extra_env), "HOME": str(home)}
    if sandboxed:
        as_root = os.geteuid() == 0
        # Data beside the notebook and in its home is read-only; the home's folders are its own
        # (Keras's cache falls back to /tmp when ~/.keras is not writable, and misses the files).
        readonly = [p for p in sorted(workdir.iterdir()) if p.name != SUBMISSION_NAME]
        readonly += sorted(p for p in home.rglob("*") if p.is_file())
        if as_root:  # the kernel runs as nobody: it owns its folders and its notebook copy only
            km.kernel_owner = NOBODY
            for path in (scratch, workdir, exchange, ipc, workdir / SUBMISSION_NAME, home,
                         *(p for p in home.rglob("*") if p.is_dir())):
                if path.exists():
                    os.chown(path, NOBODY, NOBODY)
        # bwrap puts the kernel in a session of its own: interrupt by message, not by signal.
        km.kernel_spec.interrupt_mode = "message"
        km.wrapper = bwrap_args(scratch, workdir, env, limits, as_root, readonly, list(devices))
    else:
        prlimit = shutil.which("prlimit")
        km.wrapper = [prlimit, *rlimit_args(limits, processes=False), "--"] if prlimit else []
    # The kernel's own stdout/stderr (not the notebook's outputs, which come over Jupyter's
    # channels) go to a log in the scratch folder, not to the grader's terminal.
    log = open(scratch / "kernel.log", "ab")  # noqa: SIM115 (closed with the scratch folder's life)
    return km, {"cwd": str(workdir), "env": env, "stdout": log, "stderr": log}
