"""grader.cgroups: whole-sandbox memory and process limits.

The pure functions are tested on sample texts; the limits themselves on this machine's
cgroups (skipped, with the reason, where none is writable, e.g. not root on a v1 machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader import cgroups
from grader.cgroups import Facts, Mount

MB = 1 << 20

# -- sample texts: a pure-v2 desktop (user in a delegated scope), this v1/v2 hybrid, nothing ----
V2_MOUNTINFO = """\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
"""
V2_CGROUP = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope\n"

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
HYBRID_CGROUP = """\
9:name=systemd:/
8:pids:/
4:memory:/process_api/45329d76ea572ec1edd603a048f85847
1:cpu:/
0::/
"""

# An unprivileged container: the cgroup file system is mounted read-only.
NOTHING_MOUNTINFO = """\
600 590 0:52 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup ro,nsdelegate
"""
NOTHING_CGROUP = "0::/\n"


def test_parse_proc_cgroup_maps_controllers_and_v2():
    own = cgroups.parse_proc_cgroup(HYBRID_CGROUP + "7:cpu,cpuacct:/x\n")
    assert own["memory"] == "/process_api/45329d76ea572ec1edd603a048f85847"
    assert own["pids"] == "/" and own[""] == "/" and own["name=systemd"] == "/"
    assert own["cpu"] == own["cpuacct"] == "/x"


def test_parse_mountinfo_keeps_cgroup_mounts_only():
    mounts = cgroups.parse_mountinfo(HYBRID_MOUNTINFO)
    assert [m.point for m in mounts] == [Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/memory"),
                                         Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/systemd"),
                                         Path("/sys/fs/cgroup/unified")]
    assert "memory" in mounts[1].options and mounts[-1].fstype == "cgroup2"
    escaped = cgroups.parse_mountinfo("41 31 0:38 / /a\\040b rw - cgroup2 cgroup2 rw\n")
    assert escaped[0].point == Path("/a b")


def test_layout_pure_v2():
    lay = cgroups.layout(cgroups.parse_mountinfo(V2_MOUNTINFO), cgroups.parse_proc_cgroup(V2_CGROUP))
    assert lay.v2_root == Path("/sys/fs/cgroup")
    assert lay.v2_own == Path("/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope")
    assert lay.v1 == {}
    assert cgroups.choose(lay, frozenset({"cpu", "memory", "pids", "io"})) == [2]
    # systemd's default delegation without pids: nothing to use, and it says why
    why = cgroups.choose(lay, frozenset({"cpu", "memory"}))
    assert isinstance(why, str) and "cgroup v2 offers only cpu memory" in why


def test_layout_hybrid_uses_v1_memory_and_pids():
    lay = cgroups.layout(cgroups.parse_mountinfo(HYBRID_MOUNTINFO), cgroups.parse_proc_cgroup(HYBRID_CGROUP))
    assert lay.v2_own == Path("/sys/fs/cgroup/unified")
    assert lay.v1 == {"memory": (Path("/sys/fs/cgroup/memory"),
                                 Path("/sys/fs/cgroup/memory/process_api/45329d76ea572ec1edd603a048f85847")),
                      "pids": (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup/pids"))}
    assert cgroups.choose(lay, frozenset({"hugetlb"})) == [1]


def test_layout_nothing_writable_says_why():
    lay = cgroups.layout(cgroups.parse_mountinfo(NOTHING_MOUNTINFO), cgroups.parse_proc_cgroup(NOTHING_CGROUP))
    assert lay.v2_own is None and lay.v1 == {}
    why = cgroups.choose(lay, frozenset())
    assert isinstance(why, str)
    assert "no writable cgroup v2" in why and "read-only" in why and "memory or pids" in why


def test_layout_mount_of_a_subtree():
    # A cgroup namespace / bind mount shows only part of the hierarchy (mountinfo's root field).
    mounts = cgroups.parse_mountinfo("9 1 0:5 /box /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    inside = cgroups.layout(mounts, {"": "/box/kernel"})
    assert inside.v2_own == Path("/sys/fs/cgroup/kernel")
    assert cgroups.layout(mounts, {"": "/elsewhere"}).v2_own is None


def test_candidates_from_own_up_to_the_mount():
    top = Path("/sys/fs/cgroup")
    own = top / "user.slice/app.slice/run.scope"
    assert cgroups.candidates(own, top) == [own, own.parent, top / "user.slice", top]
    assert cgroups.candidates(top, top) == [top]
    assert cgroups.candidates(Path("/elsewhere"), top) == []


def test_pick_parent_v2_skips_a_scope_with_processes():
    top = Path("/sys/fs/cgroup")
    scope, slice_ = top / "u/app.slice/run.scope", top / "u/app.slice"
    both = frozenset({"memory", "pids"})
    options = [(scope, Facts(True, both, frozenset(), has_processes=True)),
               (slice_, Facts(True, both, both)), (top, Facts(False, both, both, is_root=True))]
    assert cgroups.pick_parent(options, 2) == slice_
    # the root cgroup may hold processes and still hand controllers down
    assert cgroups.pick_parent([(top, Facts(True, both, frozenset(), True, True))], 2) == top
    # an empty scope (e.g. the grader already moved itself out) is fine
    assert cgroups.pick_parent([(scope, Facts(True, both, frozenset()))], 2) == scope


def test_pick_parent_says_why_nothing_fits():
    top = Path("/sys/fs/cgroup")
    why = cgroups.pick_parent([(top / "a", Facts(False)), (top, Facts(True, frozenset({"cpu"})))], 2)
    assert why == f"{top / 'a'} is not writable; {top} has no memory/pids controller"
    # v1 needs only writability (no internal-process rule there)
    assert cgroups.pick_parent([(top / "a", Facts(True, has_processes=True))], 1) == top / "a"


def test_parse_counter():
    assert cgroups.parse_counter("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill") == 3
    assert cgroups.parse_counter("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n", "max") == 2
    assert cgroups.parse_counter("", "oom_kill") is None and cgroups.parse_counter(None, "max") is None


def test_create_rejects_names_that_are_paths():
    for name in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ValueError):
            cgroups.create(name, 64 * MB, 10)


def test_unavailable_when_nothing_writable(tmp_path: Path):
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text(NOTHING_MOUNTINFO)
    (tmp_path / "self" / "cgroup").write_text(NOTHING_CGROUP)
    result = cgroups.create("x", 64 * MB, 10, proc=tmp_path)
    assert isinstance(result, cgroups.Unavailable) and "read-only" in result.reason


# -- the limits, on this machine --------------------------------------------------------------
def _group(memory_mb: int, pids: int = 64) -> cgroups.SandboxGroup:
    group = cgroups.create(cgroups.unique_name("test"), memory_mb * MB, pids)
    if isinstance(group, cgroups.Unavailable):
        pytest.skip(f"no writable cgroup here: {group.reason}")
    return group


@pytest.fixture
def group_factory() -> Iterator:
    made: list[cgroups.SandboxGroup] = []

    def make(memory_mb: int, pids: int = 64) -> cgroups.SandboxGroup:
        made.append(_group(memory_mb, pids))
        return made[-1]

    yield make
    for group in made:
        group.close()


# Four children, each allocating and touching 300 MB, all holding it at once (each waits for
# the others before it exits); prints their exit statuses.
FOUR_CHILDREN = textwrap.dedent("""
    import subprocess, sys
    child = ("import sys; b = bytearray(300 << 20); b[::4096] = bytes(len(range(0, 300 << 20, 4096))); "
             "print('ready', flush=True); sys.stdin.read()")
    procs = [subprocess.Popen([sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
             for _ in range(4)]
    for p in procs:
        p.stdout.readline()  # "ready", or "" once it was killed
    for p in procs:
        p.stdin.close()
    print(*[p.wait() for p in procs])
""")


def test_memory_limit_counts_all_processes_together(group_factory):
    group = group_factory(512)
    limited = subprocess.run([*cgroups.launcher(group), sys.executable, "-c", FOUR_CHILDREN],
                             capture_output=True, text=True, timeout=30)
    statuses = [int(s) for s in limited.stdout.split()] if limited.returncode == 0 else []
    # the OOM killer killed at least one child (or the parent, when it was the one chosen)
    assert limited.returncode != 0 or -9 in statuses, (limited.stdout, limited.stderr)
    kills = group.oom_kills()
    assert kills is None or kills >= 1
    peak = group.memory_peak()
    assert peak is None or peak <= 512 * MB
    # the same without the group: 1.2 GB, no one killed
    unlimited = subprocess.run([sys.executable, "-c", FOUR_CHILDREN], capture_output=True, text=True, timeout=30)
    assert unlimited.returncode == 0 and unlimited.stdout.split() == ["0"] * 4, unlimited.stderr


def _bwrap_tmpfs_write(prefix: list[str]) -> subprocess.CompletedProcess:
    # /tmp: a folder that exists (the root is bound read-only, so bwrap cannot make one)
    script = ("echo started; dd if=/dev/zero of=/tmp/fill bs=1M count=600 status=none && "
              "echo wrote $(stat -c %s /tmp/fill)")
    cmd = [*prefix, shutil.which("bwrap") or "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
           "--size", str(1024 * MB), "--tmpfs", "/tmp", "--die-with-parent", "--unshare-pid",
           "/bin/sh", "-c", script]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap")
def test_tmpfs_writes_are_charged_to_the_group(group_factory):
    unlimited = _bwrap_tmpfs_write([])
    if "started" not in unlimited.stdout:
        pytest.skip(f"bubblewrap cannot run here: {unlimited.stderr.strip()}")
    assert unlimited.stdout.split() == ["started", "wrote", str(600 * MB)], unlimited.stderr
    group = group_factory(256)
    limited = _bwrap_tmpfs_write(cgroups.launcher(group))
    assert "started" in limited.stdout, limited.stderr
    assert "wrote" not in limited.stdout and limited.returncode != 0, (limited.stdout, limited.stderr)
    # killed for memory (or refused it), not stopped by the tmpfs's size
    assert group.oom_kills() or "Cannot allocate memory" in limited.stderr, limited.stderr
    peak = group.memory_peak()
    assert peak is None or peak <= 256 * MB


# Forks sleeping children until 40 or a fork fails; prints how many started and the errno.
FORTY_SLEEPERS = textwrap.dedent("""
    import errno, os, signal, time
    children, error = [], None
    for _ in range(40):
        try:
            pid = os.fork()
        except OSError as exc:
            error = errno.errorcode[exc.errno]
            continue
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
    print(len(children), error)
    for pid in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
""")


def test_pids_limit_refuses_forks_without_killing(group_factory):
    group = group_factory(512, pids=20)
    run = subprocess.run([*cgroups.launcher(group), sys.executable, "-c", FORTY_SLEEPERS],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stderr  # the parent was not killed
    started, error = run.stdout.split()
    assert int(started) == 19 and error == "EAGAIN"  # 20 with the parent
    assert group.fork_refusals() in (None, 21)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_close_kills_leftovers_and_removes_the_group():
    group = _group(256)
    try:
        # a sleep that outlives its parent (reparented, in a session of its own), still in the group
        run = subprocess.run([*cgroups.launcher(group), "/bin/sh", "-c", "setsid sleep 1000 >/dev/null 2>&1 & echo $!"],
                             capture_output=True, text=True, timeout=10)
        pid = int(run.stdout)
        assert _alive(pid)
        # and a child of this process, which will be a zombie here until it is waited for
        child = subprocess.Popen([*cgroups.launcher(group), "sleep", "1000"])
        assert any(str(pid) in (f / "cgroup.procs").read_text().split() for f in group.folders)
        started = time.monotonic()
        group.close()
        assert time.monotonic() - started < 3
        deadline = time.monotonic() + 2
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not _alive(pid) and not _alive(child.pid)
        assert not any(f.exists() for f in group.folders)
        assert child.wait(timeout=2) == -9
        group.close()  # idempotent, quiet
    finally:
        group.close()


def test_close_of_an_empty_group_and_a_group_removed_under_it():
    group = _group(64)
    for folder in group.folders:
        folder.rmdir()
    group.close()
    assert not any(f.exists() for f in group.folders)


def test_launcher_refuses_to_run_outside_its_group(group_factory, tmp_path: Path):
    group = group_factory(64)
    gone = cgroups.SandboxGroup(group.version, (tmp_path / "missing",), group.memory_bytes, group.pids)
    run = subprocess.run([*cgroups.launcher(gone), "/bin/echo", "ran"], capture_output=True, text=True, timeout=10)
    assert run.returncode == 125 and "ran" not in run.stdout and "cannot join" in run.stderr


def test_limits_are_written(group_factory):
    group = group_factory(300, pids=33)
    text = {f.name: f.read_text().strip() for d in group.folders for f in d.iterdir()
            if f.name in ("memory.max", "memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "pids.max",
                          "memory.swap.max")}
    assert text.get("memory.max", text.get("memory.limit_in_bytes")) == str(300 * MB)
    assert text["pids.max"] == "33"
    assert text.get("memory.swap.max", "0") == "0"
    assert text.get("memory.memsw.limit_in_bytes", str(300 * MB)) == str(300 * MB)
    assert os.getpid() not in [int(p) for d in group.folders for p in (d / "cgroup.procs").read_text().split()]


def test_v2_goes_beside_a_scope_that_holds_processes(tmp_path: Path):
    """The v2 path on a fake tree: a delegated user scope holding the grader (regular files, no kernel)."""
    top = tmp_path / "cg"
    scope = top / "user.slice/app.slice/run.scope"
    scope.mkdir(parents=True)
    for folder, subtree in ((top, "cpu memory pids"), (top / "user.slice", "memory pids"),
                            (scope.parent, "memory pids"), (scope, "")):
        (folder / "cgroup.controllers").write_text("cpu memory pids\n" if folder == top else "memory pids\n")
        (folder / "cgroup.subtree_control").write_text(subtree + "\n")
        (folder / "cgroup.procs").write_text("")
    (scope / "cgroup.procs").write_text("4242\n")
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(f"26 22 0:23 / {top} rw - cgroup2 cgroup2 rw,nsdelegate\n")
    (proc / "self" / "cgroup").write_text("0::/user.slice/app.slice/run.scope\n")
    group = cgroups.create("k1", 100 * MB, 50, proc=proc)
    assert isinstance(group, cgroups.SandboxGroup), group
    assert group.version == 2 and group.folders == (scope.parent / "convgrade" / "k1",)
    assert (scope.parent / "convgrade" / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (group.folders[0] / "memory.max").read_text() == str(100 * MB)
    assert (group.folders[0] / "pids.max").read_text() == "50"
    assert cgroups.launcher(group)[-2:] == [str(group.folders[0] / "cgroup.procs"), "--"]
