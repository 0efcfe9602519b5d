"""grading.py's pure parts, without a kernel: how an item's points are shared among its checks
(_shares), and what a student is told when a graded function is missing (_missing)."""

from __future__ import annotations

import nbformat
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.boundary import KernelFault, ProbeError
from grader.grading import _missing, _shares
from grader.notebook_runner import CellRun, NotebookRun
from grader.spec import Item


# -- shares -------------------------------------------------------------------------------------------
def cents(x: float) -> int:
    return round(x * 100)


points_in_cents = st.integers(min_value=0, max_value=100_000).map(lambda c: c / 100)
weights = st.lists(st.one_of(st.integers(0, 5).map(float), st.floats(0.01, 100)), min_size=1, max_size=12) \
    .filter(lambda ws: sum(ws) > 0)


@settings(max_examples=500, deadline=None)
@given(points=points_in_cents, weights=weights)
def test_shares_are_whole_hundredths_that_add_up_to_the_points_exactly(points, weights):
    shares = _shares(points, weights)
    assert len(shares) == len(weights)
    assert all(s >= 0 and abs(s * 100 - cents(s)) < 1e-6 for s in shares), shares
    assert sum(cents(s) for s in shares) == cents(points)
    assert round(sum(shares), 2) == points          # the score grading records (rounded to 0.01)


@settings(max_examples=500, deadline=None)
@given(points=points_in_cents, weights=weights)
def test_each_share_is_within_a_hundredth_of_its_exact_proportion(points, weights):
    total = sum(weights)
    for share, weight in zip(_shares(points, weights), weights):
        assert abs(share - points * weight / total) < 0.01 + 1e-9, (share, points * weight / total)


def test_six_equal_checks_of_one_point_are_worth_a_sixth_each():
    """mobilenet_transfer's alpaca_model: 1 point, 6 checks. The sixth got the rounding of the
    other five (0.15, not 0.17 or 0.16)."""
    shares = _shares(1.0, [1.0] * 6)
    assert sorted(cents(s) for s in shares) == [16, 16, 17, 17, 17, 17]
    assert _shares(10.0, [1.0, 1.0, 1.0]) in ([3.34, 3.33, 3.33], [3.33, 3.34, 3.33], [3.33, 3.33, 3.34])


def test_a_check_of_weight_zero_is_worth_nothing():
    assert _shares(10.0, [1.0, 0.0, 1.0]) == [5.0, 0.0, 5.0]


# -- missing functions -----------------------------------------------------------------------------------
class FakeKernel:
    """The one thing _missing asks a kernel: which of these names are defined."""

    def __init__(self, defined: set[str] | None = None, fault: BaseException | None = None):
        self.names, self.fault = defined or set(), fault

    def defined(self, names: list[str]) -> set[str]:
        if self.fault is not None:
            raise self.fault
        return {n for n in names if n in self.names}


def notebook(*sources: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Week 1")] + [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


ZERO_PAD = Item("zero_pad", 10.0)
NB = notebook("import numpy as np", "def zero_pad(X, pad):\n    return np.pad(X, pad)", "print(zero_pad)")


def test_nothing_is_missing_when_the_function_is_defined():
    assert _missing(ZERO_PAD, FakeKernel({"zero_pad"}), NotebookRun([CellRun(1), CellRun(2), CellRun(3)]), NB) is None


def test_a_deleted_function_is_told_so():
    nb = notebook("import numpy as np", "print('hello')")
    why = _missing(ZERO_PAD, FakeKernel(), NotebookRun([CellRun(1), CellRun(2)]), nb)
    assert why == ("zero_pad is not defined after running the notebook. "
                   "No cell contains `def zero_pad(`: was it renamed or deleted?")


def test_a_renamed_function_is_not_taken_for_the_graded_one():
    nb = notebook("def zero_pad_v2(X, pad):\n    return X", "def my_zero_pad(X, pad):\n    return X")
    why = _missing(ZERO_PAD, FakeKernel({"zero_pad_v2", "my_zero_pad"}), NotebookRun([CellRun(1), CellRun(2)]), nb)
    assert why is not None and "No cell contains `def zero_pad(`: was it renamed or deleted?" in why


def test_the_failed_cell_that_should_define_it_is_named_with_its_error():
    run = NotebookRun([CellRun(1), CellRun(2, error="SyntaxError: invalid syntax (line 3)"), CellRun(3)])
    why = _missing(ZERO_PAD, FakeKernel(), run, NB)
    assert why == ("zero_pad is not defined after running the notebook. The cell that defines it failed: "
                   "cell 2: SyntaxError: invalid syntax (line 3)")


def test_a_cell_that_killed_the_kernel_is_named_with_what_happened():
    run = NotebookRun([CellRun(1), CellRun(2, fatal="the kernel died (SIGKILL)")])
    why = _missing(ZERO_PAD, FakeKernel(), run, NB)
    assert why is not None and why.endswith("The cell that defines it failed: cell 2: the kernel died (SIGKILL)")


def test_a_cell_cut_off_by_the_time_limit_is_told_so():
    run = NotebookRun([CellRun(1)], skipped=[2, 3])
    why = _missing(ZERO_PAD, FakeKernel(), run, NB)
    assert why is not None and why.endswith("The cell that defines it was not run: the notebook's time limit was reached.")


def test_a_definition_that_ran_but_is_gone_says_only_that():
    """e.g. `del zero_pad` further down: no cell to blame."""
    why = _missing(ZERO_PAD, FakeKernel(), NotebookRun([CellRun(1), CellRun(2), CellRun(3)]), NB)
    assert why == "zero_pad is not defined after running the notebook."


def test_a_graded_cell_names_the_variable_it_must_set():
    """A top-level cell graded from the globals it leaves (spec `needs`): the first missing
    variable is named, as an assignment, not as a def."""
    item = Item("fine_tuning", 1.0, needs=("model2", "loss_function"))
    nb = notebook("model2 = build()", "optimizer = 'adam'")
    why = _missing(item, FakeKernel({"model2"}), NotebookRun([CellRun(1), CellRun(2)]), nb)
    assert why == ("loss_function is not defined after running the notebook. "
                   "No cell sets `loss_function = ...`: was it renamed or deleted?")


@pytest.mark.parametrize("fault", [KernelFault("the kernel died"), ProbeError("malformed answer")])
def test_a_kernel_that_cannot_answer_is_not_blamed_on_the_student(fault):
    why = _missing(ZERO_PAD, FakeKernel(fault=fault), NotebookRun(), NB)
    assert why == f"zero_pad could not be looked up in the kernel: {fault}"
