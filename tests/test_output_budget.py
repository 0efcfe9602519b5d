"""What the kernel's messages may cost the grader (notebook_runner: message_size, the session's
OutputBudget, the per-cell cap), without a kernel: a flood is refused without being walked whole."""

from __future__ import annotations

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    c.record_timing = False          # as NotebookRunner.start and nbclient's execute_cell set them
    c.store_widget_state = False
    c.clear_before_next_output = False
    return c


def message(msg_type: str, content: dict) -> dict:
    """A message as nbclient receives it from the kernel (after JSON decoding)."""
    return {"msg_type": msg_type, "header": {"msg_type": msg_type}, "parent_header": {"msg_id": "p"},
            "content": content, "metadata": {}, "buffers": []}


MARKER = message_size(dict(nbformat.v4.new_output("stream", name="convgrade", text="[output truncated]\n")))


def held(outs: list) -> int:
    return message_size(list(outs))


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


def test_a_display_update_does_not_rewrite_what_a_cell_holds():
    """update_display_data (and display_data with a display_id already shown) would replace the
    data of stored outputs, in any cell, without passing the per-cell cap: not applied."""
    c = client(64 << 20)
    c.nb.cells.append(nbformat.v4.new_code_cell())
    cell = c.nb.cells[0]
    shown = {"data": {"text/plain": "a"}, "metadata": {}, "transient": {"display_id": "d"}}
    c.process_message(message("display_data", shown), cell, 0)
    before = held(cell.outputs)
    big = {"data": {"text/plain": "x" * (4 << 20)}, "metadata": {}, "transient": {"display_id": "d"}}
    c.process_message(message("update_display_data", big), cell, 0)
    c.process_message(message("display_data", big), cell, 0)   # refused by the cap: marker only
    assert held(cell.outputs) <= MAX_CELL_OUTPUT_BYTES
    assert cell.outputs[0]["data"] == {"text/plain": "a"} and held(cell.outputs[:1]) == before


@pytest.mark.parametrize("count", [["y" * 1000] * 100, 10**40, -1, True, 1.5, "3"])
def test_an_execution_count_that_is_not_a_small_number_is_not_kept(count):
    """nbclient stores any message's execution_count on the cell, status messages' too (which the
    session budget does not count)."""
    c = client(1000)
    cell = nbformat.v4.new_code_cell()
    c.process_message(message("status", {"execution_state": "busy", "execution_count": count}), cell, 0)
    assert cell["execution_count"] is None


def test_a_small_execution_count_is_kept():
    c = client(1000)
    cell = nbformat.v4.new_code_cell()
    c.process_message(message("status", {"execution_state": "busy", "execution_count": 7}), cell, 0)
    assert cell["execution_count"] == 7


def test_big_integers_count_by_their_size():
    assert message_size([10**4000]) > 56 + 4000 * 3.32 / 8


def test_the_outputs_a_cell_holds_are_not_counted_again_for_each_new_one(monkeypatch):
    c = client(64 << 20)
    cell = nbformat.v4.new_code_cell()
    walked = []
    real = notebook_runner.message_size
    monkeypatch.setattr(notebook_runner, "message_size",
                        lambda value, *a, **k: (walked.append(len(value)) if isinstance(value, list) else None)
                        or real(value, *a, **k))
    for i in range(200):
        c.output(cell.outputs, message("stream", {"name": "stdout", "text": f"line {i}\n"}), None, 0)
    assert len(cell.outputs) == 200
    assert len(walked) <= 1, walked   # (the first output finds an empty list)


def test_a_waiting_clear_makes_room_for_the_output_that_replaces_it():
    """clear_output(wait=True) then a new output (a progress bar): the cleared outputs do not count."""
    c = client(64 << 20)
    cell = nbformat.v4.new_code_cell()
    c.output(cell.outputs, message("stream", {"name": "stdout", "text": "a" * 200_000}), None, 0)
    c.clear_output(cell.outputs, message("clear_output", {"wait": True}), 0)
    c.output(cell.outputs, message("stream", {"name": "stdout", "text": "b" * 100_000}), None, 0)
    assert [o["text"][0] for o in cell.outputs] == ["b"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 120_000), st.just("clear"), st.just("clear-wait")), max_size=25))
def test_a_cell_never_holds_more_than_its_cap_and_one_marker(events):
    c = client(64 << 20)
    cell = nbformat.v4.new_code_cell()
    for event in events:
        if event == "clear":
            c.clear_output(cell.outputs, message("clear_output", {"wait": False}), 0)
        elif event == "clear-wait":
            c.clear_output(cell.outputs, message("clear_output", {"wait": True}), 0)
        else:
            c.output(cell.outputs, message("stream", {"name": "stdout", "text": "x" * event}), None, 0)
        assert held(cell.outputs) <= MAX_CELL_OUTPUT_BYTES + MARKER, held(cell.outputs)


def test_markers_between_small_outputs_count_against_the_cap():
    c = client(64 << 20)
    cell = nbformat.v4.new_code_cell()
    for _ in range(3000):   # refused (a marker), accepted, refused (a marker), ...
        c.output(cell.outputs, message("stream", {"name": "stdout", "text": "z" * (MAX_CELL_OUTPUT_BYTES + 1)}), None, 0)
        c.output(cell.outputs, message("stream", {"name": "stderr", "text": ""}), None, 0)
    assert held(cell.outputs) <= MAX_CELL_OUTPUT_BYTES + MARKER
    assert cell.outputs[-1]["name"] == "convgrade"
