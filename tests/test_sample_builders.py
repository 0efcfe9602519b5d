"""Every bundled sample is exactly what its exercise's samples/build_samples.py writes.

The scripts are run on a copy of exercises/, so a sample edited by hand (or a script changed
without regenerating) shows up here, named.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from grader import spec

SCRIPTS = sorted(spec.EXERCISES_DIR.glob("*/samples/build_samples.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.parent.parent.name for s in SCRIPTS])
def test_samples_are_what_the_build_script_writes(script, tmp_path):
    copy = tmp_path / "exercises"
    shutil.copytree(spec.EXERCISES_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    samples = script.parent
    copied_samples = copy / samples.relative_to(spec.EXERCISES_DIR)
    for notebook in copied_samples.glob("*.ipynb"):
        notebook.unlink()
    subprocess.run([sys.executable, str(copied_samples / "build_samples.py")], check=True, capture_output=True)
    built = {p.name: p.read_bytes() for p in copied_samples.glob("*.ipynb")}
    bundled = {p.name: p.read_bytes() for p in samples.glob("*.ipynb")}
    assert sorted(built) == sorted(bundled)
    assert [name for name in sorted(bundled) if built[name] != bundled[name]] == []
