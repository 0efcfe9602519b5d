"""grader.scratch: removing trees hostile code wrote, and size-limited scratch folders.

Trees are built on a tmpfs when there is one (/dev/shm): an rmdir on an ext4 /tmp can cost
milliseconds, which would make the deep-chain tests slow for reasons of the disk, not the code.
Tests about a non-root grader run the code in a child process as nobody (setpriv).
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader import scratch
from grader.scratch import make_scratch, remove_tree, usage

NOBODY = 65534
REPO = Path(__file__).resolve().parent.parent
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (mounts, chown, setpriv to nobody)")


# ---------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------

@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh folder on a tmpfs if one is at hand (else tmp_path), world-traversable."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK):
        import tempfile
        base = Path(tempfile.mkdtemp(prefix="convgrade-test-", dir=shm))
    else:
        base = tmp_path / "fast"
        base.mkdir()
    base.chmod(0o755)
    yield base
    remove_tree(base)


def make_chain(top: Path, depth: int, name: str = "d") -> None:
    """top/d/d/.../d/leaf.txt, `depth` folders deep (built through descriptors: the path is too long)."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"deep")
        os.close(leaf)
    finally:
        os.close(fd)


def mounted(path: Path) -> bool:
    """Whether anything is mounted at `path` (per /proc/self/mounts; octal escapes aside)."""
    targets = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    return str(path) in targets


def in_mounts(text: str) -> bool:
    return text in Path("/proc/self/mounts").read_text()


@pytest.fixture(scope="session")
def nobody_python() -> list[str]:
    """The command prefix that runs Python as nobody, with grader importable; skips if impossible."""
    if not IS_ROOT:
        pytest.skip("needs root to run a child as nobody")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    for python in (sys.executable, "/usr/bin/python3"):
        command = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", python]
        probe = subprocess.run([*command, "-c", "import sys, grader.scratch; assert sys.version_info >= (3, 10)"],
                               env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")},
                               capture_output=True, timeout=30)
        if probe.returncode == 0:
            return command
    pytest.skip("no Python that nobody may run with this repository importable")


def run_as_nobody(prefix: list[str], code: str) -> str:
    """Run `code` as nobody; returns its stdout, fails the test on a non-zero exit."""
    done = subprocess.run([*prefix, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")}, cwd="/")
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---------------------------------------------------------------------------------------------------
# remove_tree
# ---------------------------------------------------------------------------------------------------

def test_deep_chain_removed_with_a_few_descriptors(fast_dir: Path) -> None:
    """3,000 levels (shutil.rmtree: RecursionError), under an open-files limit a fd per level exceeds."""
    top = fast_dir / "chain"
    make_chain(top, 3000)
    highest_fd = max(int(fd) for fd in os.listdir("/proc/self/fd"))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (highest_fd + 16, hard))
    try:
        left = remove_tree(top)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert left == []
    assert not top.exists()
    assert list(fast_dir.iterdir()) == []


def test_wide_folder_removed(fast_dir: Path) -> None:
    top = fast_dir / "wide"
    top.mkdir()
    for i in range(20_000):
        (top / f"f{i}").touch()
    (top / "sub").mkdir()
    (top / "sub" / "x").write_text("x")
    assert remove_tree(top) == []
    assert not top.exists()


def test_links_to_outside_are_removed_not_followed(fast_dir: Path) -> None:
    outside = fast_dir / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "folder" / "keep.txt").write_text("folder content")
    (outside / "file.txt").write_text("file content")
    top = fast_dir / "tree"
    (top / "sub" / "deeper").mkdir(parents=True)
    (top / "to_folder").symlink_to(outside / "folder")
    (top / "to_file").symlink_to(outside / "file.txt")
    (top / "sub" / "deeper" / "to_folder").symlink_to(outside / "folder", target_is_directory=True)
    (top / "sub" / "to_outside").symlink_to(outside)
    (top / "sub" / "relative").symlink_to("../../outside")
    os.link(outside / "file.txt", top / "sub" / "hard_link")
    assert remove_tree(top) == []
    assert not top.exists()
    assert (outside / "folder" / "keep.txt").read_text() == "folder content"
    assert (outside / "file.txt").read_text() == "file content"
    assert os.stat(outside / "file.txt").st_nlink == 1
    # a symlink given as the path itself: the link goes, its target stays
    link = fast_dir / "link_to_outside"
    link.symlink_to(outside)
    assert remove_tree(link) == []
    assert not link.is_symlink()
    assert (outside / "folder" / "keep.txt").read_text() == "folder content"


