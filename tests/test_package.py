"""The installable package: the `convgrade` command, exercises found as package data or in
--exercises DIR, the data cache outside the checkout, the settings line in reports."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import grade
from grader import spec

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = spec.EXERCISES_DIR / "conv_step_by_step" / "samples"


def test_python_m_convgrade_runs_from_outside_the_checkout(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    out = subprocess.run([sys.executable, "-m", "convgrade", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: python -m convgrade") and "--exercises DIR" in out.stdout
    assert "check NOTEBOOK" in out.stdout and "merge OUT IN..." in out.stdout
    check = subprocess.run([sys.executable, "-m", "convgrade", "check", "--help"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0 and "public checks" in check.stdout


def course_folder(tmp_path: Path) -> Path:
    """An instructor's exercise folder: a renamed copy of conv_step_by_step, and a conv_step_by_step
    of their own (another title) that shadows the bundled one."""
    course = tmp_path / "course"
    ignore = shutil.ignore_patterns("__pycache__", "samples")
    shutil.copytree(spec.EXERCISES_DIR / "conv_step_by_step", course / "my_conv", ignore=ignore)
    shadow = shutil.copytree(spec.EXERCISES_DIR / "conv_step_by_step", course / "conv_step_by_step", ignore=ignore)
    toml = shadow / "spec.toml"
    toml.write_text(re.sub(r'(?m)^title = .*$', 'title = "Our own step by step"', toml.read_text()))
    return course


def test_exercises_are_found_in_the_folders_given_first(tmp_path):
    course = course_folder(tmp_path)
    dirs = spec.exercise_dirs([course], environ={})
    assert dirs == (course, spec.EXERCISES_DIR)
    assert {"my_conv", "conv_step_by_step", "resnet50"} <= set(spec.available(dirs))
    assert spec.load_exercise("my_conv", dirs).root == course / "my_conv"
    assert spec.load_exercise("conv_step_by_step", dirs).title == "Our own step by step"
    assert spec.load_exercise("resnet50", dirs).root == spec.EXERCISES_DIR / "resnet50"
    other = tmp_path / "other"
    other.mkdir()
    listed = spec.exercise_dirs([], environ={"CONVGRADE_EXERCISES": os.pathsep.join([str(other), str(course)])})
    assert listed == (other, course, spec.EXERCISES_DIR)
    with pytest.raises(spec.SpecError, match="no exercise 'my_conv'"):
        spec.load_exercise("my_conv")


def test_grading_with_an_exercise_of_an_exercises_folder(tmp_path, capsys):
    """`--exercises DIR --exercise NAME`: graded, recorded and reported under that exercise, with
    the settings line in the terminal and in the class report, and in the gradebook."""
    course = course_folder(tmp_path)
    out = tmp_path / "out"
    code = grade.main(["--exercises", str(course), "--exercise", "my_conv", str(SAMPLES / "not_a_notebook.ipynb"),
                       "--json", str(out / "r.json"), "--report", str(out / "report.html"), "--quiet",
                       "--gradebook", str(tmp_path / "g.sqlite"), "--sandbox", "none", "--memory-mb", "1234"])
    terminal = capsys.readouterr().out
    assert code == 0, terminal
    assert json.loads((out / "r.json").read_text())["exercise"] == "my_conv"
    book = sqlite3.connect(tmp_path / "g.sqlite")
    exercise, settings_hash, recorded = book.execute("SELECT exercise, spec_hash, settings FROM submissions").fetchone()
    assert exercise == "my_conv" and json.loads(recorded)["limits"]["memory_mb"] == 1234
    line = next(x for x in terminal.splitlines() if x.startswith("Settings "))
    assert line.startswith(f"Settings {settings_hash}: exercise my_conv") and "sandbox none" in line
    report = (out / "report.html").read_text()
    assert f'id="settings">Settings {settings_hash}: exercise my_conv' in report and "memory_mb=1234" in report


def test_an_exercises_option_that_is_not_a_folder_is_a_usage_error(tmp_path, capsys):
    code = grade.main(["--exercises", str(tmp_path / "nowhere"), "--exercise", "conv_step_by_step",
                       str(SAMPLES / "truncated.ipynb"), "--gradebook", str(tmp_path / "g.sqlite")])
    assert code == 2 and "not a folder" in capsys.readouterr().out
    assert not (tmp_path / "g.sqlite").exists()


def test_the_data_cache_is_the_checkouts_or_the_users(monkeypatch, tmp_path):
    assert spec.cache_dir({}) == ROOT / ".data-cache"  # `make demo` in a checkout: as it always was
    assert spec.cache_dir({"CONVGRADE_CACHE": str(tmp_path)}) == tmp_path
    monkeypatch.setattr(spec, "checkout", lambda: None)  # installed in site-packages
    assert spec.cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "convgrade"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert spec.cache_dir({}) == tmp_path / "home" / ".cache" / "convgrade"


@pytest.mark.slow
def test_the_wheel_holds_the_exercises_the_kernel_side_and_the_command(tmp_path):
    """A wheel built from the sources (no network, no install) ships every file of exercises/ as
    convgrade_exercises, grader/kernel_side's code and the `convgrade` entry point."""
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for part in ("grader", "reference", "convgrade", "exercises"):
        shutil.copytree(ROOT / part, source / part, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", source)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                            "-q", "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True,
                           timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = zipfile.ZipFile(next((tmp_path / "dist").glob("convgrade-*.whl")))
    names = set(wheel.namelist())
    exercises = {f"convgrade_exercises/{p.relative_to(source / 'exercises').as_posix()}"
                 for p in (source / "exercises").rglob("*") if p.is_file()}
    assert "convgrade_exercises/conv_step_by_step/spec.toml" in exercises
    assert exercises <= names, sorted(exercises - names)
    kernel_side = {f"grader/kernel_side/{p.name}" for p in (ROOT / "grader" / "kernel_side").glob("*.py")}
    assert kernel_side and kernel_side <= names
    assert {"convgrade/__main__.py", "convgrade/cli.py", "grader/settings.py", "reference/resnet50.py"} <= names
    assert not [n for n in names if "__pycache__" in n]
    entry_points = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert re.search(r"(?m)^convgrade = convgrade\.cli:run$", entry_points)
