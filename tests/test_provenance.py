"""The settings hash a stored result is current for (settings.RunSettings.hash, the provenance's
spec_hash): it changes with whatever can change a score (the data's and data files' bytes, the
exercise's files, limits, sandbox) and with nothing else (where the files lie, their times, the
names an instructor's copy happens to have), so a class is regraded exactly when it must be.
No kernel: a small exercise with data is written to tmp_path."""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest

from grader import sandbox
from grader.settings import build_settings
from grader.spec import Exercise, load_exercise

SPEC = """
[exercise]
title = "Reads data"

[data]
folder = "datasets"

[data.files.weights]
standin = "weights.h5"
place = ["weights.h5"]

[[items]]
name = "f"
points = 10
"""

CHECKS = """
from grader.checks import Check

CHECKS = {"f": [Check("works", run=lambda student, ctx: None)]}
"""


@pytest.fixture
def world(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """An exercise, an instructor's data folder and weights file; bwrap counted as installed
    (nothing is started here)."""
    real_which = shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name, *a, **k: f"/usr/bin/{name}" if name == "bwrap"
                        else real_which(name, *a, **k))
    root = tmp_path / "course" / "reads_data"
    root.mkdir(parents=True)
    (root / "spec.toml").write_text(textwrap.dedent(SPEC))
    (root / "checks.py").write_text(textwrap.dedent(CHECKS))
    (root / "samples").mkdir()
    (root / "samples" / "correct.ipynb").write_text("{}")
    data = tmp_path / "instructor" / "datasets"
    data.mkdir(parents=True)
    (data / "train.h5").write_bytes(b"train" * 100)
    (data / "test.h5").write_bytes(b"test" * 100)
    weights = tmp_path / "instructor" / "weights.h5"
    weights.write_bytes(b"weights" * 100)
    return {"exercise": root, "data": data, "weights": weights, "tmp": tmp_path}


def settings_hash(exercise: Exercise | Path, data: Path, weights: Path, **options) -> str:
    if isinstance(exercise, Path):
        exercise = load_exercise(str(exercise))
    return build_settings(exercise, data=data, data_files={"weights": weights}, device="cpu",
                          **{"sandbox": "none", **options}).hash


def test_the_same_settings_hash_the_same(world):
    one = settings_hash(world["exercise"], world["data"], world["weights"])
    assert one == settings_hash(world["exercise"], world["data"], world["weights"])
    assert len(one) == 16 and int(one, 16) >= 0


def test_a_changed_byte_of_the_data_folder_changes_it(world):
    before = settings_hash(world["exercise"], world["data"], world["weights"])
    (world["data"] / "test.h5").write_bytes(b"test" * 99 + b"tesT")
    assert settings_hash(world["exercise"], world["data"], world["weights"]) != before


def test_a_file_added_to_or_renamed_in_the_data_folder_changes_it(world):
    """The notebook reads the folder's files by name: a renamed one is other data."""
    before = settings_hash(world["exercise"], world["data"], world["weights"])
    (world["data"] / "test.h5").rename(world["data"] / "test_signs.h5")
    renamed = settings_hash(world["exercise"], world["data"], world["weights"])
    (world["data"] / "extra.h5").write_bytes(b"x")
    assert len({before, renamed, settings_hash(world["exercise"], world["data"], world["weights"])}) == 3


def test_a_changed_data_file_changes_it(world):
    before = settings_hash(world["exercise"], world["data"], world["weights"])
    world["weights"].write_bytes(b"weights" * 99 + b"weightZ")
    assert settings_hash(world["exercise"], world["data"], world["weights"]) != before


def test_times_and_places_do_not_change_it(world):
    """Touched files, and a copy of the same data elsewhere (another machine's paths, a CI shard):
    the same settings, so nothing is regraded."""
    before = settings_hash(world["exercise"], world["data"], world["weights"])
    for path in [*world["data"].iterdir(), world["weights"]]:
        os.utime(path, (1_000_000_000, 1_000_000_000))
    assert settings_hash(world["exercise"], world["data"], world["weights"]) == before
    elsewhere = world["tmp"] / "copy" / "deeper"
    shutil.copytree(world["data"], elsewhere / "datasets")
    shutil.copy2(world["weights"], elsewhere / "weights.h5")
    assert settings_hash(world["exercise"], elsewhere / "datasets", elsewhere / "weights.h5") == before
    shutil.copytree(world["exercise"], world["tmp"] / "moved" / "reads_data")
    assert settings_hash(world["tmp"] / "moved" / "reads_data", world["data"], world["weights"]) == before


def test_the_name_of_the_instructors_copy_of_a_data_file_does_not_change_it(world):
    """`--weights my_copy.h5` or `--weights weights.h5`: the kernel finds the file under the
    spec's place names either way, so the same bytes are the same settings."""
    before = settings_hash(world["exercise"], world["data"], world["weights"])
    renamed = world["weights"].with_name("mobilenet_v2_my_copy.h5")
    world["weights"].rename(renamed)
    assert settings_hash(world["exercise"], world["data"], renamed) == before


def test_the_exercises_files_change_it_but_not_its_samples(world):
    before = settings_hash(world["exercise"], world["data"], world["weights"])
    (world["exercise"] / "samples" / "wrong.ipynb").write_text("{}")
    assert settings_hash(world["exercise"], world["data"], world["weights"]) == before
    with (world["exercise"] / "checks.py").open("a") as f:
        f.write("\n# a changed check\n")
    assert settings_hash(world["exercise"], world["data"], world["weights"]) != before


def test_limits_and_the_sandbox_change_it(world):
    exercise = load_exercise(str(world["exercise"]))
    base = settings_hash(exercise, world["data"], world["weights"])
    longer = settings_hash(exercise, world["data"], world["weights"],
                           limits=exercise.limits.replace(cell_timeout=exercise.limits.cell_timeout + 1))
    sandboxed = settings_hash(exercise, world["data"], world["weights"], sandbox="bwrap")
    assert len({base, longer, sandboxed}) == 3
    same = settings_hash(exercise, world["data"], world["weights"],
                         limits=exercise.limits.replace(cell_timeout=float(exercise.limits.cell_timeout)))
    assert same == base  # 60 and 60.0: one setting
