"""The seccomp filter of the student's kernel sandbox (bwrap loads it with `--seccomp FD`).

A deny-list, default ALLOW: a notebook does numerics, threads, fork/exec and files, none of which
is touched. Each syscall below fails with EPERM (not a kill: a library that probes, say,
perf_event_open must get an error it can handle). The groups, one reason each:

- debugging other processes (ptrace, process_vm_readv/writev): reading or steering the grader's
  or another student's process memory.
- namespaces and mounts (mount, umount2, pivot_root, chroot, unshare, setns, clone with a
  CLONE_NEW* flag, the new mount API fsopen/fsmount/fsconfig/fspick/move_mount/open_tree/
  mount_setattr): reshaping the sandbox bwrap built, and the user-namespace attack surface.
- clone3 answers ENOSYS instead: its flags sit in a struct seccomp cannot read, and glibc falls
  back to clone (whose flags the filter checks) on ENOSYS.
- kernel attack surface with no use in a notebook (bpf, userfaultfd, perf_event_open, and the
  keyring: keyctl, add_key, request_key): the usual homes of kernel privilege-escalation bugs.
- kernel modules and kexec (init_module, finit_module, delete_module, kexec_load,
  kexec_file_load): changing the running kernel.
- personality other than 0 (PER_LINUX) and 0xffffffff (query): flags such as READ_IMPLIES_EXEC
  and ADDR_NO_RANDOMIZE weaken memory protections of what the process runs next.
- raw hardware and machine state (iopl, ioperm, swapon, swapoff, reboot, acct, quotactl,
  syslog, vhangup, lookup_dcookie): administration a root-in-a-container could still reach.
- file handles (open_by_handle_at, name_to_handle_at): open_by_handle_at escapes a bind mount
  (the "shocker" container breakout).
- fanotify_init: watching (and with permission events, blocking) file access outside the sandbox.
- io_uring (setup, enter, register): its operations run without passing this filter, and it has
  been a frequent home of kernel exploits; kcmp and pidfd_getfd: inspecting or taking another
  process's file descriptors.
- terminal injection (ioctl TIOCSTI, TIOCLINUX): typing commands into the terminal the grader
  was started from. The ioctl number is compared on its low 32 bits, as the kernel reads it
  (a 64-bit comparison missed 0x1_00005412: CVE-2019-10063 in flatpak).
- other architectures: a syscall made through another ABI (i386 `int 0x80`, x32) would bypass
  the native-number rules, so it kills the process (libseccomp's architecture check).

This follows the approach of flatpak's and bubblewrap's own profiles (flatpak-run.c's
setup_seccomp, bwrap's tests/try-syscall.c) and nsjail's: libseccomp compiles the rules,
bwrap only loads the classic-BPF program it is given.

The binding is pyseccomp (ctypes over the system's libseccomp.so.2, the API of libseccomp's own
Python bindings); libseccomp does all BPF compilation.
"""
from __future__ import annotations

import errno
import functools
import os
import tempfile
import termios
from pathlib import Path

import pyseccomp as seccomp

__all__ = ["DENIED", "CLONE_NAMESPACE_FLAGS", "PERSONALITY_ALLOWED", "IOCTL_DENIED", "ENOSYS_SYSCALLS",
           "filter_bytes", "write_filter", "pfc"]

#: Syscalls that always fail with EPERM.
DENIED: tuple[str, ...] = (
    # debugging other processes
    "ptrace", "process_vm_readv", "process_vm_writev",
    # namespaces and mounts (clone is filtered by its flags, below)
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsmount", "fsconfig", "fspick", "move_mount", "open_tree", "mount_setattr",
    # kernel attack surface
    "bpf", "userfaultfd", "perf_event_open", "keyctl", "add_key", "request_key",
    # modules and kexec
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    # hardware and machine state
    "iopl", "ioperm", "swapon", "swapoff", "reboot", "acct", "quotactl", "syslog", "vhangup",
    "lookup_dcookie",
    # file handles
    "open_by_handle_at", "name_to_handle_at",
    # file-access monitoring
    "fanotify_init",
    # io_uring (a large kernel attack surface that also bypasses syscall filtering of the
    # operations it carries) and comparing or taking other processes' descriptors
    "io_uring_setup", "io_uring_enter", "io_uring_register", "kcmp", "pidfd_getfd",
)

#: clone fails with EPERM when its flags carry any of these (one masked comparison per flag).
CLONE_NAMESPACE_FLAGS: dict[str, int] = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

#: personality succeeds only for these (PER_LINUX and the query); every other value is EPERM.
PERSONALITY_ALLOWED: tuple[int, ...] = (0, 0xFFFFFFFF)

