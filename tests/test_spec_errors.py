"""An instructor's broken exercise folder is refused by load_exercise with a SpecError that
names the file and the problem, before anything is graded; never a KeyError or TypeError from
deep inside, and never accepted silently (a typo'd table or key would otherwise be ignored and
the exercise graded with defaults the instructor did not mean)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader.spec import SpecError, load_exercise

GOOD_SPEC = """
[exercise]
title = "Two functions"

[limits]
cell_timeout = 30
memory_mb = 2048

[tolerance]
rtol = 1e-5
atol = 1e-7

[tolerance.gpu]
rtol = 1e-3
atol = 1e-5

[property]
max_examples = 10

[kernel]
env = { TF_USE_LEGACY_KERAS = "1" }

[[items]]
name = "f"
points = 10

[[items]]
name = "g"
points = 2.5
"""

GOOD_CHECKS = """
from grader.checks import Check

def ok(student, ctx):
    pass

CHECKS = {"f": [Check("works", run=ok), Check("also", run=ok, weight=2)], "g": [Check("works", run=ok)]}
"""


def exercise_folder(tmp_path: Path, spec: str = GOOD_SPEC, checks: str = GOOD_CHECKS) -> Path:
    root = tmp_path / "broken_exercise"
    root.mkdir()
    (root / "spec.toml").write_text(textwrap.dedent(spec))
    (root / "checks.py").write_text(textwrap.dedent(checks))
    return root


def test_the_good_folder_loads(tmp_path):
    exercise = load_exercise(str(exercise_folder(tmp_path)))
    assert [(i.name, i.points) for i in exercise.items] == [("f", 10.0), ("g", 2.5)]
    assert exercise.limits.cell_timeout == 30 and exercise.limits.memory_mb == 2048
    assert exercise.tolerance_for("gpu").rtol == 1e-3 and exercise.tolerance_for("cpu").rtol == 1e-5
    assert exercise.max_examples == 10 and exercise.kernel_env == {"TF_USE_LEGACY_KERAS": "1"}


# (what is changed in the good spec, what the message must name)
BROKEN_SPECS = {
    "points missing": (('name = "g"\npoints = 2.5', 'name = "g"'), ["[[items]]", "g", "points"]),
    "points not a number": (("points = 2.5", 'points = "2.5"'), ["g", "points", "'2.5'"]),
    "points negative": (("points = 2.5", "points = -1"), ["g", "points", "-1"]),
    "points finer than a hundredth": (("points = 2.5", "points = 2.505"), ["g", "points", "2.505"]),
    "item without a name": (('name = "g"\n', ""), ["[[items]]", "name"]),
    "item named twice": (('name = "g"', 'name = "f"'), ["f", "twice"]),
    "unknown key in an item": (("points = 2.5", "points = 2.5\npoint = 3"), ["g", "point"]),
    "unknown table": (("[property]", "[propery]"), ["propery"]),
    "unknown limit": (("memory_mb = 2048", "memory_mb = 2048\nmemory_gb = 2"), ["[limits]", "memory_gb"]),
    "limit not a number": (("cell_timeout = 30", 'cell_timeout = "30s"'), ["cell_timeout", "'30s'"]),
    "limit not positive": (("cell_timeout = 30", "cell_timeout = 0"), ["cell_timeout", "0"]),
    "unknown tolerance": (("atol = 1e-7\n", "atol = 1e-7\nrtol_gpu = 1e-3\n"), ["[tolerance]", "rtol_gpu"]),
    "tolerance not a number": (("rtol = 1e-5", 'rtol = "tight"'), ["rtol", "'tight'"]),
    "tolerance negative": (("atol = 1e-7", "atol = -1e-7"), ["atol", "-1e-07"]),
    "unknown device tolerance key": (("rtol = 1e-3", "rtl = 1e-3"), ["[tolerance.gpu]", "rtl"]),
    "max_examples not a whole number": (("max_examples = 10", "max_examples = 2.5"), ["max_examples", "2.5"]),
    "make_reads not a list": (("[kernel]", '[data]\nfolder = "d"\nmake = "m.py"\nmake_reads = "w.npz"\n\n[kernel]'),
                              ["make_reads", "list"]),
    "make_reads outside the folder": (("[kernel]", '[data]\nfolder = "d"\nmake_reads = ["../w.npz"]\n\n[kernel]'),
                                      ["make_reads", "../w.npz"]),
    "unknown exercise key": (('title = "Two functions"', 'title = "Two functions"\nhelper = "helpers"'),
                             ["[exercise]", "helper"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN_SPECS))
def test_a_broken_spec_is_refused_naming_the_problem(case, tmp_path):
    (old, new), named = BROKEN_SPECS[case]
    assert GOOD_SPEC.count(old) >= 1, old
    root = exercise_folder(tmp_path, GOOD_SPEC.replace(old, new, 1))
    with pytest.raises(SpecError) as raised:
        load_exercise(str(root))
    message = str(raised.value)
    assert "spec.toml" in message and all(part in message for part in named), message


# (what is changed in the good checks.py, what the message must name)
BROKEN_CHECKS = {
    "a check for an item the spec lacks": (('"g": [Check("works", run=ok)]', '"h": [Check("works", run=ok)]'),
                                           ["h", "g"]),
    "an item without checks": (('"g": [Check("works", run=ok)]', '"g": []'), ["g", "no checks"]),
    "a negative weight": (("weight=2", "weight=-1"), ["f: also", "weight", "-1"]),
    "weights of nothing": (('Check("works", run=ok), Check("also", run=ok, weight=2)',
                            'Check("works", run=ok, weight=0)'), ["f", "weight"]),
    "no CHECKS at all": (("CHECKS = ", "CHEKS = "), ["CHECKS"]),
    "checks.py that does not import": (("from grader.checks import Check", "from grader.checks import Chek"),
                                       ["checks.py", "ImportError"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN_CHECKS))
def test_broken_checks_are_refused_naming_the_problem(case, tmp_path):
    (old, new), named = BROKEN_CHECKS[case]
    assert GOOD_CHECKS.count(old) == 1, old
    root = exercise_folder(tmp_path, checks=GOOD_CHECKS.replace(old, new))
    with pytest.raises(SpecError) as raised:
        load_exercise(str(root))
    message = str(raised.value)
    assert "checks.py" in message and all(part in message for part in named), message


def test_a_missing_prelude_file_is_refused_by_name(tmp_path):
    root = exercise_folder(tmp_path, GOOD_SPEC.replace("[kernel]\n", '[kernel]\nprelude = ["prelude.py"]\n'))
    with pytest.raises(SpecError, match="prelude.py"):
        load_exercise(str(root))


@pytest.mark.parametrize("preload", ['"numpy"', '["numpy", "--help"]', '["os; import x"]', '[3]'])
def test_a_preload_that_is_not_module_names_is_refused(tmp_path, preload):
    root = exercise_folder(tmp_path, GOOD_SPEC.replace("[kernel]\n", f"[kernel]\npreload = {preload}\n"))
    with pytest.raises(SpecError, match=r"\[kernel\] preload"):
        load_exercise(str(root))


def test_module_names_to_preload_are_kept(tmp_path):
    root = exercise_folder(tmp_path, GOOD_SPEC.replace("[kernel]\n", '[kernel]\npreload = ["numpy", "matplotlib.pyplot"]\n'))
    assert load_exercise(str(root)).kernel_preload == ("numpy", "matplotlib.pyplot")


def test_a_spec_that_is_not_toml_is_refused_with_the_line(tmp_path):
    root = exercise_folder(tmp_path, GOOD_SPEC.replace("[limits]", "[limits"))
    with pytest.raises(SpecError, match=r"spec.toml.*line"):
        load_exercise(str(root))


def test_every_bundled_exercise_still_loads():
    from grader.spec import available

    for name in available():
        assert load_exercise(name).items
