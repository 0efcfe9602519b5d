"""A kernel's first start: one that fails before any code of the submission ran is started again
once; one that fails every time is an error naming each cause and the kernel's last words, which
grading records as the grader's fault (never the student's). The kernel here dies on purpose in
the grader's prelude, the last step of a start."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from grader.kernel import KernelSession
from grader.sandbox import SUBMISSION_NAME, Sandbox
from grader.spec import Limits

pytestmark = pytest.mark.slow

# Dies at the first start of this scratch only (the mark is left in the kernel's working folder,
# which outlives a start), saying so on its stderr (the kernel's log: ipykernel forwards what is
# written on fd 2 to the notebook; it keeps the real stderr as _original_stdstream_copy).
DIES_ONCE = """
import os, sys
if not os.path.exists('started-before'):
    open('started-before', 'w').close()
    os.write(getattr(sys.stderr, '_original_stdstream_copy', 2), b'dying on purpose at the first start\\n')
    os._exit(3)
"""

DIES_ALWAYS = """
import os, sys
os.write(getattr(sys.stderr, '_original_stdstream_copy', 2), b'dying on purpose at every start\\n')
os._exit(3)
"""


def notebook() -> nbformat.NotebookNode:
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("def double(x):\n    return 2 * x")])


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    folder = tmp_path / "s"
    for name in ("work", "home", "exchange"):
        (folder / name).mkdir(parents=True)
    (folder / "work" / SUBMISSION_NAME).write_text(nbformat.writes(notebook()))
    return folder


@pytest.mark.parametrize("kind", ["bwrap", "none"])
def test_a_kernel_that_dies_at_its_first_start_is_started_again(scratch: Path, kind: str) -> None:
    box = Sandbox(kind, scratch, Limits())
    try:
        with KernelSession(notebook(), box, Limits(), prelude=(DIES_ONCE,)) as kernel:
            run = kernel.run_notebook()
            assert kernel.call("double", (21,)) == 42
            assert kernel.restarts == 0          # not counted against the submission's restarts
    finally:
        box.close()
    assert not run.errors()
    [note] = run.notes
    assert note.startswith("the kernel failed to start (grader prelude failed in the kernel")
    assert "dying on purpose at the first start" in note and "started again" in note


def test_a_kernel_that_never_starts_is_an_error_with_its_last_words(scratch: Path) -> None:
    box = Sandbox("bwrap", scratch, Limits())
    try:
        with pytest.raises(RuntimeError) as raised:
            with KernelSession(notebook(), box, Limits(), prelude=(DIES_ALWAYS,)):
                pytest.fail("the session started")
    finally:
        box.close()
    message = str(raised.value)
    assert message.startswith("the kernel failed to start 2 times: grader prelude failed in the kernel")
    assert message.count("dying on purpose at every start") >= 2
