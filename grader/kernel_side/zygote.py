"""The fork server's preloaded process (see grader/fork_server.py): run as a script, never imported.

It imports what every kernel of an exercise imports anyway (ipykernel and what its start needs,
the exercise's `[kernel] preload`, e.g. numpy and matplotlib.pyplot), once, and then forks one
kernel per request into a sandbox that bwrap has already built around a placeholder process (the
"anchor"). It never runs code of a submission and imports nothing of the grader: what a kernel
inherits from it is library state only. Everything a request names (the anchor, the kernel's log,
its cgroups, its status pipe) arrives as descriptors the grader opened, never as paths.

Per request (one SOCK_SEQPACKET message: JSON and descriptors):
  the zygote forks W (the waiter); W joins the kernel's cgroups (before anything else), then all of
  the anchor's namespaces at once (setns on its pidfd), and forks K, the kernel, the first of W's
  children inside the sandbox's pid namespace. K takes, in this order: the sandbox's working
  folder and a session of its own; the rlimits; the anchor's capability bounding set; the
  kernel's user and groups (as root); no capabilities; no_new_privs; the seccomp program; its
  stdio (the log) and no other descriptor; the kernel's environment; fresh random seeds; and
  starts ipykernel on the connection file. W waits for K, writes K's wait status to the status
  pipe and kills the anchor: the sandbox ends with its kernel, as bwrap's does.

A request that fails before K runs ipykernel ends K (and so the start) with status 126; what
failed goes to the kernel's log.
"""

import ctypes
import gc
import importlib
import json
import os
import random
import resource
import signal
import socket
import struct
import sys

# ipykernel and what its start imports (debugpy alone is a fifth of a kernel's start).
KERNEL_START = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.debugger",
                "debugpy", "debugpy.server.api", "sqlite3", "pdb", "psutil", "IPython.core.completer",
                "IPython.core.history", "IPython.core.debugger", "tornado.ioloop", "jupyter_client.session")

PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, PR_CAP_AMBIENT = 4, 24, 38, 22, 47
PR_CAP_AMBIENT_CLEAR_ALL, SECCOMP_MODE_FILTER, LINUX_CAPABILITY_VERSION_3 = 4, 2, 0x20080522
START_FAILED = 126

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _no_capabilities() -> None:
    header = struct.pack("Ii", LINUX_CAPABILITY_VERSION_3, 0)
    data = bytes(24)   # effective, permitted, inheritable: 0, twice (capabilities 0-31 and 32-63)
    _check(_libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(data)), "capset")
    _check(_libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clearing ambient capabilities")


def _seccomp(program: bytes) -> None:
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    _check(_libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "loading seccomp")


def _kernel(req: dict, log_fd: int) -> None:
    """K: becomes the kernel (never returns)."""
    os.chdir(req["cwd"])
    os.setsid()
    for name, soft, hard in req["rlimits"]:
        resource.setrlimit(getattr(resource, name), (soft, hard))
    for cap in range(64):
        if not req["bounding"] >> cap & 1 and _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() != 22:   # EINVAL: no such capability on this kernel
                _check(-1, f"dropping capability {cap}")
    if req["uid"] is not None:
        os.setgroups([])
        os.setresgid(req["gid"], req["gid"], req["gid"])
        os.setresuid(req["uid"], req["uid"], req["uid"])
    _no_capabilities()
    _check(_libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0), "dumpable")   # as after an exec
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    _seccomp(bytes.fromhex(req["seccomp"]))
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    # every descriptor but stdio (the zygote's and the waiter's are few and low)
    os.closerange(3, max(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    sys.stdin = os.fdopen(0, "r")
    os.environ.clear()   # the kernel's, what the preloaded imports set (as in a new kernel), and PWD (as bwrap's)
    os.environ.update({**req["env"], **req["set_by_imports"], "PWD": req["cwd"]})
    random.seed()
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    from ipykernel import kernelapp
    sys.argv = [kernelapp.__file__, "-f", req["connection_file"]]
    kernelapp.IPKernelApp.launch_instance(argv=["-f", req["connection_file"]])
    os._exit(0)


def _waiter(req: dict, fds: list[int]) -> None:
    """W: joins the kernel's cgroups and the anchor's namespaces, starts K, reports its end (or
    START_FAILED) on the status pipe and kills the anchor, whatever happened."""
    pidfd, log_fd, status_fd, *procs = fds
    status = START_FAILED << 8
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in procs:
            os.write(fd, b"0")      # this process (and so all it forks) into the kernel's cgroup
        _check(_libc.setns(pidfd, req["namespaces"]), "joining the sandbox's namespaces")
        kernel = os.fork()
        if kernel == 0:
            try:
                os.close(pidfd)
                os.close(status_fd)
                for fd in procs:
                    os.close(fd)
                _kernel(req, log_fd)
            except BaseException as exc:   # before any code of the submission ran
                os.write(log_fd, f"convgrade fork server: the kernel could not start: {exc!r}\n".encode())
            finally:
                os._exit(START_FAILED)
        _, status = os.waitpid(kernel, 0)
    except BaseException as exc:
        os.write(log_fd, f"convgrade fork server: the kernel could not be forked: {exc!r}\n".encode())
    finally:
        try:
            os.write(status_fd, struct.pack("i", status))
        finally:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)   # the sandbox ends with its kernel
            os._exit(0)


def main() -> None:
    channel = socket.socket(fileno=int(sys.argv[1]))
    before = dict(os.environ)
    for name in (*KERNEL_START, *sys.argv[2:]):
        try:
            importlib.import_module(name)
        except Exception:   # e.g. no debugpy: that kernel's start imports less (the kernel imports what it needs)
            pass
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    gc.freeze()   # the preloaded objects: never traversed by a kernel's collections (no copy-on-write of them all)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # waiters are reaped by the system
    channel.send(json.dumps({"ready": True}).encode())
    while True:
        message, fds, _, _ = socket.recv_fds(channel, 1 << 20, 16)
        if not message:
            return
        try:
            req = json.loads(message)
            req["set_by_imports"] = set_by_imports
            waiter = os.fork()
            if waiter == 0:
                try:
                    _waiter(req, fds)
                finally:
                    os._exit(START_FAILED)
            reply = {"waiter": waiter}
        except Exception as exc:
            reply = {"error": repr(exc)}
        finally:
            for fd in fds:
                os.close(fd)
        channel.send(json.dumps(reply).encode())


if __name__ == "__main__":
    main()
