"""When a started kernel counts as ready (NotebookRunner._async_wait_ready): its kernel_info reply
on the shell channel and, after it, its status on IOPub (so the client's subscription has joined).
A fake client and manager stand in for the kernel: the timing is the point, not the kernel."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from queue import Empty

import nbformat
import pytest

from grader.notebook_runner import IOPUB_JOIN_SECONDS, NotebookRunner
from grader.sandbox import Sandbox
from grader.spec import Limits


class FakeClient:
    """Answers each kernel_info on the shell channel after `reply_after` requests; its IOPub
    subscription joins after `joins_after` requests (the status of earlier ones is lost)."""

    def __init__(self, reply_after: int = 1, joins_after: int = 1, alive: bool = True):
        self.reply_after, self.joins_after, self.alive = reply_after, joins_after, alive
        self.asked, self.shell, self.iopub, self.iopub_waits = 0, [], [], []
        self.handled = None

    def kernel_info(self) -> str:
        self.asked += 1
        if self.asked >= self.reply_after:
            self.shell.append({"msg_type": "kernel_info_reply", "content": {"protocol_version": "5.3"}})
            if self.asked >= self.joins_after:
                self.iopub.append({"msg_type": "status"})
        return f"id{self.asked}"

    async def get_shell_msg(self, timeout: float) -> dict:
        if not self.shell:
            await asyncio.sleep(min(timeout, 0.01))
            raise Empty
        return self.shell.pop(0)

    async def get_iopub_msg(self, timeout: float) -> dict:
        self.iopub_waits.append(timeout)
        if not self.iopub:
            await asyncio.sleep(timeout)
            raise Empty
        return self.iopub.pop(0)

    def _handle_kernel_info_reply(self, msg: dict) -> None:
        self.handled = msg


class FakeManager:
    def __init__(self, client: FakeClient):
        self.client = client

    async def is_alive(self) -> bool:
        return self.client.alive


def runner_with(client: FakeClient, tmp_path) -> NotebookRunner:
    scratch = Path(tempfile.mkdtemp(dir=tmp_path))   # a sandbox (never started) of its own
    runner = NotebookRunner(nbformat.v4.new_notebook(), Sandbox("none", scratch, Limits()), Limits())
    runner._km = FakeManager(client)
    return runner


def wait(runner: NotebookRunner, client: FakeClient, timeout: float = 5.0) -> None:
    asyncio.run(runner._async_wait_ready(client, timeout))


def test_a_kernel_whose_iopub_has_joined_is_ready_at_its_first_reply(tmp_path):
    client = FakeClient()
    wait(runner_with(client, tmp_path), client)
    assert client.asked == 1 and client.handled is not None
    # one short wait for the status, none for IOPub to fall silent (jupyter_client's wait_for_ready
    # waits 0.2 s for the status, then 0.2 s more for silence: about half of a forked kernel's start)
    assert client.iopub_waits == [IOPUB_JOIN_SECONDS]


def test_while_iopub_has_not_joined_it_asks_again_waiting_longer_each_time(tmp_path):
    client = FakeClient(joins_after=4)
    wait(runner_with(client, tmp_path), client)
    assert client.asked == 4 and client.handled is not None
    assert client.iopub_waits[:3] == [IOPUB_JOIN_SECONDS, 2 * IOPUB_JOIN_SECONDS, 4 * IOPUB_JOIN_SECONDS]
    assert max(client.iopub_waits) <= 0.2


def test_a_kernel_that_replies_late_is_waited_for(tmp_path):
    client = FakeClient(reply_after=3, joins_after=3)
    wait(runner_with(client, tmp_path), client)
    assert client.asked == 3 and client.handled is not None


def test_a_dead_kernel_is_an_error_not_a_wait(tmp_path):
    client = FakeClient(reply_after=10**9, alive=False)
    with pytest.raises(RuntimeError, match="died before replying to kernel_info"):
        wait(runner_with(client, tmp_path), client)
    assert client.asked == 1


def test_a_kernel_that_never_answers_fails_at_the_timeout(tmp_path):
    client = FakeClient(reply_after=10**9)
    with pytest.raises(RuntimeError, match="didn't respond in 0.5 seconds"):
        wait(runner_with(client, tmp_path), client, timeout=0.5)
    client = FakeClient(joins_after=10**9)   # answers, but its status never reaches IOPub
    with pytest.raises(RuntimeError, match="didn't respond"):
        wait(runner_with(client, tmp_path), client, timeout=0.5)
    assert client.asked < 15   # asked again at a slowing pace, not in a busy loop
