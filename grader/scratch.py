"""A submission's scratch folder: limited in total size, and removed safely whatever was written in it.

The student's kernel writes into subfolders of the scratch folder (work/, home/, exchange/, ipc/).
A file is bounded by RLIMIT_FSIZE, but not their number nor their sum, and hostile code can leave a
tree that shutil.rmtree cannot remove (a chain thousands of folders deep, folders of mode 000).

`make_scratch(size)` creates the folder in tempfile.gettempdir() (mode 0700) and, when this process
may mount (root or CAP_SYS_ADMIN), mounts a tmpfs of `size` bytes on it, so everything the kernel
writes is bounded in total (ENOSPC past it) and charged as memory to whoever writes it. Otherwise it
is a plain folder: `limited` is False and `why_unlimited` says so, for the grader's report; a
watchdog can then poll `usage()`. On exit the contents are removed with `remove_tree`, the tmpfs
is unmounted (lazily if busy) and the folder removed.

`remove_tree` walks the tree depth first with an explicit stack (no recursion) and only a few open
file descriptors whatever the depth (see _Walk); it never follows symlinks (every open is relative
to the parent's descriptor with O_NOFOLLOW) and never crosses into another mount.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import logging
import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MS_NOSUID, _MS_NODEV = 0x2, 0x4
_MNT_DETACH, _UMOUNT_NOFOLLOW = 0x2, 0x8
_CAP_SYS_ADMIN = 21
RETRIES = 3   # attempts per entry that keeps changing under us (a process still writing)
RESTARTS = 3  # walks from the top again when the tree was moved under us


# ---------------------------------------------------------------------------------------------------
# Walking a tree that hostile code wrote
# ---------------------------------------------------------------------------------------------------

class _Lost(Exception):
    """The walk's position could not be re-found (folders were moved under it): start over."""


@dataclass
class _Frame:
    name: str                       # its name in the parent folder ("" for the top)
    ident: tuple[int, int]          # (st_dev, st_ino), to recognise it again
    pending: list[tuple[str, bool]] | None = None  # entries still to visit: (name, is a folder)
    failed: bool = False            # something below could not be removed (reported already)
    tries: int = 0                  # times it was found non-empty after its entries were removed
    retries: dict[str, int] = field(default_factory=dict)  # children to go through again


