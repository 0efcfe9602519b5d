"""Memory and process limits for a whole sandbox (every process in it), with cgroups.

One control group per kernel start holds the kernel, bubblewrap and everything they fork;
its limits apply to their total, not to each process.

cgroup v2 (one unified hierarchy; as root, or as a user in a systemd-delegated subtree):
  memory.max = the memory limit, charged for the group's total: anonymous memory, page cache
  *including the sandbox's tmpfs /tmp and /dev/shm* (written pages stay charged until the
  sandbox's mount namespace is gone), and kernel memory; memory.swap.max = 0 (where the file
  exists, i.e. swap accounting is on) so swap is not a way around it. Over the limit the
  kernel's OOM killer kills one process of the group, the largest (memory.oom.group is left
  off); memory.events counts it as oom_kill.
  pids.max = the number of processes *and threads* in the group; beyond it fork()/clone()
  fail with EAGAIN (nothing is killed).
cgroup v1 (separate `memory` and `pids` hierarchies, e.g. a v1/v2 hybrid; as root):
  memory.limit_in_bytes = the memory limit, charged as above (anonymous memory, page cache
  including tmpfs, kernel memory on current kernels); memory.memsw.limit_in_bytes = the same
  value when the file exists (swap accounting enabled), so memory plus swap is limited too.
  Without that file, memory pushed out to swap is not counted. The OOM killer acts as on v2
  (memory.oom_control counts oom_kill). pids.max as on v2.
Neither writable (create() returns Unavailable with the reason): nothing here applies and
  the caller's per-process rlimits are all there is: RLIMIT_AS limits each process's address
  space (N processes may together hold N times it) and RLIMIT_NPROC counts processes per user
  (per user namespace on Linux >= 5.14, so per sandbox only where each sandbox has a user
  namespace of its own); the sandbox's tmpfs /tmp and /dev/shm are not counted at all.

Where the groups go: under a folder `convgrade` in the nearest cgroup, starting from this
process's own and going up, that this user can write (and, on v2, that can hand memory and
pids down to children: a non-root v2 cgroup holding processes cannot, so for a grader in a
delegated scope its parent is used, e.g. app.slice). That folder is an ancestor of this
process's cgroup, so it is the common ancestor a move into the group needs write access to.
Parent folders (`convgrade`) are made once and left in place; each group is removed by close().

Use (one group per kernel start; the kernel's argv is prefixed by launcher()):

    group = cgroups.create(name, memory_bytes, pids)
    if isinstance(group, cgroups.Unavailable): log(group.reason)  # rlimits only
    else: argv = [*cgroups.launcher(group), *bwrap_argv]          # joins, then execs
    ...
    group.oom_kills()  # before close(): was the kernel killed for memory?
    group.close()      # after the kernel is shut down: kills leftovers, removes the group
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

PARENT = "convgrade"
NEEDED = frozenset({"memory", "pids"})
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")

# The launcher: `sh -c SCRIPT convgrade-join PROCS... -- ARGV...` writes its own pid into each
# PROCS file (joining the group before anything else runs), then execs ARGV in its place.
_JOIN = ('while [ "$#" -gt 0 ] && [ "$1" != -- ]; do '
         'echo "$$" > "$1" || { echo "convgrade: cannot join the cgroup $1" >&2; exit 125; }; shift; '
         'done; shift; exec "$@"')


# -- results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unavailable:
    """No group: why (for the log / the README's fallback). The caller keeps its rlimits."""

    reason: str


@dataclass
class SandboxGroup:
    """One sandbox's cgroup: a folder per hierarchy (one on v2; memory and pids on v1)."""

    version: int                       # 2 or 1
    folders: tuple[Path, ...]          # v2: (group,); v1: (memory group, pids group) or one if co-mounted
    memory_bytes: int
    pids: int
    _closed: bool = field(default=False, repr=False)

    def _file(self, name: str) -> Path | None:
        """The folder holding control file `name` (v1: the hierarchy it belongs to)."""
        for folder in self.folders:
            if (folder / name).exists():
                return folder / name
        return None

    def limits_pids(self) -> bool:
        """Whether the group caps its processes (pids.max exists in one of its folders)."""
        return self._file("pids.max") is not None

    def memory_peak(self) -> int | None:
        """The most memory the group has held, in bytes (None where the kernel does not say)."""
        path = self._file("memory.peak" if self.version == 2 else "memory.max_usage_in_bytes")
        return _read_int(path) if path else None

    def oom_kills(self) -> int | None:
        """How many processes of the group the OOM killer killed (None where the kernel does not say)."""
        path = self._file("memory.events" if self.version == 2 else "memory.oom_control")
        return parse_counter(_read(path), "oom_kill") if path else None

    def fork_refusals(self) -> int | None:
        """How many fork()/clone() calls pids.max refused (pids.events `max`)."""
        path = self._file("pids.events")
        return parse_counter(_read(path), "max") if path else None

    def close(self) -> None:
        """Kill every process left in the group, then remove it. Never raises; idempotent."""
        if self._closed:
            return
        self._closed = True
        for folder in self.folders:
            try:
                _kill_all(folder)
            except Exception as exc:  # noqa: BLE001 (close must not raise)
                log.warning("cgroup %s: could not kill its processes: %s", folder, exc)
        for folder in self.folders:
            _remove(folder)


# -- pure functions: what this machine offers -------------------------------------------------
@dataclass(frozen=True)
class Mount:
    root: str                  # the folder of the hierarchy mounted (mountinfo field 4)
    point: Path
    fstype: str                # "cgroup2" or "cgroup"
    options: frozenset[str]    # mount options ("ro", ...) and superblock options (v1 controllers)


@dataclass(frozen=True)
class Layout:
    """This process's own cgroup folders: v2, and v1 by controller (only writable mounts)."""

    v2_root: Path | None = None
    v2_own: Path | None = None
    v1: Mapping[str, tuple[Path, Path]] = field(default_factory=dict)  # controller -> (mount point, own folder)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Facts:
    """What a candidate parent folder offers (read from the cgroup files; see folder_facts)."""

    writable: bool                          # mkdir in it, and write its cgroup.procs
    controllers: frozenset[str] = frozenset()  # v2 cgroup.controllers
    subtree: frozenset[str] = frozenset()      # v2 cgroup.subtree_control
    has_processes: bool = False
    is_root: bool = False


def _unescape(field_: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup mounts in /proc/self/mountinfo text."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 6 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        options = frozenset(fields[5].split(",")) | frozenset(tail[2].split(","))
        mounts.append(Mount(_unescape(fields[3]), Path(_unescape(fields[4])), tail[0], options))
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """/proc/self/cgroup text -> {controller: path}; the v2 hierarchy's key is ""."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _inside(mount: Mount, path: str) -> Path | None:
    """The folder of cgroup `path` under this mount, or None if the mount does not show it."""
    root = mount.root.rstrip("/")
    if path != root and not path.startswith(root + "/"):
        return None
    rest = path[len(root):].strip("/")
    return mount.point / rest if rest else mount.point


def layout(mounts: Iterable[Mount], own: Mapping[str, str]) -> Layout:
    """Where this process's cgroups are, from parse_mountinfo and parse_proc_cgroup."""
    v2_root = v2_own = None
    v1: dict[str, tuple[Path, Path]] = {}
    notes = []
    for mount in mounts:
        if "ro" in mount.options:
            notes.append(f"{mount.point} is mounted read-only")
            continue
        if mount.fstype == "cgroup2":
            if v2_own is None and "" in own and (folder := _inside(mount, own[""])) is not None:
                v2_root, v2_own = mount.point, folder
        else:
            for controller in NEEDED & mount.options:
                folder = _inside(mount, own[controller]) if controller in own else None
                if folder is not None and controller not in v1:
                    v1[controller] = (mount.point, folder)
    return Layout(v2_root, v2_own, v1, tuple(notes))


def candidates(own: Path, top: Path) -> list[Path]:
    """own, then its parents up to (and including) the hierarchy's mount point `top`."""
    if own != top and top not in own.parents:
        return []
    return [own, *(p for p in own.parents if p == top or top in p.parents)]


def pick_parent(options: Iterable[tuple[Path, Facts]], version: int) -> Path | str:
    """The first candidate folder a group's parent folder can go in, or why none can."""
    why = []
    for folder, facts in options:
        if not facts.writable:
            why.append(f"{folder} is not writable")
        elif version == 2 and not NEEDED <= facts.controllers:
            why.append(f"{folder} has no {'/'.join(sorted(NEEDED - facts.controllers))} controller")
        elif version == 2 and not NEEDED <= facts.subtree and facts.has_processes and not facts.is_root:
            # v2: a (non-root) group with processes of its own cannot enable controllers for children.
            why.append(f"{folder} holds processes, so it cannot hand memory/pids to a child group")
        else:
            return folder
    return "; ".join(why) or "no cgroup folder to use"


def choose(lay: Layout, v2_controllers: frozenset[str]) -> list[int] | str:
    """The cgroup versions to try, in order (v2 first), or why neither can limit memory and pids.

    `v2_controllers`: the v2 root's cgroup.controllers (on a hybrid machine, only what v1 left).
    """
    versions = []
    if lay.v2_own is not None and NEEDED <= v2_controllers:
        versions.append(2)
    if NEEDED <= set(lay.v1):
        versions.append(1)
    if versions:
        return versions
    why = []
    if lay.v2_own is None:
        why.append("no writable cgroup v2 hierarchy")
    else:
        why.append(f"cgroup v2 offers only {' '.join(sorted(v2_controllers)) or 'no controllers'}")
    missing = sorted(NEEDED - set(lay.v1))
    why.append(f"no writable cgroup v1 {' or '.join(missing)} hierarchy")
    return "; ".join([*why, *lay.notes])


def parse_counter(text: str | None, key: str) -> int | None:
    """`key N` in a flat keyed file (memory.events, memory.oom_control, pids.events)."""
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return None


def launcher(group: SandboxGroup) -> list[str]:
    """argv prefix: joins `group` (its pid into each cgroup.procs), then execs the rest of the argv.

    The process joins before exec, so the sandbox and all it forks start inside the group.
    If it cannot join it exits with status 125 without running anything.
    """
    return ["/bin/sh", "-c", _JOIN, "convgrade-join", *(str(f / "cgroup.procs") for f in group.folders), "--"]


# -- I/O ----------------------------------------------------------------------------------------
def _read(path: Path | None) -> str | None:
    try:
        return path.read_text() if path else None
    except OSError:
        return None


def _read_int(path: Path) -> int | None:
    text = (_read(path) or "").strip()
    return int(text) if text.isdigit() else None


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _words(path: Path) -> frozenset[str]:
    return frozenset((_read(path) or "").split())


def folder_facts(folder: Path, top: Path, version: int) -> Facts:
    """Facts about `folder` (`top`: its hierarchy's mount point) for pick_parent."""
    writable = all(os.access(p, os.W_OK) for p in (folder, folder / "cgroup.procs"))
    if version == 1:
        return Facts(writable)
    return Facts(writable and os.access(folder / "cgroup.subtree_control", os.W_OK),
                 _words(folder / "cgroup.controllers"), _words(folder / "cgroup.subtree_control"),
                 bool(_pids_in(folder)), folder == top)


def _enable(folder: Path) -> None:
    """v2: let folder's children have memory and pids."""
    present = _words(folder / "cgroup.subtree_control")
    if not NEEDED <= present:
        _write(folder / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(NEEDED - present)))


def _make_v2(lay: Layout, name: str, memory_bytes: int, pids: int) -> SandboxGroup | str:
    assert lay.v2_root is not None and lay.v2_own is not None
    found = pick_parent(((f, folder_facts(f, lay.v2_root, 2)) for f in candidates(lay.v2_own, lay.v2_root)), 2)
    if isinstance(found, str):
        return f"cgroup v2: {found}"
    group = found / PARENT / name
    try:
        _enable(found)
        (found / PARENT).mkdir(exist_ok=True)
        _enable(found / PARENT)
        group.mkdir()
    except OSError as exc:
        return f"cgroup v2: cannot make {group}: {exc}"
    made = SandboxGroup(2, (group,), memory_bytes, pids)
    try:
        _write(group / "memory.max", str(memory_bytes))
        if (group / "memory.swap.max").exists():
            _write(group / "memory.swap.max", "0")
        _write(group / "pids.max", str(pids))
    except OSError as exc:
        made.close()
        return f"cgroup v2: cannot set the limits of {group}: {exc}"
    return made


def _make_v1(lay: Layout, name: str, memory_bytes: int, pids: int) -> SandboxGroup | str:
    folders: dict[str, Path] = {}  # controller -> group folder (the same one if co-mounted)
    for controller in sorted(NEEDED):
        top, own = lay.v1[controller]
        found = pick_parent(((f, folder_facts(f, top, 1)) for f in candidates(own, top)), 1)
        if isinstance(found, str):
            return f"cgroup v1 {controller}: {found}"
        folders[controller] = found / PARENT / name
    made = SandboxGroup(1, tuple(dict.fromkeys(folders.values())), memory_bytes, pids)
    for done, folder in enumerate(made.folders):
        try:
            folder.parent.mkdir(exist_ok=True)
            folder.mkdir()
        except OSError as exc:
            for other in made.folders[:done]:  # only what this call made (a name in use is not ours)
                _remove(other)
            return f"cgroup v1: cannot make {folder}: {exc.strerror or exc}"
    try:
        memory = folders["memory"]
        _write(memory / "memory.limit_in_bytes", str(memory_bytes))  # before memsw: memsw >= limit
        if (memory / "memory.memsw.limit_in_bytes").exists():
            _write(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
        _write(folders["pids"] / "pids.max", str(pids))
    except OSError as exc:
        made.close()
        return f"cgroup v1: cannot set the limits in {made.folders}: {exc}"
    return made


def create(name: str, memory_bytes: int, pids: int, proc: Path = Path("/proc")) -> SandboxGroup | Unavailable:
    """A new group `name` (unique per kernel start, e.g. unique_name()) limiting memory and pids.

    Nothing is in it yet: start the sandbox with launcher(group). Unavailable when neither
    cgroup v2 nor v1 can be written here; then nothing was made.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(f"bad cgroup name {name!r}")
    if memory_bytes <= 0 or pids <= 0:
        raise ValueError("memory_bytes and pids must be positive")
    try:
        mounts = parse_mountinfo((proc / "self" / "mountinfo").read_text())
        own = parse_proc_cgroup((proc / "self" / "cgroup").read_text())
    except OSError as exc:
        return Unavailable(f"cannot read this process's cgroups: {exc}")
    lay = layout(mounts, own)
    v2_controllers = _words(lay.v2_root / "cgroup.controllers") if lay.v2_root else frozenset()
    versions = choose(lay, v2_controllers)
    if isinstance(versions, str):
        return Unavailable(versions)
    why = []
    for version in versions:
        made = (_make_v2 if version == 2 else _make_v1)(lay, name, memory_bytes, pids)
        if isinstance(made, SandboxGroup):
            return made
        why.append(made)
    return Unavailable("; ".join(why))


def unique_name(prefix: str = "kernel") -> str:
    """A group name no other kernel start (in this or another grader process) uses."""
    return f"{prefix}-{os.getpid()}-{os.urandom(4).hex()}"


def _pids_in(folder: Path) -> list[int]:
    return [int(p) for p in (_read(folder / "cgroup.procs") or "").split() if p.isdigit()]


def _kill_all(folder: Path, timeout: float = 5.0) -> None:
    if not folder.is_dir():
        return
    if (folder / "pids.max").exists():
        try:
            _write(folder / "pids.max", "0")  # no new processes while the others are killed
        except OSError:
            pass
    if (folder / "cgroup.kill").exists():
        try:
            _write(folder / "cgroup.kill", "1")
        except OSError as exc:
            log.warning("cgroup %s: cgroup.kill failed: %s", folder, exc)
    deadline = time.monotonic() + timeout
    while (pids := _pids_in(folder)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.01)
    if pids:
        log.warning("cgroup %s: processes %s survived SIGKILL", folder, pids)


def _remove(folder: Path, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:  # EBUSY for a moment while killed processes exit
            if time.monotonic() >= deadline:
                log.warning("cgroup %s: cannot remove it: %s", folder, exc)
                return
            time.sleep(0.02)