#: ioctl requests that fail with EPERM (terminal injection).
IOCTL_DENIED: dict[str, int] = {
    "TIOCSTI": termios.TIOCSTI,
    "TIOCLINUX": getattr(termios, "TIOCLINUX", 0x541C),
}

#: Syscalls that fail with ENOSYS, so that libc falls back to one the filter can inspect.
ENOSYS_SYSCALLS: tuple[str, ...] = ("clone3",)

_LOW32 = 0xFFFFFFFF


def _clone_flags_arg(arch: int) -> int:
    # s390's clone takes (stack, flags); everywhere else flags come first.
    return 1 if arch in (seccomp.Arch.S390, seccomp.Arch.S390X) else 0


def _build() -> seccomp.SyscallFilter:
    arch = seccomp.system_arch()
    unknown = [name for name in (*DENIED, *ENOSYS_SYSCALLS, "clone", "personality", "ioctl")
               if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) == -1]
    if unknown:  # an old libseccomp would silently leave these allowed
        raise RuntimeError(f"libseccomp does not know the syscalls {unknown}: upgrade libseccomp2")

    deny = seccomp.ERRNO(errno.EPERM)
    f = seccomp.SyscallFilter(seccomp.ALLOW)
    # Only the native architecture is in the filter; a syscall through any other ABI (i386
    # int 0x80, x32's numbers on x86_64) kills the process.
    f.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)

    for name in DENIED:
        f.add_rule(deny, name)
    for name in ENOSYS_SYSCALLS:
        f.add_rule(seccomp.ERRNO(errno.ENOSYS), name)

    flags_arg = _clone_flags_arg(arch)
    for flag in CLONE_NAMESPACE_FLAGS.values():
        f.add_rule(deny, "clone", seccomp.Arg(flags_arg, seccomp.MASKED_EQ, flag, flag))

    for request in IOCTL_DENIED.values():
        # The kernel reads the request as an unsigned int: compare its low 32 bits only.
        f.add_rule(deny, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, _LOW32, request))

    # personality: deny unless the low 32 bits (all the kernel reads) are all 0 or all 1.
    # libseccomp allows one comparison per argument in a rule, so "not 0 and not 0xffffffff"
    # is written as: some bit i is set while bit i+1 (mod 32) is clear. Any value whose 32 bits
    # are not all equal has such a pair (walk the bits around the circle: a 1 is followed by a 0
    # somewhere), and neither 0 nor 0xffffffff has one.
    assert PERSONALITY_ALLOWED == (0, _LOW32)
    for i in range(32):
        j = (i + 1) % 32
        f.add_rule(deny, "personality", seccomp.Arg(0, seccomp.MASKED_EQ, (1 << i) | (1 << j), 1 << i))
    return f


def filter_pipe() -> int:
    """The read end of a pipe holding the program, for `bwrap --seccomp FD` (bwrap reads it to
    the end; the program is far smaller than a pipe's buffer). The caller closes it after the start."""
    reader, writer = os.pipe()
    try:
        os.write(writer, filter_bytes())
    finally:
        os.close(writer)
    return reader


@functools.lru_cache(maxsize=1)
def filter_bytes() -> bytes:
    """The compiled classic-BPF program (the raw `struct sock_filter` array) bwrap expects."""
    with tempfile.TemporaryFile() as out:
        _build().export_bpf(out)
        out.seek(0)
        program = out.read()
    if not program or len(program) % 8:
        raise RuntimeError(f"libseccomp exported {len(program)} bytes, not a sock_filter array")
    return program


def write_filter(target: Path | str | int) -> None:
    """Write the compiled filter to a file (created or truncated, mode 0600) or to an open fd.

    The caller then opens the file (or passes the pipe's read end) as some fd N in bwrap's
    process and adds `--seccomp N` to bwrap's arguments. Open the file anew for every bwrap
    start: bwrap reads the fd to its end, and that offset is shared with the caller's copy, so a
    reused fd hands the next bwrap an empty program (bwrap fails: "prctl(PR_SET_SECCOMP) reported
    EINVAL").
    """
    data = filter_bytes()
    if isinstance(target, int):
        view = memoryview(data)
        while view:
            view = view[os.write(target, view):]
        return
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        write_filter(fd)
    finally:
        os.close(fd)


def pfc() -> str:
    """libseccomp's human-readable listing of the filter (for review and debugging)."""
    with tempfile.TemporaryFile() as out:
        _build().export_pfc(out)
        out.seek(0)
        return out.read().decode()