class _Walk:
    """A depth-first position in a tree, holding one open descriptor whatever the depth.

    The frames hold names and (dev, ino) only. Going down opens the child relative to the current
    folder's descriptor and closes the parent's. Going up opens ".." of the current folder and
    accepts it only if it is the recorded parent (dev, ino); if not (the folder was moved), the
    parent is re-opened from the top by its names, each step checked the same way; if that fails
    too, _Lost is raised and the caller starts over from the top. So a 5,000-deep chain needs the
    top's descriptor, the current one and a transient one, never one per level, and the walk
    never leaves the folders it recorded.
    """

    def __init__(self, top_fd: int, top_ident: tuple[int, int]):
        self.top_fd = top_fd  # owned by the caller
        self.frames = [_Frame("", top_ident)]
        self.fd = os.dup(top_fd)

    def descend(self, child_fd: int, name: str, ident: tuple[int, int]) -> None:
        tries = self.frames[-1].retries.pop(name, 0)
        self.frames.append(_Frame(name, ident, tries=tries))
        os.close(self.fd)
        self.fd = child_fd

    def ascend(self) -> _Frame:
        """Leave the current folder for its parent; returns the left folder's frame."""
        child = self.frames.pop()
        parent = self.frames[-1]
        fd: int | None = None
        try:
            fd = os.open("..", _DIR_FLAGS, dir_fd=self.fd)
            if _ident(os.fstat(fd)) != parent.ident:
                os.close(fd)
                fd = None
        except OSError:
            fd = None
        if fd is None:
            fd = self._reopen()
        os.close(self.fd)
        self.fd = fd
        return child

    def _reopen(self) -> int:
        fd = os.dup(self.top_fd)
        try:
            for frame in self.frames[1:]:
                child = os.open(frame.name, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
                if _ident(os.fstat(fd)) != frame.ident:
                    raise _Lost(frame.name)
        except OSError as exc:
            os.close(fd)
            raise _Lost(str(exc)) from exc
        except _Lost:
            os.close(fd)
            raise
        return fd

    def where(self, name: str = "") -> str:
        """The path of `name` in the current folder, relative to the top."""
        return "/".join([f.name for f in self.frames[1:]] + ([name] if name else []))

    def close(self) -> None:
        os.close(self.fd)


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _mount_id(fd: int) -> int | None:
    """The mount an open descriptor is on (from /proc/self/fdinfo; None if /proc is not there).

    st_dev alone misses a bind mount of a folder of the same filesystem.
    """
    try:
        info = os.open(f"/proc/self/fdinfo/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        text = os.read(info, 4096).decode("ascii", "replace")
    finally:
        os.close(info)
    return parse_mount_id(text)


def parse_mount_id(fdinfo: str) -> int | None:
    """The mnt_id field of a /proc/<pid>/fdinfo/<fd> text."""
    for line in fdinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "mnt_id":
            return int(value.strip())
    return None


def _open_dir(parent_fd: int, name: str) -> int:
    """Open the folder `name` of `parent_fd` without following a symlink.

    A folder of this user it may not read (mode 000, 0300...) is given u+rwx first, through an
    O_PATH descriptor of it (chmod of /proc/self/fd/N reaches exactly that inode; chmod by name
    would follow a symlink swapped in meanwhile).
    """
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        path_fd = os.open(name, _PATH_FLAGS, dir_fd=parent_fd)
        try:
            st = os.fstat(path_fd)
            if st.st_uid != os.geteuid():
                raise
            os.chmod(f"/proc/self/fd/{path_fd}", stat.S_IMODE(st.st_mode) | 0o700)
        finally:
            os.close(path_fd)
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


def _make_writable(fd: int, st: os.stat_result) -> None:
    """u+rwx on an open folder of this user (root does not need it)."""
    if os.geteuid() != 0 and st.st_uid == os.geteuid() and st.st_mode & 0o700 != 0o700:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) | 0o700)


def _listing(fd: int) -> list[tuple[str, bool]]:
    """(name, is a folder) of every entry; "is a folder" is a hint (d_type), checked on use."""
    with os.scandir(fd) as entries:
        return [(entry.name, _is_dir_hint(entry)) for entry in entries]


