"""How a batch's grading processes start (grader/batch.py local_executor): forked from the command
line's process when nothing in it can be inherited half-done, else spawned."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from grader import batch

ROOT = Path(__file__).resolve().parent.parent


def in_fresh_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_a_fresh_single_threaded_process_may_fork():
    assert in_fresh_python("from grader.batch import can_fork; print(can_fork())").stdout.strip() == "True"


@pytest.mark.parametrize("state", [
    "import threading, time; threading.Thread(target=time.sleep, args=(5,), daemon=True).start()",
    "import zmq; zmq.Context.instance()",
    "import sys, types; sys.modules['torch'] = types.ModuleType('torch')",
])
def test_a_process_holding_threads_or_native_state_spawns(state):
    code = f"{state}\nfrom grader.batch import can_fork, local_executor\nprint(can_fork(), " \
           "local_executor(1, fork=True)._mp_context.get_start_method())"
    assert in_fresh_python(code).stdout.split() == ["False", "spawn"]


def test_inside_a_running_event_loop_it_spawns():
    async def inside() -> bool:
        return batch.can_fork()
    assert asyncio.run(inside()) is False


def test_this_test_process_with_a_second_thread_spawns_even_when_fork_is_asked():
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert batch.local_executor(1, fork=True)._mp_context.get_start_method() == "spawn"
    finally:
        stop.set()
        thread.join()


def test_without_fork_asked_it_spawns():
    assert in_fresh_python("from grader.batch import local_executor\n"
                           "print(local_executor(1)._mp_context.get_start_method())").stdout.strip() == "spawn"


FORKED = """
import os, sys
from pathlib import Path
from grader.batch import local_executor
from grader.library_log import library_log

def work():
    print("python stderr of the worker", file=sys.stderr)
    os.write(2, b"descriptor 2 of the worker\\n")
    return os.getpid()

with library_log(Path(sys.argv[1])):
    pool = local_executor(1, fork=True)
    pid = pool.submit(work).result()
    pool.shutdown()
print(pool._mp_context.get_start_method(), pid != os.getpid())
"""


def test_a_forked_workers_python_stderr_goes_to_the_library_log_as_a_spawned_ones_does(tmp_path):
    """The command line's sys.stderr is its terminal while descriptor 2 is the library log; a
    forked worker inherits that sys.stderr, so it is pointed back at descriptor 2."""
    log = tmp_path / "libraries.log"
    proc = subprocess.run([sys.executable, "-c", FORKED, str(log)], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.stdout.split() == ["fork", "True"], proc.stderr
    assert "worker" not in proc.stderr
    assert log.read_text().splitlines() == ["python stderr of the worker", "descriptor 2 of the worker"]
