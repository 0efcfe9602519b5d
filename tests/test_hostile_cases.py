"""The hostile-notebook suite's cases (tests/hostile/cases.toml) are each real and checked, without
a kernel: every case is run by the slow suite (tests/test_hostile.py), states a verdict the runner
reads, names only graded functions, tests and limits that exist, builds into a notebook the grader
loads, and its code compiles, so no case passes because of a typo (a misspelt key is ignored by
the runner, a syntax error makes the hostile cell fail harmlessly, a wrong test name makes the
"contains" check look in the wrong place)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import nbformat
import pytest

from grader import notebook, spec
from grader.checks import check_name

from . import test_hostile
from .notebooks import SAMPLES
from .test_hostile import AS_USER, CASES, ITEMS, build

# The keys the runner reads (tests/test_hostile.py); the header of cases.toml documents them.
KEYS = {"base", "cells", "at", "failed", "status", "at_most_base", "contains", "notebook_error", "limits",
        "newlines_cell", "max_seconds", "scratch_removed", "as_user", "raw", "kernelspec"}
RAW = {"nested", "non_utf8", "enormous"}              # the generated files build() knows
PLACEHOLDERS = {"{PROJECT}", "{OTHER}", "{PORT}", "{CANARY}"}


@pytest.fixture(scope="module")
def exercise() -> spec.Exercise:
    return spec.load_exercise("conv_step_by_step")


def test_every_case_is_run_by_the_slow_suite():
    [mark] = [m for m in test_hostile.test_hostile_notebook_gets_its_verdict.pytestmark if m.name == "parametrize"]
    assert list(mark.args[1]) == sorted(CASES)
    assert set(AS_USER) <= set(CASES)
    assert [p.name for p in (Path(test_hostile.__file__).parent / "hostile").iterdir()] == ["cases.toml"]


def test_the_graded_functions_are_the_exercises(exercise):
    assert ITEMS == [item.name for item in exercise.items]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_states_one_verdict_in_the_runners_terms(name, exercise):
    case = CASES[name]
    assert set(case) <= KEYS, f"keys the runner does not read: {set(case) - KEYS}"
    verdicts = [key for key in ("status", "at_most_base", "failed") if key in case]
    assert len(verdicts) == 1, f"{name}: one of status / at_most_base / failed, not {verdicts}"
    if "status" in case:
        assert case["status"] == "ungradable"
    if "at_most_base" in case:
        assert case["at_most_base"] is True
    failed = case.get("failed", [])
    assert set(failed) <= set(ITEMS) and len(set(failed)) == len(failed), failed
    tests = {check_name(item, c.aspect) for item in ITEMS for c in exercise.checks.CHECKS[item]}
    for test_name, text in case.get("contains", {}).items():
        assert test_name in tests, f"{name}: no test {test_name!r}"
        assert test_name.split(": ")[0] in failed, f"{name}: a passing test has no feedback to contain {text!r}"
    for limit, value in case.get("limits", {}).items():
        assert limit in {f.name for f in fields(spec.Limits)} and spec.limit_problem(limit, value) is None, limit
    assert set(case.get("as_user", {})) <= {"status", "error"}
    if "raw" in case:
        assert case["raw"] in RAW and case.get("status") == "ungradable" and "cells" not in case
    else:
        assert case.get("cells") or "kernelspec" in case or "newlines_cell" in case, f"{name}: nothing hostile"


@pytest.mark.parametrize("name", sorted(n for n in CASES if "raw" not in CASES[n]))
def test_each_case_builds_a_loadable_notebook_with_its_code_compiling(name, tmp_path):
    case = CASES[name]
    canary = tmp_path / "canary"
    canary.mkdir()
    path = build(case, tmp_path, 4242, canary)
    nb = notebook.load(path)                                  # the grader accepts it as a notebook
    base = nbformat.read(SAMPLES / f"{case.get('base', 'correct')}.ipynb", as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    for cell in case.get("cells", []):
        assert set(re.findall(r"\{[A-Z]+\}", cell)) <= PLACEHOLDERS, cell
        filled = _filled(cell, tmp_path, canary)
        assert filled in code, f"{name}: the cell is not in the built notebook as written"
        compile(filled, f"{name} cell", "exec")               # a syntax error would make the case vacuous
    if "at" in case:
        assert 0 <= case["at"] < len(base.cells)
    assert len(nb.cells) == len(base.cells) + len(case.get("cells", [])) + ("newlines_cell" in case)


def _filled(cell: str, tmp_path: Path, canary: Path) -> str:
    """The cell as build() fills its placeholders (the project root, the other student's notebook,
    the listener's port, the canary folder)."""
    return (cell.replace("{PROJECT}", str(test_hostile.ROOT)).replace("{OTHER}", str(tmp_path / "other-student"
            / "submission.ipynb")).replace("{PORT}", "4242").replace("{CANARY}", str(canary)))