def test_fifos_sockets_and_read_only_entries_removed(fast_dir: Path) -> None:
    top = fast_dir / "tree"
    (top / "locked").mkdir(parents=True)
    os.mkfifo(top / "fifo")  # opening it would block: it must be unlinked, never opened
    os.mkfifo(top / "locked" / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(top / "socket"))
    (top / "read_only.txt").write_text("r")
    (top / "read_only.txt").chmod(0o400)
    (top / "locked" / "file").write_text("x")
    (top / "locked").chmod(0o500)
    assert remove_tree(top) == []
    assert not top.exists()


def test_locked_folders_of_a_non_root_user(nobody_python: list[str], fast_dir: Path) -> None:
    """As nobody, folders of mode 000 and 0500 (nested) with files in them; shutil.rmtree cannot."""
    home = fast_dir / "nobodys"
    home.mkdir()
    os.chown(home, NOBODY, NOBODY)
    top = home / "tree"
    run_as_nobody(nobody_python, f"""
        import os
        from pathlib import Path
        top = Path({str(top)!r})
        (top / "a" / "b" / "c").mkdir(parents=True)
        for folder in (top / "a", top / "a" / "b", top / "a" / "b" / "c"):
            (folder / "file.txt").write_text("x")
        (top / "five").mkdir()
        (top / "five" / "file.txt").write_text("x")
        (top / "zero_empty").mkdir()
        (top / "a" / "b" / "c").chmod(0o000)
        (top / "a" / "b").chmod(0o000)
        (top / "a").chmod(0o000)
        (top / "five").chmod(0o500)
        (top / "zero_empty").chmod(0o000)
        """)
    assert stat.S_IMODE(os.stat(top / "a").st_mode) == 0
    out = run_as_nobody(nobody_python, f"""
        from pathlib import Path
        from grader.scratch import remove_tree
        print(remove_tree(Path({str(top)!r})))
        """)
    assert out.strip() == "[]"
    assert not top.exists()


@needs_root
def test_mounts_inside_are_detached_not_crossed(fast_dir: Path) -> None:
    """A bind mount of an outside folder inside the tree: its files survive, the mount goes."""
    outside = fast_dir / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    top = fast_dir / "tree"
    (top / "sub" / "bound").mkdir(parents=True)
    (top / "tmpfs").mkdir()
    subprocess.run(["mount", "--bind", str(outside), str(top / "sub" / "bound")], check=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(top / "tmpfs")], check=True)
    (top / "tmpfs" / "x").write_text("x")
    try:
        assert remove_tree(top) == []
        assert not top.exists()
        assert (outside / "keep.txt").read_text() == "keep"
        assert not in_mounts(str(top))
    finally:
        for target in (top / "sub" / "bound", top / "tmpfs"):
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_mount_inside_left_and_reported_when_not_root(nobody_python: list[str], fast_dir: Path) -> None:
    """As nobody, a bind mount of nobody's own outside folder: not crossed (its files survive), reported."""
    home = fast_dir / "nobodys"
    (home / "outside").mkdir(parents=True)
    (home / "outside" / "keep.txt").write_text("keep")
    (home / "tree" / "bound").mkdir(parents=True)
    (home / "tree" / "other.txt").write_text("x")
    for path in (home, home / "outside", home / "outside" / "keep.txt", home / "tree", home / "tree" / "bound",
                 home / "tree" / "other.txt"):
        os.chown(path, NOBODY, NOBODY)
    subprocess.run(["mount", "--bind", str(home / "outside"), str(home / "tree" / "bound")], check=True)
    try:
        out = run_as_nobody(nobody_python, f"""
            from pathlib import Path
            from grader.scratch import remove_tree
            for problem in remove_tree(Path({str(home / "tree")!r})):
                print(problem)
            """)
        assert "bound: a mount point: not crossed" in out
        assert (home / "outside" / "keep.txt").read_text() == "keep"
        assert not (home / "tree" / "other.txt").exists()
    finally:
        subprocess.run(["umount", "-l", str(home / "tree" / "bound")], capture_output=True)


