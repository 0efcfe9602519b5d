"""Data an exercise declares reaches the kernel where the notebook looks for it, read-only.

A throwaway exercise folder (spec + checks + make script) declares a data folder and a data
file placed twice: beside the notebook and in the kernel's home (as Keras's download cache is).
Its one graded function reports what the kernel sees; the check compares that with the files.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import nbformat
import pytest

from grader import spec
from grader.grading import grade_submission

SPEC = """
[exercise]
checks = "checks.py"

[data]
folder = "things"
make = "make.py"

[data.files.weights]
standin = "made/weights.bin"
place = ["models/weights.bin", "~/.cache/models/weights.bin"]

[[items]]
name = "look"
points = 1
"""

MAKE = """
import argparse, pathlib
p = argparse.ArgumentParser(); p.add_argument("--out", type=pathlib.Path); out = p.parse_args().out
(out / "things").mkdir(parents=True); (out / "things" / "a.txt").write_text("folder stand-in")
(out / "made").mkdir(); (out / "made" / "weights.bin").write_text("weights stand-in")
"""

CHECKS = """
from grader.checks import Case, Check, Failure, call_student

def expect(student, ctx):
    got = call_student(student, "look", Case(()))
    wanted = {"folder": (ctx.data / "a.txt").read_text(), "beside": ctx.files["weights"].read_text(),
              "home": ctx.files["weights"].read_text(), "home_writable": True}
    if {k: got[k] for k in wanted} != wanted:
        raise Failure(f"saw {got}, expected {wanted}")

def read_only(student, ctx):
    if call_student(student, "look", Case(()))["data_writable"]:
        raise Failure("the kernel could write to its data files")

CHECKS = {"look": [Check("sees its data", run=expect), Check("read-only", run=read_only)]}
"""

LOOK = '''
import os

def look():
    def writable(path):
        try:
            with open(path, "a"):
                return True
        except OSError:
            return False
    home = os.path.expanduser("~")
    return {"folder": open("things/a.txt").read(), "beside": open("models/weights.bin").read(),
            "home": open(os.path.join(home, ".cache/models/weights.bin")).read(),
            "home_writable": os.access(os.path.join(home, ".cache"), os.W_OK),
            "data_writable": writable("models/weights.bin") or writable(os.path.join(home, ".cache/models/weights.bin"))}
'''


@pytest.fixture
def exercise(tmp_path, monkeypatch) -> spec.Exercise:
    root = tmp_path / "data_exercise"
    root.mkdir()
    (root / "spec.toml").write_text(SPEC)
    (root / "make.py").write_text(textwrap.dedent(MAKE))
    (root / "checks.py").write_text(textwrap.dedent(CHECKS))
    monkeypatch.setattr(spec, "DATA_CACHE", tmp_path / "cache")
    return spec.load_exercise(str(root))


@pytest.fixture
def notebook(tmp_path) -> Path:
    path = tmp_path / "submission.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(LOOK)]), str(path))
    return path


@pytest.mark.slow  # grades a notebook: starts a kernel
@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_stand_ins_are_made_once_and_placed_beside_the_notebook_and_in_its_home(exercise, notebook, sandbox, tmp_path):
    if sandbox == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    result = grade_submission(notebook, exercise, sandbox=sandbox)
    assert result.status == "graded", result.error
    assert result.tests[0].status == "passed", result.tests[0].output
    # Under bwrap the data is bound read-only; without a sandbox each kernel gets its own copies.
    assert result.tests[1].status == ("passed" if sandbox == "bwrap" else "failed")
    assert len(list((tmp_path / "cache" / "data_exercise").glob("standin-*/.complete"))) == 1


@pytest.mark.slow  # grades a notebook: starts a kernel
def test_the_instructors_copies_replace_the_stand_ins(exercise, notebook, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.txt").write_text("the instructor's folder")
    weights = tmp_path / "course_weights.h5"
    weights.write_text("the instructor's weights")
    folder, files = exercise.data.resolve(mine, {"weights": weights})
    assert (folder, files) == (mine, {"weights": weights})
    assert not (tmp_path / "cache").exists()  # nothing had to be made
    result = grade_submission(notebook, exercise, sandbox="none", data=mine, data_files={"weights": weights})
    assert result.tests[0].status == "passed", result.tests[0].output


def test_unknown_or_missing_data_files_are_usage_errors(exercise, tmp_path):
    with pytest.raises(spec.SpecError, match="reads no data file 'bias'.*its files: weights"):
        exercise.data.resolve(None, {"bias": tmp_path})
    with pytest.raises(spec.SpecError, match="--data-file weights=.*not a file"):
        exercise.data.resolve(None, {"weights": tmp_path / "nope.h5"})


def test_a_data_file_placed_outside_the_kernels_folders_is_refused(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "spec.toml").write_text(SPEC.replace('"models/weights.bin"', '"../../etc/weights.bin"'))
    (root / "checks.py").write_text(textwrap.dedent(CHECKS))
    with pytest.raises(spec.SpecError, match="placed outside the kernel's folders"):
        spec.load_exercise(str(root))


def test_stand_ins_are_made_once_per_version_of_their_script(exercise):
    folder, _ = exercise.data.resolve()
    assert (folder / "a.txt").read_text() == "folder stand-in"
    (folder / "a.txt").write_text("kept")  # made once: resolving again reuses the cache
    assert (exercise.data.resolve()[0] / "a.txt").read_text() == "kept"
    script = exercise.data.root / exercise.data.make
    script.write_text(script.read_text().replace("folder stand-in", "new stand-in"))
    again, _ = exercise.data.resolve()
    assert again != folder and (again / "a.txt").read_text() == "new stand-in"
