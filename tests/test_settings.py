"""A run's settings (grader/settings.py): built and validated once, hashed into the provenance.

Fast: no kernel. The settings' hash is what a stored result is current for, so every field that
can change a score must change it, and where things lie must not.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grader import batch, spec
from grader.gradebook import Gradebook
from grader.results import SubmissionResult
from grader.settings import RunSettings, SettingsError, build_settings, exercise_digest, reference_files

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def exercise() -> spec.Exercise:
    return spec.load_exercise("conv_step_by_step")


@pytest.fixture(scope="module")
def settings(exercise) -> RunSettings:
    return build_settings(exercise, sandbox="none")


def changed(value):
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value * 2 + 1
    raise TypeError(value)


def variants(s: RunSettings) -> dict[str, list[RunSettings]]:
    """For every field, settings that differ from `s` in that field alone (every sub-field of the
    limits and the tolerance apart)."""
    other = Path("/elsewhere")
    return {
        "exercise": [dataclasses.replace(s, exercise="another_exercise")],
        "exercise_root": [dataclasses.replace(s, exercise_root=other)],
        "exercise_digest": [dataclasses.replace(s, exercise_digest="0" * 16)],
        "sandbox": [dataclasses.replace(s, sandbox="bwrap" if s.sandbox == "none" else "none")],
        "limits": [dataclasses.replace(s, limits=dataclasses.replace(s.limits, **{f.name: changed(getattr(s.limits, f.name))}))
                   for f in dataclasses.fields(s.limits)],
        "device": [dataclasses.replace(s, device="gpu")],
        "tolerance": [dataclasses.replace(s, tolerance=dataclasses.replace(s.tolerance, **{f.name: changed(getattr(s.tolerance, f.name))}))
                      for f in dataclasses.fields(s.tolerance)],
        "max_examples": [dataclasses.replace(s, max_examples=s.max_examples + 1)],
        "data": [dataclasses.replace(s, data=other)],
        "data_files": [dataclasses.replace(s, data_files=(("weights", other),))],
        "data_digest": [dataclasses.replace(s, data_digest="1" * 16)],
        "file_digests": [dataclasses.replace(s, file_digests=(("weights", "2" * 16),))],
        "standins": [dataclasses.replace(s, standins=("data", "weights"))],
        "public_only": [dataclasses.replace(s, public_only=not s.public_only)],
    }


def test_every_setting_changes_the_hash_and_where_things_lie_does_not(settings):
    cases = variants(settings)
    assert set(cases) == {f.name for f in dataclasses.fields(RunSettings)}, "a new field needs its variant here"
    for name, others in cases.items():
        for other in others:
            assert other != settings
            if name in RunSettings.LOCATIONS:  # the same content elsewhere: the same settings
                assert other.hash == settings.hash, name
            else:
                assert other.hash != settings.hash, (name, other)
                assert other.canonical() != settings.canonical()


def test_equal_settings_hash_equal_in_another_process(settings):
    """The hash is a digest of canonical JSON, not Python's hash(): a worker process (other
    PYTHONHASHSEED) computes the same one from the pickled settings."""
    assert pickle.loads(pickle.dumps(settings)) == settings
    twin = dataclasses.replace(settings, limits=dataclasses.replace(settings.limits, cell_timeout=float(settings.limits.cell_timeout)))
    assert twin.hash == settings.hash  # 60 (spec.toml) and 60.0 (the command line) are one limit
    code = "import pickle, sys; print(pickle.load(sys.stdin.buffer).hash)"
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(settings), capture_output=True,
                             cwd=ROOT, env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}, timeout=120)
        assert out.returncode == 0, out.stderr.decode()
        assert out.stdout.decode().strip() == settings.hash


def test_the_exercise_is_hashed_by_content_not_place(exercise, tmp_path):
    copy = shutil.copytree(exercise.root, tmp_path / "copy", ignore=shutil.ignore_patterns("__pycache__", "samples"))
    assert exercise_digest(spec.load_exercise(str(copy))) == exercise_digest(exercise)
    (copy / "spec.toml").write_text((copy / "spec.toml").read_text().replace("max_examples = 25", "max_examples = 26"))
    assert exercise_digest(spec.load_exercise(str(copy))) != exercise_digest(exercise)
    assert [p.name for p in reference_files(exercise)] == ["conv_step_by_step.py"]


def test_build_settings_validates_once(exercise):
    with pytest.raises(SettingsError, match="reads no data"):
        build_settings(exercise, data=Path("/tmp"))
    with pytest.raises(SettingsError, match="--cell-timeout -1.*must be"):
        build_settings(exercise, limits=exercise.limits.replace(cell_timeout=-1.0))
    with pytest.raises(SettingsError, match="unknown sandbox"):
        build_settings(exercise, sandbox="docker")
    with pytest.raises(SettingsError, match="unknown device"):
        build_settings(exercise, device="tpu")
    made = build_settings(exercise, sandbox="none", limits=exercise.limits.replace(max_restarts=0))
    assert made.limits.max_restarts == 0 and made.device == "cpu" and made.tolerance == exercise.tolerance


def test_the_gradebook_records_the_settings_hash_and_json(tmp_path, exercise, settings, monkeypatch):
    seen: list[RunSettings] = []

    def grade_one(run: RunSettings, path: str, student: str) -> SubmissionResult:
        seen.append(run)
        return SubmissionResult(path, "graded", 1.0, 70.0, student=student)

    monkeypatch.setattr(batch, "grade_one", grade_one)
    (tmp_path / "a.ipynb").write_text("a")
    with Gradebook(tmp_path / "g.sqlite") as book, ThreadPoolExecutor(1) as pool:
        batch.run_batch(exercise, batch.discover([tmp_path]), book, settings, executor=pool)
        row = book._db.execute("SELECT spec_hash, settings FROM submissions").fetchone()
    assert seen == [settings]  # passed whole to the worker
    assert row[0] == settings.hash
    assert json.loads(row[1]) == json.loads(settings.canonical()) and json.loads(row[1])["sandbox"] == "none"


def test_settings_and_loose_options_are_not_mixed(tmp_path, exercise, settings):
    with Gradebook(tmp_path / "g.sqlite") as book, pytest.raises(TypeError, match="settings hold them"):
        batch.run_batch(exercise, [], book, settings, sandbox="bwrap")
