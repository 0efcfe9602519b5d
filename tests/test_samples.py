"""Every bundled sample grades as its samples/expected.toml says, for every exercise."""

from __future__ import annotations

import tomllib

import pytest

from grader import spec
from grader.grading import grade_submission

CASES = [
    (name, sample)
    for name in spec.available()
    for sample in sorted((spec.EXERCISES_DIR / name / "samples").glob("*.ipynb"))
]


@pytest.mark.slow
@pytest.mark.parametrize("exercise_name, sample", CASES, ids=[f"{n}/{s.stem}" for n, s in CASES])
def test_sample_grades_as_expected(exercise_name, sample):
    exercise = spec.load_exercise(exercise_name)
    expected = tomllib.loads((exercise.samples / "expected.toml").read_text())[sample.stem]
    result = grade_submission(sample, exercise)
    if expected.get("status") == "ungradable":
        assert result.status == "ungradable" and result.error
        assert result.score == 0 and result.tests == []
        return
    assert result.status == "graded", result.error
    failed_items = {t.name.split(":")[0] for t in result.tests if t.status == "failed"}
    assert failed_items == set(expected["failed"]), "\n".join(t.output for t in result.tests if t.output)
    assert result.max_score == exercise.max_score
    assert result.score == pytest.approx(sum(t.score for t in result.tests))
    for t in result.tests:
        if t.status == "failed":  # every failure teaches: what, expected vs got, on which input
            assert t.score == 0 and t.output
            assert "on input" in t.output or "not defined" in t.output, t.output


def test_every_sample_has_an_expected_verdict():
    for name in spec.available():
        exercise = spec.load_exercise(name)
        expected = tomllib.loads((exercise.samples / "expected.toml").read_text())
        stems = {p.stem for p in exercise.samples.glob("*.ipynb")}
        assert stems == set(expected), f"{name}: samples and expected.toml disagree"
        items = {i.name for i in exercise.items}
        for verdict in expected.values():
            assert set(verdict.get("failed", [])) <= items
