"""The hostile-notebook suite (tests/hostile/cases.toml) under the bwrap sandbox.

Every case must reach its verdict, no exception may escape grading, and the grader's own
files must be unchanged afterwards.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
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


def build(case: dict, tmp_path: Path, port: int) -> Path:
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
               for c in case.get("cells", [])]
    metadata = {"kernelspec": {"name": case["kernelspec"], "display_name": "?", "language": "?"}} \
        if "kernelspec" in case else None
    return with_cells(tmp_path, *sources, base=case.get("base", "correct"), at=case.get("at"), metadata=metadata)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_notebook_gets_its_verdict(name, exercise, tmp_path, listener, monkeypatch):
    case = CASES[name]
    port, received = listener
    monkeypatch.setenv("GRADER_SECRET_TOKEN", "hunter2")
    limits = exercise.limits.replace(**case.get("limits", {}))
    result = grade_submission(build(case, tmp_path, port), exercise, sandbox="bwrap", limits=limits)
    report = json.dumps([result.error, result.notebook_errors, [(t.name, t.output) for t in result.tests]],
                        indent=1)[:6000]

    assert received == [], "a kernel reached the grader's loopback"
    if case.get("status") == "ungradable":
        assert result.status == "ungradable" and result.error, report
        return
    if case.get("at_most_base"):
        base = grade_submission(SAMPLES / f"{case.get('base', 'correct')}.ipynb", exercise, sandbox="bwrap")
        assert result.score <= base.score, report
        return
    assert result.status == "graded", report
    assert results_by_item(result) == {i: "failed" if i in case["failed"] else "passed" for i in ITEMS}, report
    for test_name, text in case.get("contains", {}).items():
        output = next(t.output for t in result.tests if t.name == test_name)
        assert text in output, f"{test_name}: {text!r} not in\n{output}"
    if "notebook_error" in case:
        assert any(case["notebook_error"] in e for e in result.notebook_errors), report


def test_the_suite_has_at_least_twenty_notebooks():
    assert len(CASES) >= 20


def test_bwrap_is_refused_clearly_when_missing(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
        sandbox.check_available("bwrap")