def test_entry_vanishing_meanwhile_is_not_an_error(fast_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file removed by someone else between the listing and the unlink (a process still running)."""
    top = fast_dir / "tree"
    (top / "sub").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (top / "sub" / name).write_text(name)
    real_unlink = os.unlink

    def racing_unlink(name, *, dir_fd=None):
        real_unlink(name, dir_fd=dir_fd)  # someone else got there first
        return real_unlink(name, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", racing_unlink)
    assert remove_tree(top) == []
    assert not top.exists()


def test_folder_written_into_meanwhile_is_gone_through_again(fast_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    top = fast_dir / "tree"
    (top / "sub").mkdir(parents=True)
    real_rmdir = os.rmdir
    written: list[str] = []

    def writer_first(name, *, dir_fd=None):
        if name == "sub" and not written:  # a process writes one more file just before the rmdir
            fd = os.open("sub/late.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=dir_fd)
            os.close(fd)
            written.append(name)
        return real_rmdir(name, dir_fd=dir_fd)

    monkeypatch.setattr(os, "rmdir", writer_first)
    assert remove_tree(top) == []
    assert written == ["sub"]
    assert not top.exists()


def test_missing_path_is_fine_and_keep_root_keeps_it(fast_dir: Path) -> None:
    assert remove_tree(fast_dir / "never_was") == []
    top = fast_dir / "kept"
    (top / "a").mkdir(parents=True)
    (top / "a" / "b").write_text("b")
    assert remove_tree(top, keep_root=True) == []
    assert top.is_dir() and list(top.iterdir()) == []


# ---------------------------------------------------------------------------------------------------
# usage
# ---------------------------------------------------------------------------------------------------

def test_usage_counts_allocated_bytes_without_following_links(fast_dir: Path) -> None:
    big_outside = fast_dir / "big_outside"
    big_outside.write_bytes(b"\1" * (4 << 20))
    top = fast_dir / "tree"
    (top / "sub").mkdir(parents=True)
    for i in range(3):
        (top / "sub" / f"f{i}").write_bytes(b"\1" * 65536)
    os.link(top / "sub" / "f0", top / "hard_link_to_f0")  # one file, counted once
    (top / "link").symlink_to(big_outside)
    (top / "sparse").write_bytes(b"")
    os.truncate(top / "sparse", 1 << 30)  # 1 GiB long, nothing allocated
    size, entries = usage(top, 1000)
    assert entries == 7  # sub, f0, f1, f2, hard_link_to_f0, link, sparse
    assert 3 * 65536 <= size < 4 * 65536  # not f0 twice, not the link's target, not the sparse length


def test_usage_stops_past_max_entries_and_walks_deep_chains(fast_dir: Path) -> None:
    wide = fast_dir / "wide"
    wide.mkdir()
    for i in range(1000):
        (wide / f"f{i}").touch()
    assert usage(wide, 10)[1] == 11
    assert usage(wide, 5000)[1] == 1000
    make_chain(fast_dir / "chain", 3000)  # its path is longer than PATH_MAX
    assert usage(fast_dir / "chain", 10_000)[1] == 3001
    assert usage(fast_dir / "gone", 10) == (0, 0)


# ---------------------------------------------------------------------------------------------------
# make_scratch
# ---------------------------------------------------------------------------------------------------

@needs_root
def test_scratch_as_root_is_a_tmpfs_of_its_size(nobody_python: list[str]) -> None:
    with make_scratch(1 << 20) as box:
        assert box.limited and box.why_unlimited == ""
        assert box.path.parent == Path(scratch.tempfile.gettempdir())
        assert box.path.name.startswith("convgrade-")
        assert mounted(box.path)
        assert stat.S_IMODE(os.stat(box.path).st_mode) == 0o700
        with pytest.raises(OSError) as full:
            (box.path / "big").write_bytes(b"\1" * (2 << 20))
        assert full.value.errno == errno.ENOSPC
        (box.path / "big").unlink()
        # the grader hands folders of it to the kernel as nobody, which then writes there
        work = box.path / "work"
        work.mkdir()
        for path in (box.path, work):
            os.chown(path, NOBODY, NOBODY)
        run_as_nobody(nobody_python, f"open({str(work / 'by_nobody.txt')!r}, 'w').write('x')")
        assert os.stat(work / "by_nobody.txt").st_uid == NOBODY
        make_chain(work / "chain", 1500)
        path = box.path
    assert box.leftovers == []
    assert not path.exists()
    assert not mounted(path)


@needs_root
def test_scratch_falls_back_to_a_plain_folder_when_it_may_not_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scratch, "mount_capability", lambda euid, caps: (False, "no way to mount here"))
    with make_scratch(1 << 20) as box:
        assert not box.limited
        assert "no way to mount here" in box.why_unlimited and "not limited" in box.why_unlimited
        assert box.path.is_dir() and not mounted(box.path)
        (box.path / "big").write_bytes(b"\1" * (2 << 20))  # nothing stops it
        path = box.path
    assert not path.exists()


@needs_root
def test_scratch_falls_back_when_the_mount_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(path: Path, options: str) -> None:
        raise OSError(errno.EPERM, os.strerror(errno.EPERM), str(path))

    monkeypatch.setattr(scratch, "_mount_tmpfs", refuse)
    with make_scratch(1 << 20) as box:
        assert not box.limited
        assert os.strerror(errno.EPERM) in box.why_unlimited
        path = box.path
    assert not path.exists()


def test_scratch_as_nobody_is_a_plain_folder_with_a_reason(nobody_python: list[str]) -> None:
    out = run_as_nobody(nobody_python, """
        import os
        from grader.scratch import make_scratch
        with make_scratch(1 << 20) as box:
            print(box.limited, os.path.isdir(box.path), box.path)
            print(box.why_unlimited)
        print(os.path.exists(box.path), box.leftovers)
        """)
    first, reason, last = out.splitlines()
    assert first.startswith("False True ")
    assert "not running as root" in reason
    assert last == "False []"


def test_pure_helpers() -> None:
    assert scratch.parse_cap_eff("Name:\tx\nCapEff:\t000001ffffffffff\n") == 0x1ffffffffff
    assert scratch.parse_cap_eff("Name:\tx\n") == 0
    assert scratch.mount_capability(0, 0) == (True, "")
    assert scratch.mount_capability(1000, 1 << 21) == (True, "")
    assert scratch.mount_capability(1000, (1 << 21) - 1)[0] is False
    assert scratch.parse_mount_id("pos:\t0\nflags:\t02\nmnt_id:\t42\nino:\t7\n") == 42
    assert scratch.tmpfs_options(1 << 20, 4096) == "size=1048576,nr_inodes=4096,mode=0700"
    assert scratch.tmpfs_inodes(1 << 30) == 262144
    with pytest.raises(ValueError):
        make_scratch(0)


def test_the_disk_limit_is_measured_at_once_when_asked_not_only_at_the_next_poll(tmp_path, monkeypatch):
    """A cell that writes past disk_mb and ends within one poll interval: the notebook runner asks
    `disk_over()` after the cell, which measures now and kills the sandbox, so the submission is
    stopped before its functions are graded (the watchdog alone saw it only later, under load)."""
    from grader import sandbox as sandbox_module
    from grader.spec import Limits

    monkeypatch.setattr(sandbox_module, "DISK_POLL_SECONDS", 3600.0)  # the poll never comes
    for name in ("work", "home", "exchange"):
        (tmp_path / name).mkdir()
    box = sandbox_module.Sandbox("none", tmp_path, Limits(disk_mb=64), watch_disk=True)  # (beside the 32 MB reserve)
    kernel = subprocess.Popen(["sleep", "60"])
    try:
        box.watch(kernel.pid)
        (tmp_path / "work" / "small.bin").write_bytes(b"x" * 1000)
        assert not box.disk_over() and kernel.poll() is None
        (tmp_path / "work" / "big.bin").write_bytes(b"x" * (40 << 20))
        assert box.disk_over() and box.disk_exceeded
        assert kernel.wait(timeout=10) == -9
    finally:
        kernel.kill()
        box.release()
