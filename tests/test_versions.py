"""#18: the published versions an exercise grades, recognised from the notebook's code and
recorded with the result (resnet50's 2024 version: BatchNormalization from the course's own
resnets_utils.py, docs/course_facts.md §4.1)."""

from __future__ import annotations

import json

import nbformat
import pytest

from grader import notebook
from grader.gradebook import Gradebook
from grader.grading import _prepare
from grader.gradebook import Provenance
from grader.html_report import feedback_html, feedback_markdown
from grader.report import feedback_text
from grader.results import SubmissionResult, TestResult, to_json
from grader.spec import SpecError, load_exercise

KERAS_IMPORT = ("from tensorflow.keras.layers import Input, Add, Dense, Activation, ZeroPadding2D, "
                "BatchNormalization, Flatten, Conv2D, AveragePooling2D, MaxPooling2D, GlobalMaxPooling2D")


@pytest.fixture(scope="module")
def resnet50():
    return load_exercise("resnet50")


def with_imports(exercise, imports: str) -> nbformat.NotebookNode:
    """The correct sample with its import cell's Keras layers import replaced by `imports`."""
    nb = nbformat.read(exercise.samples / "correct.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.get("id") == "imports")
    assert KERAS_IMPORT in cell.source
    cell.source = cell.source.replace(KERAS_IMPORT, imports)
    return nb


def version_of(exercise, nb) -> str:
    variant = notebook.graded_variant(nb, exercise.variants)
    return variant.name if variant is not None else exercise.version


@pytest.mark.parametrize("sample, version", [
    ("correct", "2021-2023"), ("correct_2023_api", "2021-2023"), ("legacy_keras_code", "2021-2023"),
    ("wrong_shortcut", "2021-2023"), ("correct_2024", "2024"), ("wrong_shortcut_2024", "2024"),
])
def test_the_samples_are_recognised_as_their_version(resnet50, sample, version):
    assert version_of(resnet50, notebook.load(resnet50.samples / f"{sample}.ipynb")) == version


@pytest.mark.parametrize("imports, version", [
    (KERAS_IMPORT.replace("BatchNormalization, ", ""), "2024"),
    # Keras's layer imported, in any of the ways a person writes it: the 2021-2023 version
    (KERAS_IMPORT.replace("import Input,", "import (Input,\n   ") + ")", "2021-2023"),
    ("from keras.layers import BatchNormalization\n" + KERAS_IMPORT.replace("BatchNormalization, ", ""),
     "2021-2023"),
    ("from tensorflow.keras.layers import *", "2021-2023"),
])
def test_the_2024_version_is_the_one_that_uses_the_course_layer_without_importing_keras_s(resnet50, imports, version):
    assert version_of(resnet50, with_imports(resnet50, imports)) == version


def test_a_layer_used_through_a_module_is_not_the_course_s(resnet50):
    nb = with_imports(resnet50, KERAS_IMPORT.replace("BatchNormalization, ", ""))
    for cell in nb.cells:
        cell.source = cell.source.replace("BatchNormalization(", "layers.BatchNormalization(")
    assert version_of(resnet50, nb) == "2021-2023"


def test_a_version_is_graded_with_its_own_helpers_and_checks(resnet50, tmp_path):
    variant = resnet50.variants[0]
    graded = resnet50.as_version(variant)
    assert graded.version == "2024" and graded.trusted_layers.allowlist() == {"BatchNormalization": "resnets_utils"}
    assert graded.item_checks("ResNet50") is resnet50.checks.VERSION_CHECKS["2024"]["ResNet50"]
    assert resnet50.item_checks("ResNet50") is resnet50.checks.CHECKS["ResNet50"]
    for exercise, defines in ((resnet50, False), (graded, True)):
        folder = tmp_path / exercise.version
        folder.mkdir()
        _prepare(folder, exercise, nbformat.v4.new_notebook(), None, {})
        utils = (folder / "work" / "resnets_utils.py").read_text()
        assert ("class BatchNormalization(Layer)" in utils) is defines
        assert "def load_dataset" in utils and (folder / "work" / "public_tests.py").is_file()


def test_a_variant_without_recognition_or_with_unknown_keys_is_refused(tmp_path):
    import shutil

    source = load_exercise("resnet50").root
    for n, (old, new, refused) in enumerate([('recognised_by = [', 'recognised = [', "unknown key recognised"),
                                             ('helpers = "helpers_2024"', 'helpers = "nowhere"', "no such folder"),
                                             ('module = "resnets_utils", ', '', "trusted_layers needs")]):
        root = tmp_path / str(n)
        shutil.copytree(source, root, ignore=shutil.ignore_patterns("samples"))
        spec = (root / "spec.toml").read_text()
        assert old in spec
        (root / "spec.toml").write_text(spec.replace(old, new, 1))
        with pytest.raises(SpecError, match=r"graded_variant\]\] 2024: .*" + refused):
            load_exercise(str(root))


def test_the_graded_version_is_recorded_and_shown(tmp_path, resnet50):
    result = SubmissionResult("alice.ipynb", "graded", 20.0, 30.0, None,
                              [TestResult("ResNet50: training", 0.0, 2.5, "failed", "out")], student="alice",
                              version="2024")
    assert to_json("resnet50", [result])["submissions"][0]["version"] == "2024"
    assert "  graded as: 2024" in feedback_text(result).splitlines()[:2]
    assert "graded as: 2024" in feedback_markdown(resnet50, result)
    assert "graded as: 2024" in feedback_html(resnet50, result)
    with Gradebook(tmp_path / "g.sqlite") as book:
        book.record("resnet50", result, Provenance("h", "s", "v"))
        assert book.results("resnet50")[0].version == "2024"
    assert "graded as" not in feedback_text(SubmissionResult("bob.ipynb", "graded", 30.0, 30.0))


def test_a_gradebook_written_before_versions_gets_the_column(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    with Gradebook(path) as book:
        book.record("ex", SubmissionResult("a.ipynb", "graded", 1.0, 2.0, student="a"), Provenance("h", "s", "v"))
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE submissions DROP COLUMN version")
    db.commit()
    db.close()
    with Gradebook(path) as book:
        assert book.results("ex")[0].version == ""
