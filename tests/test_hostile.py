"""The hostile-notebook suite (tests/hostile/cases.toml) under the bwrap sandbox.

Every case must reach its verdict, no exception may escape grading, and the grader's own
files must be unchanged afterwards.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import nbformat
import pytest

from grader import sandbox, spec
from grader.grading import grade_submission

from .notebooks import SAMPLES, results_by_item, with_cells

ROOT = Path(__file__).resolve().parent.parent
CASES = tomllib.loads((Path(__file__).parent / "hostile" / "cases.toml").read_text())
ITEMS = ["zero_pad", "conv_single_step", "conv_forward", "pool_forward", "conv_backward",
         "create_mask_from_window", "distribute_value", "pool_backward"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]


def tree_digest(*folders: str) -> str:
    h = hashlib.sha256()
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                h.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module", autouse=True)
def grader_files_unchanged():
    before = tree_digest("grader", "reference", "exercises", "tests")
    yield
    assert tree_digest("grader", "reference", "exercises", "tests") == before


@pytest.fixture(scope="module")
def exercise():
    return spec.load_exercise("conv_step_by_step")


@pytest.fixture(scope="module")
def base_score(exercise):
    """base_score(name): the score of the bundled sample `name` graded as it is (once per module:
    the same notebook, settings and grader give the same score)."""
    scores: dict[str, float] = {}

    def get(name: str) -> float:
        if name not in scores:
            scores[name] = grade_submission(SAMPLES / f"{name}.ipynb", exercise, sandbox="bwrap").score
        return scores[name]
    return get


@pytest.fixture
def listener():
    """A loopback server on the grader's side; records anything a kernel manages to send."""
    received: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                received.append(conn.recv(1024))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


@pytest.fixture
def canary(tmp_path):
    """A folder of the grader's that no kernel may see, write, chown or have bound: its state after."""
    folder = tmp_path / "canary"
    folder.mkdir(mode=0o700)
    (folder / "secret.txt").write_text("canary")

    def state():
        return sorted((p.name, p.lstat().st_uid, p.lstat().st_mode, p.read_bytes() if p.is_file() else b"")
                      for p in [folder, *folder.iterdir()])
    before = state()
    yield folder
    assert state() == before, "the grader wrote, chowned or created something in a folder outside the sandbox"


def build(case: dict, tmp_path: Path, port: int, canary: Path) -> Path:
    if case.get("raw") == "nested":
        path = tmp_path / "sub.ipynb"
        path.write_text('{"cells": [], "metadata": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}, "
                        '"nbformat": 4, "nbformat_minor": 5}')
        return path
    if case.get("raw") == "non_utf8":
        path = tmp_path / "sub.ipynb"
        path.write_bytes((SAMPLES / "correct.ipynb").read_bytes().replace(b"zero_pad", b"zero_p\xe4d", 1))
        return path
    if case.get("raw") == "enormous":
        nb = nbformat.read(SAMPLES / "correct.ipynb", as_version=4)
        nb.cells.append(nbformat.v4.new_markdown_cell("x" * (60 * 2**20)))
        path = tmp_path / "sub.ipynb"
        nbformat.write(nb, path)
        return path
    other = tmp_path / "other-student" / "submission.ipynb"
    other.parent.mkdir()
    shutil.copy(SAMPLES / "correct.ipynb", other)
    sources = [c.replace("{PROJECT}", str(ROOT)).replace("{OTHER}", str(other)).replace("{PORT}", str(port))
               .replace("{CANARY}", str(canary))
               for c in case.get("cells", [])]
    if "newlines_cell" in case:
        sources.insert(0, "\n" * case["newlines_cell"] + "x = 1")
    metadata = {"kernelspec": {"name": case["kernelspec"], "display_name": "?", "language": "?"}} \
        if "kernelspec" in case else None
    return with_cells(tmp_path, *sources, base=case.get("base", "correct"), at=case.get("at"), metadata=metadata)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_notebook_gets_its_verdict(name, exercise, tmp_path, listener, canary, monkeypatch, base_score):
    case = CASES[name]
    port, received = listener
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "hunter2")
    scratch_root = tmp_path / "scratch-root"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    limits = exercise.limits.replace(**case.get("limits", {}))
    submission = build(case, tmp_path, port, canary)
    started = time.monotonic()
    result = grade_submission(submission, exercise, sandbox="bwrap", limits=limits)
    seconds = time.monotonic() - started
    report = json.dumps([result.error, result.notebook_errors, [(t.name, t.output) for t in result.tests]],
                        indent=1)[:6000]

    assert received == [], "a kernel reached the grader's loopback"
    if case.get("scratch_removed"):
        assert list(scratch_root.iterdir()) == [], "the submission's scratch folder was left behind"
    if "max_seconds" in case:  # a bound the limits promise (generous: not a benchmark)
        assert seconds < case["max_seconds"], f"took {seconds:.0f}s\n{report}"
    if case.get("status") == "ungradable":
        assert result.status == "ungradable" and result.error, report
        return
    if case.get("at_most_base"):
        assert result.score <= base_score(case.get("base", "correct")), report
        return
    assert result.status == "graded", report
    assert results_by_item(result) == {i: "failed" if i in case["failed"] else "passed" for i in ITEMS}, report
    for test_name, text in case.get("contains", {}).items():
        output = next(t.output for t in result.tests if t.name == test_name)
        assert text in output, f"{test_name}: {text!r} not in\n{output}"
    if "notebook_error" in case:
        assert any(case["notebook_error"] in e for e in result.notebook_errors), report


