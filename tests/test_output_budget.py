"""What the kernel's messages may cost the grader (notebook_runner: message_size, the session's
OutputBudget, the per-cell cap), without a kernel: a flood is refused without being walked whole."""

from __future__ import annotations

import nbformat
import pytest

from grader import notebook_runner
from grader.notebook_runner import MAX_CELL_OUTPUT_BYTES, OutputBudget, _CappedClient, message_size


class Tripwire(dict):
    """A node the size count must never reach: walking into it (its keys) fails the test."""

    def keys(self):  # type: ignore[override]
        raise AssertionError("the size count walked on past its limit")


def test_sizes_count_strings_by_length_and_every_container_as_a_python_object():
    assert message_size([]) == 56
    assert message_size([[], []]) == 56 * 3
    assert message_size({"a": "xy"}) == 64 + (1 + 16) + (2 + 16)
    assert message_size({"n": 1}) == 64 + (1 + 16) + 16
    assert message_size({}, buffers=[b"12345", b"678"]) == 8 + 64


def test_a_limit_changes_nothing_below_it():
    content = {"data": {"text/plain": "x" * 500}, "metadata": {}, "list": [[], [1, 2]]}
    exact = message_size(content)
    assert message_size(content, limit=exact) == exact
    assert message_size(content, limit=10 * exact) == exact


def test_past_its_limit_the_count_stops_without_walking_the_rest():
    content = [Tripwire(), "x" * 1000]   # walked last first: the string passes the limit
    size = message_size(content, limit=100)
    assert size > 100
    with pytest.raises(AssertionError, match="walked on past"):
        message_size(content)            # (without a limit it would go on)


def client(budget: int) -> _CappedClient:
    c = _CappedClient(nbformat.v4.new_notebook())
    c.budget = OutputBudget(budget)
    return c


def stream(text: str) -> dict:
    return {"msg_type": "stream", "content": {"name": "stdout", "text": text}}


def test_a_message_past_the_session_budget_is_dropped_and_spends_it():
    c = client(1000)
    assert c.process_message(stream("x" * 2000), nbformat.v4.new_code_cell(), 0) is None
    assert c.budget.spent


def test_once_the_budget_is_spent_messages_are_dropped_unread(monkeypatch):
    c = client(1000)
    c.process_message(stream("x" * 2000), nbformat.v4.new_code_cell(), 0)
    sized = []
    monkeypatch.setattr(notebook_runner, "message_size", lambda *a, **k: sized.append(a) or 0)
    flood = {"msg_type": "display_data", "content": Tripwire()}
    assert c.process_message(flood, nbformat.v4.new_code_cell(), 0) is None
    assert sized == []


def test_a_cell_past_its_output_cap_is_marked_truncated_without_sizing_the_new_output():
    c = client(10 * MAX_CELL_OUTPUT_BYTES)
    outs = [nbformat.v4.new_output("stream", name="stdout", text="x" * MAX_CELL_OUTPUT_BYTES)]
    assert c.output(outs, {"msg_type": "display_data", "content": Tripwire()}, None, 0) is None
    assert outs[-1]["name"] == "convgrade" and outs[-1]["text"] == "[output truncated]\n"
    assert c.output(outs, {"msg_type": "display_data", "content": Tripwire()}, None, 0) is None
    assert len(outs) == 2   # marked once
