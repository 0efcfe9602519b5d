"""grader/seccomp.py: the filter compiles, and inside bwrap it denies what it lists and nothing a
notebook does.

Every denied call is probed with arguments the kernel itself rejects with some other error
(ENOENT, EINVAL, EBADF, ...): so under the filter EPERM can only come from the filter, and
`test_probes_without_filter_are_not_eperm` (root only: the kernel answers EPERM to an
unprivileged caller of many of these) proves each probe would fail its test without it.
"""
from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from grader import seccomp

BWRAP = shutil.which("bwrap")
needs_bwrap = pytest.mark.skipif(BWRAP is None, reason="bubblewrap (bwrap) is not installed")
X86_64 = platform.machine() == "x86_64"


@pytest.fixture(scope="module")
def filter_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("seccomp") / "filter.bpf"
    seccomp.write_filter(path)
    return path


def run_sandboxed(code: str, filter_file: Path | None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -c code` in bwrap, with the filter on an inherited fd unless filter_file is None."""
    args = [BWRAP, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--unshare-pid", "--die-with-parent"]
    # The project (and its venv) may itself live under /tmp (a CI clone): bound again on top.
    for root in sorted({Path(sys.prefix), Path(__file__).resolve().parent.parent}):
        if Path("/tmp") in root.parents:
            args += ["--ro-bind", str(root), str(root)]
    fds: tuple[int, ...] = ()
    fd = None
    if filter_file is not None:
        # As the integrator does: open the written file, hand bwrap its fd number.
        fd = os.open(filter_file, os.O_RDONLY)
        args += ["--seccomp", str(fd)]
        fds = (fd,)
    try:
        # A session of its own: no controlling terminal that a probe (vhangup, TIOCSTI) could touch.
        return subprocess.run([*args, "--", sys.executable, "-c", textwrap.dedent(code)], pass_fds=fds,
                              capture_output=True, text=True, timeout=timeout, start_new_session=True)
    finally:
        if fd is not None:
            os.close(fd)


# ---- the filter as libseccomp compiles it ------------------------------------------------------

def test_filter_bytes_is_a_sock_filter_array(tmp_path: Path) -> None:
    data = seccomp.filter_bytes()
    assert data and len(data) % 8 == 0 and len(data) // 8 < 4096  # BPF_MAXINSNS
    seccomp.write_filter(tmp_path / "f.bpf")
    assert (tmp_path / "f.bpf").read_bytes() == data
    r, w = os.pipe()
    try:
        seccomp.write_filter(w)
        os.close(w)
        w = -1
        assert os.read(r, len(data) + 1) == data
    finally:
        os.close(r)
        if w != -1:
            os.close(w)


def test_each_start_gets_a_pipe_of_its_own_holding_the_whole_program() -> None:
    # A pipe shared between starts would be read empty by the second bwrap, and its fd closed
    # twice by the grader: the second close lands on whatever reused the number (zmq's own).
    first = seccomp.filter_pipe()
    try:
        second = seccomp.filter_pipe()
        try:
            assert first != second
            data = seccomp.filter_bytes()
            for fd in (first, second):
                assert os.read(fd, len(data) + 1) == data
                assert os.read(fd, 1) == b""  # the writer is closed: bwrap reads to the end
        finally:
            os.close(second)
    finally:
        os.close(first)


def test_pfc_lists_every_denied_syscall() -> None:
    listing = seccomp.pfc()
    for name in (*seccomp.DENIED, *seccomp.ENOSYS_SYSCALLS, "clone", "ioctl", "personality"):
        assert f'syscall "{name}"' in listing, name
    assert "action KILL_PROCESS" in listing  # another architecture's syscalls


# ---- probes ------------------------------------------------------------------------------------

# Prints {probe: errno, 0 on success}. Arguments are chosen so that the kernel, unfiltered and even
# for root, rejects each call with an error other than EPERM (or succeeds harmlessly).
PROBES = r"""
import ctypes, fcntl, json, os, termios
import pyseccomp

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NOWHERE = b"/nonexistent-convgrade-probe"
NOPID = 0x7FFFFFF0
L, U, P = ctypes.c_long, ctypes.c_ulong, ctypes.c_char_p

def sc(name, *args):
    nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    ctypes.set_errno(0)
    res = libc.syscall(L(nr), *[L(a) if isinstance(a, int) else a for a in args])
    return ctypes.get_errno() if res == -1 else 0

def clone(flags):
    # flags | CLONE_THREAD without CLONE_SIGHAND: the kernel answers EINVAL before making anything.
    nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "clone")
    ctypes.set_errno(0)
    res = libc.syscall(L(nr), U(flags | 0x10000), L(0), L(0), L(0), L(0))
    if res == 0:
        os._exit(0)
    return ctypes.get_errno() if res == -1 else 0

def personality(value):
    err = sc("personality", U(value))
    sc("personality", U(0))
    return err

def on_controlling_tty(request, arg):
    # In a child whose controlling terminal is a fresh pty (TIOCSTI needs that, or CAP_SYS_ADMIN).
    master, slave = os.openpty()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
            c = ctypes.create_string_buffer(16)
            os.write(w, str(sc("ioctl", L(slave), U(request), c if arg else L(0))).encode())
        except BaseException as e:
            os.write(w, repr(e).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    out = os.read(r, 1000)
    for fd in (r, master, slave):
        os.close(fd)
    if not out.isdigit():
        raise RuntimeError(out)
    return int(out)

TIOCLINUX = getattr(termios, "TIOCLINUX", 0x541C)

probes = {
    "ptrace": lambda: sc("ptrace", 16, NOPID, 0, 0),  # PTRACE_ATTACH -> ESRCH
    "process_vm_readv": lambda: sc("process_vm_readv", 0, 0, 0, 0, 0, 1),  # flags -> EINVAL
    "process_vm_writev": lambda: sc("process_vm_writev", 0, 0, 0, 0, 0, 1),
    "mount": lambda: sc("mount", P(b"none"), P(NOWHERE), P(b"tmpfs"), 0, 0),  # ENOENT
    "umount2": lambda: sc("umount2", P(NOWHERE), 0),
    "pivot_root": lambda: sc("pivot_root", P(NOWHERE), P(NOWHERE)),
    "chroot": lambda: sc("chroot", P(NOWHERE)),
    "unshare": lambda: sc("unshare", 1),  # not an unshare flag -> EINVAL
    "setns": lambda: sc("setns", -1, 0),  # EBADF
    "fsopen": lambda: sc("fsopen", P(b"no-such-fs-convgrade"), 0),  # ENODEV
    "fsmount": lambda: sc("fsmount", -1, 0, 0),
    "fsconfig": lambda: sc("fsconfig", -1, 0, 0, 0, 0),
    "fspick": lambda: sc("fspick", -1, P(NOWHERE), 0),
    "move_mount": lambda: sc("move_mount", -1, P(NOWHERE), -1, P(NOWHERE), 0),
    "open_tree": lambda: sc("open_tree", -1, P(NOWHERE), 0),
    "mount_setattr": lambda: sc("mount_setattr", -1, P(NOWHERE), 0, 0, 0),
    "bpf": lambda: sc("bpf", 9999, 0, 0),  # unknown command -> EINVAL
    "userfaultfd": lambda: sc("userfaultfd", 0x2),  # unknown flag -> EINVAL
    "perf_event_open": lambda: sc("perf_event_open", 0, 0, -1, -1, 0),  # attr NULL -> EFAULT
    "keyctl": lambda: sc("keyctl", 9999, 0, 0, 0, 0),  # EOPNOTSUPP
    "add_key": lambda: sc("add_key", 0, 0, 0, 0, 0),  # EFAULT
    "request_key": lambda: sc("request_key", 0, 0, 0, 0),
    "init_module": lambda: sc("init_module", 0, 0, 0),
    "finit_module": lambda: sc("finit_module", -1, P(b""), 0),
    "delete_module": lambda: sc("delete_module", P(b"no_such_module_convgrade"), 0),
    "kexec_load": lambda: sc("kexec_load", 0, 0, 0, U(0xDEAD0000)),
    "kexec_file_load": lambda: sc("kexec_file_load", -1, -1, 0, 0, U(0xDEAD0000)),
    "iopl": lambda: sc("iopl", 4),  # level > 3 -> EINVAL
    "ioperm": lambda: sc("ioperm", 0, 0, 1),  # empty range -> EINVAL
    "swapon": lambda: sc("swapon", P(NOWHERE), 0),
    "swapoff": lambda: sc("swapoff", P(NOWHERE)),
    "reboot": lambda: sc("reboot", 0, 0, 0, 0),  # bad magic -> EINVAL
    "acct": lambda: sc("acct", P(NOWHERE)),
    "quotactl": lambda: sc("quotactl", 0, 0, 0, 0),  # no device -> ENODEV
    "syslog": lambda: sc("syslog", 10, 0, 0),  # SYSLOG_ACTION_SIZE_BUFFER
    "vhangup": lambda: sc("vhangup"),  # no controlling terminal: a no-op
    "lookup_dcookie": lambda: sc("lookup_dcookie", 0, 0, 0),  # gone from Linux 5.11: ENOSYS
    "open_by_handle_at": lambda: sc("open_by_handle_at", -1, 0, 0),
    "name_to_handle_at": lambda: sc("name_to_handle_at", -1, 0, 0, 0, 0),
    "fanotify_init": lambda: sc("fanotify_init", U(0xFFFFFFFF), 0),
    "io_uring_setup": lambda: sc("io_uring_setup", 0, 0),  # 0 entries: EINVAL
    "io_uring_enter": lambda: sc("io_uring_enter", -1, 0, 0, 0, 0, 0),
    "io_uring_register": lambda: sc("io_uring_register", -1, 0, 0, 0),
    "kcmp": lambda: sc("kcmp", NOPID, NOPID, 0, 0, 0),
    "pidfd_getfd": lambda: sc("pidfd_getfd", -1, 0, 0),
    # clone with each namespace flag; clone3 (ENOSYS under the filter, EINVAL for a NULL struct)
    **{"clone_" + name: (lambda flag=flag: clone(flag)) for name, flag in CLONE_FLAGS.items()},
    "clone3": lambda: sc("clone3", 0, 0),
    # personality: READ_IMPLIES_EXEC, the same with high bits the kernel ignores, ADDR_NO_RANDOMIZE
    "personality_READ_IMPLIES_EXEC": lambda: personality(0x0400000),
    "personality_high_bits": lambda: personality(0x1_0040_0000),
    "personality_ADDR_NO_RANDOMIZE": lambda: personality(0x0040000),
    "personality_PER_LINUX32": lambda: personality(0x0008),
    # terminal injection, also with high bits of the request set (CVE-2019-10063)
    "ioctl_TIOCSTI": lambda: on_controlling_tty(termios.TIOCSTI, True),
    "ioctl_TIOCSTI_high_bits": lambda: on_controlling_tty(termios.TIOCSTI | (1 << 32), True),
    "ioctl_TIOCLINUX": lambda: on_controlling_tty(TIOCLINUX, False),
    # not denied: these must give the kernel's own answer under the filter too
    "allowed_clone_plain": lambda: clone(0),
    "allowed_personality_query": lambda: sc("personality", U(0xFFFFFFFF)),
    "allowed_personality_linux": lambda: sc("personality", U(0)),
    "allowed_ioctl_TIOCGWINSZ": lambda: on_controlling_tty(termios.TIOCGWINSZ, True),
    "allowed_getpid": lambda: sc("getpid"),
}
print(json.dumps({name: probe() for name, probe in probes.items()}))
""".replace("CLONE_FLAGS", repr(seccomp.CLONE_NAMESPACE_FLAGS))

DENY_PROBES = [*seccomp.DENIED, *(f"clone_{n}" for n in seccomp.CLONE_NAMESPACE_FLAGS),
               "personality_READ_IMPLIES_EXEC", "personality_high_bits", "personality_ADDR_NO_RANDOMIZE",
               "personality_PER_LINUX32", "ioctl_TIOCSTI", "ioctl_TIOCSTI_high_bits", "ioctl_TIOCLINUX"]
ALLOW_PROBES = {"allowed_clone_plain": errno.EINVAL, "allowed_personality_query": 0,
                "allowed_personality_linux": 0, "allowed_ioctl_TIOCGWINSZ": 0, "allowed_getpid": 0}


def _probe(filter_file: Path | None) -> dict[str, int]:
    proc = run_sandboxed(PROBES, filter_file)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def filtered(filter_file: Path) -> dict[str, int]:
    if BWRAP is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    return _probe(filter_file)


@pytest.fixture(scope="module")
def unfiltered() -> dict[str, int]:
    if BWRAP is None:
        pytest.skip("bubblewrap (bwrap) is not installed")
    return _probe(None)


def _name(code: int) -> str:
    return errno.errorcode.get(code, str(code)) if code else "success"


@needs_bwrap
@pytest.mark.parametrize("probe", DENY_PROBES)
def test_denied_with_eperm(filtered: dict[str, int], probe: str) -> None:
    assert filtered[probe] == errno.EPERM, f"{probe}: {_name(filtered[probe])}, not EPERM"


@needs_bwrap
def test_clone3_is_enosys(filtered: dict[str, int]) -> None:
    assert filtered["clone3"] == errno.ENOSYS, _name(filtered["clone3"])


@needs_bwrap
@pytest.mark.parametrize("probe", sorted(ALLOW_PROBES))
def test_allowed_under_filter(filtered: dict[str, int], probe: str) -> None:
    assert filtered[probe] == ALLOW_PROBES[probe], f"{probe}: {_name(filtered[probe])}"


@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="unprivileged, the kernel itself answers EPERM to several probes")
def test_probes_without_filter_are_not_eperm(unfiltered: dict[str, int]) -> None:
    """Without the filter no probe gets EPERM (nor clone3 ENOSYS): the deny tests measure the filter."""
    wrong = {p: _name(unfiltered[p]) for p in DENY_PROBES if unfiltered[p] == errno.EPERM}
    if unfiltered["clone3"] == errno.ENOSYS:
        wrong["clone3"] = "ENOSYS"
    assert not wrong, wrong
    assert {p: unfiltered[p] for p in ALLOW_PROBES} == ALLOW_PROBES


# ---- other architectures -----------------------------------------------------------------------

NON_NATIVE = r"""
import ctypes, mmap, os, sys
which = sys.argv[1] if len(sys.argv) > 1 else %r
if which == "x32":
    # getpid (39) with the x32 bit: ENOSYS on kernels without x32, the pid with it.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    print(libc.syscall(ctypes.c_long(0x40000000 | 39)))
else:
    # i386 getpid (20) through int 0x80: mov eax, 20; int 0x80; ret
    code = b"\xb8\x14\x00\x00\x00\xcd\x80\xc3"
    buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    print(ctypes.CFUNCTYPE(ctypes.c_int)(addr)())
sys.stdout.flush()
"""


@needs_bwrap
@pytest.mark.skipif(not X86_64, reason="x86_64's other ABIs (i386, x32)")
@pytest.mark.parametrize("abi", ["x32", "i386"])
def test_other_abi_kills_the_process(filter_file: Path, abi: str) -> None:
    proc = run_sandboxed(NON_NATIVE % abi, filter_file)
    assert proc.stdout == "", proc.stdout
    # bwrap's pid 1 reports a child killed by a signal as 128 + the signal.
    assert proc.returncode == 128 + signal.SIGSYS, (proc.returncode, proc.stderr)


@needs_bwrap
@pytest.mark.skipif(not X86_64, reason="x86_64's other ABIs (i386, x32)")
@pytest.mark.parametrize("abi", ["x32", "i386"])
def test_other_abi_probe_runs_without_filter(abi: str) -> None:
    proc = run_sandboxed(NON_NATIVE % abi, None)
    assert proc.returncode == 0 and proc.stdout.strip(), (proc.returncode, proc.stderr)


# ---- ordinary work under the filter ------------------------------------------------------------

WORK = {
    "numpy_matmul": """
        import numpy as np
        a = np.arange(400 * 400, dtype=np.float64).reshape(400, 400) / 1e5
        assert np.allclose(a @ np.eye(400), a)
        print("ok")
    """,
    "threads": """
        import threading
        out = []
        ts = [threading.Thread(target=lambda i=i: out.append(sum(range(i * 1000)))) for i in range(8)]
        [t.start() for t in ts]; [t.join() for t in ts]
        assert len(out) == 8
        print("ok")
    """,
    "fork": """
        import os
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7
        print("ok")
    """,
    "subprocess": """
        import subprocess
        subprocess.run(["true"], check=True)
        assert subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout == "hi\\n"
        print("ok")
    """,
    "multiprocessing_pool": """
        import multiprocessing
        if __name__ == "__main__":
            with multiprocessing.Pool(2) as pool:
                assert pool.map(abs, range(-5, 5)) == [abs(i) for i in range(-5, 5)]
            print("ok")
    """,
    "personality_query": """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.personality.argtypes = [ctypes.c_ulong]
        assert libc.personality(0xFFFFFFFF) != -1, ctypes.get_errno()
        assert libc.personality(0) != -1, ctypes.get_errno()
        print("ok")
    """,
}


@needs_bwrap
@pytest.mark.parametrize("name", list(WORK))
def test_ordinary_work_succeeds(filter_file: Path, name: str) -> None:
    proc = run_sandboxed(WORK[name], filter_file)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


@needs_bwrap
def test_bwrap_start_with_filter_is_quick(filter_file: Path) -> None:
    start = time.perf_counter()
    proc = run_sandboxed("pass", filter_file)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 5, f"bwrap + python start with the filter took {elapsed:.2f}s"