def _is_dir_hint(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _is_root() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------------------------------------------
# remove_tree
# ---------------------------------------------------------------------------------------------------

def remove_tree(path: Path, *, keep_root: bool = False) -> list[str]:
    """Remove `path` and everything below it; returns (and logs) what could not be removed.

    Never follows a symlink (one at `path` itself is removed, not its target), never crosses into
    another mount (as root a mount found inside is detached lazily, then its mount point removed;
    otherwise it is left and reported), copes with folders of this user of mode 000/0500, FIFOs,
    sockets, hard links and read-only files, and takes entries that vanish or appear meanwhile
    (a process still writing) in its stride, retrying a folder that is not empty a few times.
    keep_root: empty `path` but keep the folder itself (e.g. a mount point).
    An empty list means it is all gone; no exception for anything found in the tree.
    """
    path = Path(path)
    if path.name in ("", ".", ".."):
        raise ValueError(f"remove_tree needs a path ending in a name, not {str(path)!r}")
    try:
        parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        problems = _remove_named(parent_fd, path.name, keep_root)
    finally:
        os.close(parent_fd)
    problems = [f"{path}{p}" if p.startswith(":") else f"{path}/{p}" for p in problems]
    for problem in problems:
        log.warning("scratch folder not fully removed: %s", problem)
    return problems


def _remove_named(parent_fd: int, name: str, keep_root: bool) -> list[str]:
    """remove_tree's work on `name` in `parent_fd`; problems as "relative/path: why" ("" = the top)."""
    try:
        top = _open_dir(parent_fd, name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            return [f": not opened ({exc.strerror})"]
        if keep_root:
            return [": not a folder"]
        try:
            os.unlink(name, dir_fd=parent_fd)
        except FileNotFoundError:
            pass
        except OSError as unlink_exc:
            return [f": not removed ({unlink_exc.strerror})"]
        return []
    problems: list[str] = []
    try:
        st = os.fstat(top)
        _make_writable(top, st)
        mount = (st.st_dev, _mount_id(top))
        for attempt in range(RETRIES + 1):
            problems = _empty_folder(top, _ident(st), mount)
            if problems or keep_root:
                break
            try:
                os.rmdir(name, dir_fd=parent_fd)
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and attempt < RETRIES:
                    continue  # written into meanwhile: once more
                problems = [f": not removed ({exc.strerror})"]
    finally:
        os.close(top)
    return problems


def _empty_folder(top: int, top_ident: tuple[int, int], mount: tuple[int, int | None]) -> list[str]:
    """Remove everything below the open folder `top`, starting over if the tree moves under us."""
    for _ in range(RESTARTS + 1):
        problems: list[str] = []
        try:
            _remove_below(top, top_ident, mount, problems)
            return problems
        except _Lost:
            continue
    return problems + [f": folders kept moving while it was removed (gave up after {RESTARTS} restarts)"]


def _remove_below(top: int, top_ident: tuple[int, int], mount: tuple[int, int | None],
                  problems: list[str]) -> None:
    walk = _Walk(top, top_ident)
    try:
        while True:
            frame = walk.frames[-1]
            if frame.pending is None:
                try:
                    frame.pending = _listing(walk.fd)
                except OSError as exc:
                    problems.append(f"{walk.where()}: not listed ({exc.strerror})")
                    frame.pending, frame.failed = [], True
            if frame.pending:
                name, is_dir = frame.pending.pop()
                _remove_entry(walk, name, is_dir, mount, problems)
                continue
            if len(walk.frames) == 1:
                return
            child = walk.ascend()
            parent = walk.frames[-1]
            if child.failed:  # what is left in it is reported already
                parent.failed = True
                continue
            try:
                os.rmdir(child.name, dir_fd=walk.fd)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST) and child.tries < RETRIES:
                    parent.retries[child.name] = child.tries + 1  # written into meanwhile
                    assert parent.pending is not None
                    parent.pending.append((child.name, True))
                else:
                    problems.append(f"{walk.where(child.name)}: not removed ({exc.strerror})")
                    parent.failed = True
    finally:
        walk.close()


def _remove_entry(walk: _Walk, name: str, is_dir: bool, mount: tuple[int, int | None],
                  problems: list[str]) -> None:
    """Unlink a non-folder, or go down into a folder (descending the walk)."""
    def fail(why: str) -> None:
        problems.append(f"{walk.where(name)}: {why}")
        walk.frames[-1].failed = True

    for _ in range(RETRIES + 1):
        if not is_dir:
            try:
                os.unlink(name, dir_fd=walk.fd)
                return
            except FileNotFoundError:
                return
            except IsADirectoryError:  # replaced by a folder meanwhile (or the hint was wrong)
                is_dir = True
                continue
            except OSError as exc:
                if exc.errno == errno.EBUSY and _is_root() and _detach(walk.fd, name) is None:
                    continue  # a file bind-mounted on it
                return fail(f"not removed ({exc.strerror})")
        try:
            child = _open_dir(walk.fd, name)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):  # not a folder (a symlink, a FIFO...)
                is_dir = False
                continue
            return fail(f"not opened ({exc.strerror})")
        try:
            st = os.fstat(child)
            crossed = st.st_dev != mount[0] or (mount[1] is not None and _mount_id(child) != mount[1])
            if not crossed:
                _make_writable(child, st)
        except OSError as exc:
            os.close(child)
            return fail(f"not inspected ({exc.strerror})")
        if not crossed:
            walk.descend(child, name, _ident(st))
            return
        os.close(child)
        if not _is_root():
            return fail("a mount point: not crossed (not root, cannot unmount it)")
        why = _detach(walk.fd, name)
        if why is not None:
            return fail(f"a mount point that could not be detached ({why})")
        # detached: the folder under it is now an ordinary member of the tree; go round again
    fail("kept changing while it was removed")


# ---------------------------------------------------------------------------------------------------
# usage
# ---------------------------------------------------------------------------------------------------

