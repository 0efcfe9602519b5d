"""Kernels forked from the fork server (grader/fork_server.py) against kernels started anew: to the
student's code they are the same process (user, groups, capabilities, no_new_privs, seccomp,
signals, namespaces, limits, environment, files, folders), except matplotlib's configuration
folder and what is already imported; nothing of the grader is in them; no two share random
state; they end as bwrap's kernels end (their status reported, the sandbox with them)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from grader import fork_server
from grader.grading import fork_server_for
from grader.kernel import KernelSession
from grader.sandbox import SUBMISSION_NAME, Sandbox
from grader.settings import build_settings
from grader.spec import Limits, load_exercise

pytestmark = pytest.mark.slow

# What the student's code can see of its own process, as JSON on stdout.
SELF_PORTRAIT = r'''
import json, os, random, sys
def _kind(fd):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    return target.rsplit("/", 1)[-1] if target.startswith("/") else target.split(":")[0] + (
        target.split("[")[-1] if target.startswith("anon_inode") else "")
_status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
_kinds = [_kind(fd) for fd in sorted(os.listdir("/proc/self/fd"), key=int)]
print(json.dumps({
    "status": {k: _status[k].strip() for k in ("Uid", "Gid", "Groups", "CapInh", "CapPrm", "CapEff", "CapBnd",
                                               "CapAmb", "NoNewPrivs", "Seccomp", "SigIgn", "SigBlk")},
    "namespaces": {n: os.readlink(f"/proc/self/ns/{n}") for n in ("mnt", "pid", "net", "ipc", "uts", "cgroup", "user")},
    "limits": open("/proc/self/limits").read(),
    "env": dict(os.environ),
    "cwd": os.getcwd(), "root": sorted(os.listdir("/")), "umask": os.umask(0o22),
    "fds": sorted(k for k in _kinds if k is not None),
    "processes": sorted(open(f"/proc/{p}/cmdline").read().split("\0")[0].rsplit("/", 1)[-1]
                        for p in os.listdir("/proc") if p.isdigit()),
    "grader_modules": [m for m in sys.modules if m.split(".")[0] in ("grader", "reference", "convgrade", "tests")],
    "random": [random.random(), __import__("numpy").random.rand()],
}))
'''


@pytest.fixture(scope="module")
def exercise():
    return load_exercise("conv_step_by_step")


@pytest.fixture(scope="module")
def forks(exercise):
    server = fork_server_for(exercise, build_settings(exercise))
    assert server is not None, "conv_step_by_step preloads modules: its kernels are forked under bwrap"
    yield server
    server.close()


def scratch_with(tmp_path: Path, nb: nbformat.NotebookNode, name: str) -> Path:
    folder = tmp_path / name
    for sub in ("work", "home", "exchange"):
        (folder / sub).mkdir(parents=True)
    (folder / "work" / SUBMISSION_NAME).write_text(nbformat.writes(nb))
    return folder


def portrait(tmp_path: Path, exercise, forks, name: str) -> dict:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SELF_PORTRAIT)])
    box = Sandbox("bwrap", scratch_with(tmp_path, nb, name), Limits(), exercise.kernel_env, forks=forks)
    try:
        with KernelSession(nb, box, Limits()) as kernel:
            run = kernel.run_notebook()
    finally:
        box.close()
    assert not run.errors(), run.errors()
    [out] = [o for o in nb.cells[0].outputs if o.get("name") == "stdout"]
    return json.loads(out["text"])


def test_a_forked_kernel_is_to_the_student_a_kernel_started_anew(tmp_path, exercise, forks):
    new = portrait(tmp_path, exercise, None, "new")
    forked = portrait(tmp_path, exercise, forks, "forked")
    assert forked["status"] == new["status"]
    assert forked["status"]["Uid"].split() == ["65534"] * 4   # (kernels are forked as root only)
    assert forked["status"]["CapEff"] == forked["status"]["CapPrm"] == "0000000000000000"
    assert forked["status"]["NoNewPrivs"] == "1" and forked["status"]["Seccomp"] == "2"
    ours = {n: os.readlink(f"/proc/self/ns/{n}") for n in forked["namespaces"]}
    for name in ("mnt", "pid", "net", "ipc", "uts"):
        assert forked["namespaces"][name] != ours[name], name
    assert (forked["namespaces"]["user"] == ours["user"]) == (new["namespaces"]["user"] == ours["user"])
    assert forked["limits"] == new["limits"]
    assert forked["root"] == new["root"] and forked["umask"] == new["umask"]
    assert Path(forked["cwd"]).name == Path(new["cwd"]).name == "work"
    # its descriptors are of the kinds a new kernel has (ipykernel's sockets, pipes, event fds, its
    # history, the log) but stdin, /dev/null rather than a pipe from the grader
    assert set(forked["fds"]) - {"null", "history.sqlite-journal"} <= set(new["fds"]), (forked["fds"], new["fds"])
    assert "null" in forked["fds"]
    # what it sees running: bwrap's init, itself, and the placeholder bwrap started it beside
    assert forked["processes"] == sorted(new["processes"] + ["sleep"]), (forked["processes"], new["processes"])
    assert forked["grader_modules"] == new["grader_modules"] == []
    differs = {k for k in forked["env"].keys() | new["env"].keys() if forked["env"].get(k) != new["env"].get(k)}
    assert differs == {"HOME", "PWD", "MPLCONFIGDIR"}, differs    # (each scratch its own)
    assert forked["env"]["MPLCONFIGDIR"] == str(forks.mpl_folder)
    assert Path(forked["env"]["HOME"]).name == Path(new["env"]["HOME"]).name


def test_no_two_forked_kernels_share_random_state(tmp_path, exercise, forks):
    first = portrait(tmp_path, exercise, forks, "one")
    second = portrait(tmp_path, exercise, forks, "two")
    assert first["random"][0] != second["random"][0] and first["random"][1] != second["random"][1]


def run_cells(tmp_path: Path, exercise, forks, *sources: str, name: str = "s"):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    box = Sandbox("bwrap", scratch_with(tmp_path, nb, name), Limits(max_restarts=1), exercise.kernel_env,
                  forks=forks)
    try:
        with KernelSession(nb, box, Limits(max_restarts=1)) as kernel:
            run = kernel.run_notebook()
    finally:
        box.close()
    return nb, run


def host_processes_with(argument: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if argument in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0"):
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_a_forked_kernel_that_exits_is_reported_with_its_status_and_takes_its_sandbox_with_it(
        tmp_path, exercise, forks):
    marker = f"{time.time_ns() % 10**9}"
    nb, run = run_cells(tmp_path, exercise, forks,
                        "import subprocess\n"
                        f"subprocess.Popen(['sleep', '{marker}'], start_new_session=True)",
                        "import os\nos._exit(3)")
    [died] = [c for c in run.cells if c.fatal]
    assert "it exited with status 3" in died.fatal, died.fatal
    time.sleep(0.5)
    assert host_processes_with(marker) == []   # the student's process ended with the sandbox


def test_a_forked_kernel_shut_down_by_the_grader_leaves_nothing(tmp_path, exercise, forks):
    marker = f"{time.time_ns() % 10**9 + 1}"
    nb, run = run_cells(tmp_path, exercise, forks,
                        f"import subprocess\np = subprocess.Popen(['sleep', '{marker}'], start_new_session=True)")
    assert not run.errors()
    time.sleep(0.5)
    assert host_processes_with(marker) == []


def test_a_fork_server_that_died_is_started_again(tmp_path, exercise, forks):
    portrait(tmp_path, exercise, forks, "before")
    forks._process.kill()
    forks._process.wait()
    assert portrait(tmp_path, exercise, forks, "after")["status"]["NoNewPrivs"] == "1"


def test_the_anchor_is_found_only_as_the_placeholder_command():
    assert fork_server.ANCHOR == ("sleep", "infinity")
    with pytest.raises(fork_server.ForkServerError, match="did not start"):
        from grader.sandbox import _find_anchor
        _find_anchor(os.getpid(), timeout=0.05)   # (this process has no such child)


def test_a_kernel_that_cannot_set_itself_up_is_started_anew_and_the_fork_server_given_up(
        tmp_path, exercise, monkeypatch):
    """(Here: an rlimit the system refuses, as on a machine where setns on a pidfd is refused.)"""
    from grader import sandbox
    server = fork_server_for(exercise, build_settings(exercise))
    monkeypatch.setattr(sandbox, "rlimit_values", lambda *a, **k: [("RLIMIT_NOFILE", 1 << 40, 1 << 40)])
    try:
        nb, run = run_cells(tmp_path, exercise, server, "import os\nprint(os.environ['MPLCONFIGDIR'])")
    finally:
        server.close()
    assert not run.errors()
    [note] = run.notes
    assert "forking the kernel failed" in note and "started again" in note, note
    assert server.broken is not None and "could not set itself up" in server.broken
    with pytest.raises(fork_server.ForkServerError):
        server.fork({}, [])


def test_a_fork_server_that_cannot_start_is_given_up(tmp_path, exercise, monkeypatch):
    server = fork_server_for(exercise, build_settings(exercise))
    script = tmp_path / "not_a_zygote.py"
    script.write_text("import sys; sys.exit(1)\n")
    monkeypatch.setattr(fork_server, "ZYGOTE", script)
    try:
        nb, run = run_cells(tmp_path, exercise, server, "x = 1")
    finally:
        server.close()
    assert not run.errors() and "forking the kernel failed" in run.notes[0]
    assert server.broken is not None and "did not start" in server.broken


def test_a_forked_kernel_whose_waiter_died_is_taken_for_dead_when_it_ends(tmp_path, exercise, forks):
    """The waiter alone ends the sandbox when the kernel ends (red team: had the memory-limit
    killer taken it, the kernel's later death went unnoticed until the cell's timeout, 60 s)."""
    import signal
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def double(v):\n    return 2 * v"),
                                         nbformat.v4.new_code_cell("import os\nos._exit(3)"),
                                         nbformat.v4.new_code_cell("y = double(1)")])
    box = Sandbox("bwrap", scratch_with(tmp_path, nb, "w"), Limits(), exercise.kernel_env, forks=forks)
    try:
        with KernelSession(nb, box, Limits()) as kernel:
            os.kill(box.waiter, signal.SIGKILL)
            started = time.monotonic()
            run = kernel.run_notebook()
            took = time.monotonic() - started
            assert kernel.restarts == 1 and kernel.call("double", (21,)) == 42
    finally:
        box.close()
    assert took < 20, took
    assert [c.index for c in run.cells if c.fatal] == [1] and not run.errors()[1:]