# Cases that must hold when the grader is an ordinary user too (no cgroup or mount needed).
AS_USER = ["restart_rebinds_links_the_kernel_made", "links_in_place_of_the_graders_files", "fork_bomb",
           "replay_sleeps_after_every_restart", "read_reference_source", "network_exfiltration",
           "disk_filled_by_files_under_the_file_limit", "launcher_planted_in_the_working_folder"]
GRADE_AS_USER = """
import json, sys, os
from pathlib import Path
from dataclasses import asdict
from grader import spec
from grader.grading import grade_submission
assert os.geteuid() != 0
exercise = spec.load_exercise("conv_step_by_step")
limits = exercise.limits.replace(**json.loads(sys.argv[2]))
print(json.dumps(asdict(grade_submission(Path(sys.argv[1]), exercise, sandbox="bwrap", limits=limits))))
"""


@pytest.mark.skipif(shutil.which("unshare") is None, reason="util-linux unshare is not installed")
@pytest.mark.parametrize("name", AS_USER)
def test_hostile_notebook_as_an_ordinary_user(name, tmp_path, listener, canary):
    """The grader as uid 1000 (a user namespace: no capability outside it, so no cgroup, no
    mount, no chown), the kernel in bwrap's own user namespace below it."""
    case = CASES[name]
    port, received = listener
    scratch_root = tmp_path / "scratch-root"
    scratch_root.mkdir()
    submission = build(case, tmp_path, port, canary)
    env = {**os.environ, "TMPDIR": str(scratch_root)}
    proc = subprocess.run(["unshare", "--user", "--map-user=1000", "--map-group=1000", sys.executable, "-c",
                           GRADE_AS_USER, str(submission), json.dumps(case.get("limits", {}))],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    if proc.returncode and "unshare failed" in proc.stderr:
        pytest.skip(f"no user namespaces here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    report = json.dumps([doc["error"], doc["notebook_errors"], [(t["name"], t["output"]) for t in doc["tests"]]],
                        indent=1)[:6000]
    assert received == [], "a kernel reached the grader's loopback"
    assert list(scratch_root.iterdir()) == [], "the submission's scratch folder was left behind"
    expected = {**case, **case.get("as_user", {})}
    if expected.get("status") == "ungradable":
        assert doc["status"] == "ungradable" and expected.get("error", "") in (doc["error"] or "x"), report
        return
    assert doc["status"] == "graded", report
    by_item = {}
    for t in doc["tests"]:
        item = t["name"].split(":")[0]
        by_item[item] = "failed" if t["status"] != "passed" or by_item.get(item) == "failed" else "passed"
    assert by_item == {i: "failed" if i in case["failed"] else "passed" for i in ITEMS}, report


def test_bwrap_is_refused_clearly_when_missing(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
        sandbox.check_available("bwrap")


MANY_PARTS = '''
import time, zmq
_k = get_ipython().kernel
_part = zmq.Frame(b"x" * ((8 << 20) - 4096))   # 8 MB parts, sent 60 times each without copies
def _send():
    for _ in range(2):
        _k.iopub_thread.socket.send_multipart([b"stream", b"<IDS|MSG>", b"0", b"{}", b"{}", b"{}", b"{}"]
                                               + [_part] * 60, copy=False)
_k.iopub_thread.schedule(_send)
time.sleep(4)
'''

# Empty parts: 2 bytes each on the wire, 64 each to the receiver's libzmq (found by a red-team
# helper: 416 MB held from 12 MB sent, before the relay read ZMTP).
EMPTY_PARTS = '''
import time, zmq
_k = get_ipython().kernel
def _send():
    s = _k.iopub_thread.socket
    for _ in range(6_000_000):
        s.send(b"", zmq.SNDMORE)
    s.send(b"")
_k.iopub_thread.schedule(_send)
time.sleep(20)
'''

# Signed messages (the kernel has the key) whose JSON parts, each just under ZeroMQ's former 8 MB
# limit for a part, decode into millions of empty lists: about 21 times their size in Python
# objects (red team: 1 GB held from 96 MB sent).
JSON_GROWTH = '''
import time, json
_k = get_ipython().kernel
_pad = b"[" + b"[]," * (((8 << 20) - 8192) // 3) + b"[]]"
def _j(d):
    return json.dumps({**d, "pad": 0}).encode()[:-2] + _pad + b"}"
_parts = [_j({"msg_id": "x", "msg_type": "stream", "username": "u", "session": "s",
              "date": "2020-01-01T00:00:00Z", "version": "5.3"}), _j({}), _j({}), _j({"name": "stdout", "text": ""})]
_sig = _k.session.sign(_parts)
def _send():
    for _ in range(3):
        _k.iopub_thread.socket.send_multipart([b"stream", b"<IDS|MSG>", _sig] + _parts)
_k.iopub_thread.schedule(_send)
time.sleep(10)
'''

# Parts laid out so that every 8 KB receive buffer of the grader's libzmq is kept by one 33-byte
# zero-copy part, messages within the relay's limit: iopub filled during a call (the grader does
# not read iopub then), shell while the grader decodes one slow JSON message, stdin and control
# too (red team: 208 MB held against a bound of 198, before the bound counted ZeroMQ's buffers).
PINNED_BUFFERS = '''import time, zmq
_k = get_ipython().kernel
_S = _k.session
_LIMIT = MESSAGE_LIMIT_BYTES
def _charge(parts):
    return sum((2 if len(p) < 256 else 9) + len(p) + 64 for p in parts)
_Z, _F = b"z" * 33, b"f" * 8149
def _fill(parts, uncharged=0, limit=_LIMIT):
    c = _charge(parts[uncharged:]); step = _charge([_Z, _F])
    while c + step <= limit:
        parts += [_Z, _F]; c += step
    return parts
def _signed(msg_type, parent=b"{}", content=b'{"name": "stdout", "text": ""}'):
    h = _S.pack(_S.msg_header(msg_type)); md = b"{}"
    return [b"<IDS|MSG>", _S.sign([h, parent, md, content]), h, parent, md, content]
_IOPUB = [zmq.Frame(p) for p in _fill([b"stream"] + _signed("stream"))]
def _iopub(n):
    def go():
        for _ in range(n):
            _k.iopub_thread.socket.send_multipart([b"stream"] + _signed("stream") + _IOPUB[7:], copy=False)
    _k.iopub_thread.schedule(go)
_orig_zero_pad = zero_pad
_fired = [False]
SHELL_N = 31
def zero_pad(*a, **kw):
    if not _fired[0]:
        _fired[0] = True
        _iopub(40)
        time.sleep(2.5)
        idents = list(_k._parent_ident["shell"])
        sock = _k.shell_channel_thread.manager.get_subshell_to_shell_channel_socket(None)
        pad = b"[" + b"[]," * ((_LIMIT - 8192) // 3 - 1) + b"[]]"
        heavy = idents + _signed("status", parent=b'{"pad": ' + pad + b'}')
        assert _charge(heavy[len(idents):]) <= _LIMIT, _charge(heavy[len(idents):])
        sock.send_multipart(heavy)
        pinned = [zmq.Frame(p) for p in _fill(idents + _signed("status"), uncharged=len(idents))]
        for _ in range(SHELL_N):
            sock.send_multipart(idents + _signed("status") + pinned[len(idents) + 6:], copy=False)
        small = [zmq.Frame(p) for p in _fill(idents + _signed("status"), uncharged=len(idents), limit=_LIMIT - 8 * 8192)]
        for _ in range(2):
            _k.stdin_socket.send_multipart(idents + _signed("status") + small[len(idents) + 6:], copy=False)
        def ctl():
            for _ in range(2):
                _k.control_stream.socket.send_multipart(idents + _signed("status") + small[len(idents) + 6:], copy=False)
        _k.control_thread.io_loop.add_callback(ctl)
        time.sleep(3)
    return _orig_zero_pad(*a, **kw)
'''


def resident_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.parametrize("attack", ["many_parts", "empty_parts", "json_growth", "pinned_buffers"])
def test_what_the_kernel_sends_cannot_make_the_grader_hold_more_than_the_bound(exercise, tmp_path, attack):
    """Messages of 60 zero-copy parts of 8 MB (they cost the kernel 8 MB; ZeroMQ limits each part,
    not their number), millions of empty parts, JSON that grows 21 times when decoded: what the
    grader's process holds meanwhile stays within sandbox.held_bound (the relay passes whole
    messages within its limit, each part charged; one message decoded at a time); the notebook is
    graded, the dropped outputs among its notes."""
    from grader.notebook_runner import MAX_QUEUED_MESSAGES
    from grader.sandbox import held_bound

    from grader.channel_relay import MESSAGE_LIMIT

    cell = {"many_parts": MANY_PARTS, "empty_parts": EMPTY_PARTS, "json_growth": JSON_GROWTH,
            "pinned_buffers": PINNED_BUFFERS.replace("MESSAGE_LIMIT_BYTES", str(MESSAGE_LIMIT))}[attack]
    submission = with_cells(tmp_path, cell)
    peak, stop = [resident_mb()], threading.Event()
    baseline = peak[0]

    def sample():
        while not stop.wait(0.02):
            peak[0] = max(peak[0], resident_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = grade_submission(submission, exercise, sandbox="bwrap")
    finally:
        stop.set()
        sampler.join()
    promised = held_bound(spec.Limits(), MAX_QUEUED_MESSAGES) / 2**20
    assert peak[0] - baseline < promised, f"the grader's process grew by {peak[0] - baseline:.0f} MB"
    assert result.status == "graded", result
    if attack != "pinned_buffers":   # its messages are within the limit
        assert any("output limit" in e for e in result.notebook_errors), result.notebook_errors