def usage(path: Path, max_entries: int) -> tuple[int, int]:
    """(bytes, entries) under `path`: bytes as allocated (st_blocks * 512, a hard-linked file once,
    the folder's own included), entries below it (files, folders, links...).

    Does not follow symlinks nor cross into other mounts, and stops as soon as entries exceeds
    max_entries (then entries == max_entries + 1): cheap enough for a watchdog to poll. A folder of
    this user it may not read is given u+rwx (else hostile code could hide data from it). A folder
    that cannot be read at all is counted by its own size only. (0, 0) if `path` is gone.
    """
    path = Path(path)
    try:
        parent_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0, 0
    try:
        try:
            top = _open_dir(parent_fd, path.name)
        except OSError:
            try:
                st = os.stat(path.name, dir_fd=parent_fd, follow_symlinks=False)
            except OSError:
                return 0, 0
            return st.st_blocks * 512, 0
    finally:
        os.close(parent_fd)
    try:
        st = os.fstat(top)
        mount = (st.st_dev, _mount_id(top))
        counted = (0, 0)
        for _ in range(RESTARTS + 1):
            try:
                return _count_below(top, st, mount, max_entries)
            except _Lost as lost:
                counted = lost.args[0] if lost.args and isinstance(lost.args[0], tuple) else counted
        return counted
    finally:
        os.close(top)


def _count_below(top: int, top_st: os.stat_result, mount: tuple[int, int | None],
                 max_entries: int) -> tuple[int, int]:
    walk = _Walk(top, _ident(top_st))
    seen: set[tuple[int, int]] = set()  # hard-linked files counted already
    total, entries = top_st.st_blocks * 512, 0
    try:
        while True:
            frame = walk.frames[-1]
            if frame.pending is None:
                frame.pending = []
                try:
                    with os.scandir(walk.fd) as listing:
                        for entry in listing:
                            entries += 1
                            if entries > max_entries:
                                return total, entries
                            try:
                                st = entry.stat(follow_symlinks=False)
                            except OSError:
                                continue
                            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                                if _ident(st) in seen:
                                    continue
                                seen.add(_ident(st))
                            total += st.st_blocks * 512
                            if stat.S_ISDIR(st.st_mode) and st.st_dev == mount[0]:
                                frame.pending.append((entry.name, True))
                except OSError:
                    pass
            if frame.pending:
                name, _ = frame.pending.pop()
                try:
                    child = _open_dir(walk.fd, name)
                except OSError:
                    continue
                st = os.fstat(child)
                if mount[1] is not None and _mount_id(child) != mount[1]:
                    os.close(child)  # a bind mount: its size is not this tree's
                    continue
                walk.descend(child, name, _ident(st))
                continue
            if len(walk.frames) == 1:
                return total, entries
            try:
                walk.ascend()
            except _Lost as lost:
                raise _Lost((total, entries)) from lost
    finally:
        walk.close()


# ---------------------------------------------------------------------------------------------------
# Scratch folders
# ---------------------------------------------------------------------------------------------------

@dataclass
class Scratch:
    """A scratch folder (a context manager: removed on exit; `close()` does the same).

    limited: everything in it is bounded by size_bytes in total (a tmpfs of its own).
    why_unlimited: if not, why, in words for the grader's report.
    leftovers: after close, what could not be removed (empty: all gone).
    """

    path: Path
    size_bytes: int
    limited: bool
    why_unlimited: str = ""
    leftovers: list[str] = field(default_factory=list)
    closed: bool = False

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def usage(self, max_entries: int) -> tuple[int, int]:
        return usage(self.path, max_entries)

    def close(self) -> list[str]:
        """Remove the contents, unmount, remove the folder; never raises for what is in it."""
        if self.closed:
            return self.leftovers
        self.closed = True
        if not self.limited:
            self.leftovers = remove_tree(self.path)
            return self.leftovers
        left = remove_tree(self.path, keep_root=True)  # frees the memory now, even if detached lazily
        why = _unmount(self.path)
        if why is not None:
            self.leftovers = left + [f"{self.path}: tmpfs not unmounted ({why})"]
            log.warning("scratch tmpfs not unmounted: %s", self.leftovers[-1])
            return self.leftovers
        if left:  # went with the tmpfs
            log.info("%d entries the removal left went with the unmounted tmpfs", len(left))
        self.leftovers = remove_tree(self.path)
        return self.leftovers


def make_scratch(size_bytes: int, prefix: str = "convgrade-", *, max_inodes: int | None = None) -> Scratch:
    """A new scratch folder in tempfile.gettempdir(), mode 0700, on a tmpfs of size_bytes if this
    process may mount one (else a plain folder: see Scratch.limited / why_unlimited).

    max_inodes: the tmpfs's nr_inodes (files and folders in it); default tmpfs_inodes(size_bytes).
    """
    if size_bytes <= 0:
        raise ValueError(f"size_bytes must be positive, not {size_bytes}")
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        can, why = mount_capability(os.geteuid(), _effective_caps())
        if not can:
            return Scratch(path, size_bytes, False, unlimited_reason(why))
        try:
            _mount_tmpfs(path, tmpfs_options(size_bytes, max_inodes or tmpfs_inodes(size_bytes)))
        except OSError as exc:
            return Scratch(path, size_bytes, False,
                           unlimited_reason(f"mounting a tmpfs on it failed ({exc.strerror or exc})"))
        return Scratch(path, size_bytes, True)
    except BaseException:
        remove_tree(path)
        raise


def tmpfs_inodes(size_bytes: int) -> int:
    """Default nr_inodes: one per 4 KiB of size, at least 4096 (inodes cost kernel memory that the
    size= limit does not count; with this, empty files cannot outgrow it much)."""
    return max(4096, size_bytes // 4096)


def tmpfs_options(size_bytes: int, inodes: int) -> str:
    return f"size={size_bytes},nr_inodes={inodes},mode=0700"


def unlimited_reason(why: str) -> str:
    return (f"the scratch folder is a plain folder, its total size is not limited: {why} "
            "(each file is still limited by the file-size limit)")


def mount_capability(euid: int, effective_caps: int) -> tuple[bool, str]:
    """Whether a process with this euid and CapEff mask may mount a tmpfs, and if not, why."""
    if euid == 0 or effective_caps >> _CAP_SYS_ADMIN & 1:
        return True, ""
    return False, "the grader is not running as root (no CAP_SYS_ADMIN to mount a tmpfs)"


def parse_cap_eff(status: str) -> int:
    """The CapEff mask of a /proc/<pid>/status text (0 if absent)."""
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return int(line.split(":", 1)[1].strip(), 16)
    return 0


def _effective_caps() -> int:
    try:
        return parse_cap_eff(Path("/proc/self/status").read_text())
    except OSError:
        return 0


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.mount.restype = ctypes.c_int
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.umount2.restype = ctypes.c_int
    return libc


def _mount_tmpfs(path: Path, options: str) -> None:
    """mount -t tmpfs -o <options>,nosuid,nodev tmpfs <path>, through mount(2); raises OSError."""
    before = os.stat(path).st_dev
    if _libc().mount(b"tmpfs", os.fsencode(path), b"tmpfs", _MS_NOSUID | _MS_NODEV, options.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(path))
    if os.stat(path).st_dev == before:  # not what we asked for: do not pretend
        _unmount(path)
        raise OSError(errno.EIO, "the tmpfs did not appear on the folder", str(path))


def _umount2(target: bytes, flags: int) -> int:
    """umount2(2): 0, or the errno."""
    return 0 if _libc().umount2(target, flags) == 0 else ctypes.get_errno()


def _unmount(path: Path) -> str | None:
    """Unmount `path` (lazily if busy); None when done (or nothing was mounted), else why not."""
    err = _umount2(os.fsencode(path), _UMOUNT_NOFOLLOW)
    if err == errno.EBUSY:
        err = _umount2(os.fsencode(path), _UMOUNT_NOFOLLOW | _MNT_DETACH)
    return None if err in (0, errno.EINVAL) else os.strerror(err)


def _detach(dir_fd: int, name: str) -> str | None:
    """Lazily unmount what is mounted on `name` in the folder `dir_fd`; None if done, else why not."""
    err = _umount2(os.fsencode(f"/proc/self/fd/{dir_fd}/{name}"), _UMOUNT_NOFOLLOW | _MNT_DETACH)
    return None if err == 0 else os.strerror(err)
