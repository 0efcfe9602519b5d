"""Every bundled sample grades as its samples/expected.toml says, for every exercise.

Each exercise's samples are graded once, as a batch on every core (the way instructors grade),
and each sample's verdict is its own test.
"""

from __future__ import annotations

import tomllib

import pytest

from grader import spec
from grader.batch import discover, run_batch
from grader.spec import SpecError, demo_samples
from grader.gradebook import Gradebook

CASES = [
    (name, sample)
    for name in spec.available()
    for sample in sorted((spec.EXERCISES_DIR / name / "samples").glob("*.ipynb"))
]


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """exercise name -> {sample stem: result}, each exercise's samples graded in one batch."""
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            exercise = spec.load_exercise(name)
            jobs = discover(sorted(exercise.samples.glob("*.ipynb")))
            with Gradebook(tmp_path_factory.mktemp(name) / "grades.sqlite") as book:
                results = run_batch(exercise, jobs, book, force=True)
            cache[name] = {job.path.stem: result for job, result in zip(jobs, results)}
        return cache[name]
    return get


@pytest.mark.slow
@pytest.mark.parametrize("exercise_name, sample", [
    pytest.param(n, s, id=f"{n}/{s.stem}", marks=pytest.mark.xdist_group(f"samples-{n}")) for n, s in CASES])
def test_sample_grades_as_expected(exercise_name, sample, graded):
    exercise = spec.load_exercise(exercise_name)
    expected = tomllib.loads((exercise.samples / "expected.toml").read_text())[sample.stem]
    result = graded(exercise_name)[sample.stem]
    if expected.get("status") == "ungradable":
        assert result.status == "ungradable" and result.error
        assert result.score == 0 and result.tests == []
        return
    assert result.status == "graded", result.error
    failed_items = {t.item for t in result.tests if t.status != "passed"}  # failed, error or skipped
    assert failed_items == set(expected["failed"]), "\n".join(t.output for t in result.tests if t.output)
    assert result.max_score == exercise.max_score
    assert result.score == pytest.approx(sum(t.score for t in result.tests))
    cells = {i.name: i.needs for i in exercise.items if i.needs}  # items graded from a cell's globals
    outcomes = {t.name: t.status for t in result.tests}
    for t in result.tests:
        if t.status == "failed":  # every failure teaches: what, expected vs got, on which input
            assert t.score == 0 and t.output
            item = t.item
            named = any(n in t.output for n in cells[item]) if item in cells else "on input" in t.output
            assert named or "not defined" in t.output, t.output
        elif t.status == "skipped":  # names the check it needs, which did not pass
            assert t.score == 0 and t.output.startswith("not checked because "), t.output
            assert any(t.output.startswith(f"not checked because {name} ") and status != "passed"
                       for name, status in outcomes.items()), t.output
        elif t.status == "error":
            assert t.score == 0 and t.output.startswith("this check could not be run: "), t.output


def test_every_sample_has_an_expected_verdict():
    for name in spec.available():
        exercise = spec.load_exercise(name)
        expected = tomllib.loads((exercise.samples / "expected.toml").read_text())
        stems = {p.stem for p in exercise.samples.glob("*.ipynb")}
        assert stems == set(expected), f"{name}: samples and expected.toml disagree"
        items = {i.name for i in exercise.items}
        for verdict in expected.values():
            assert set(verdict.get("failed", [])) <= items


def test_each_exercises_demo_grades_a_correct_notebook_and_a_mistake_in_every_item():
    """`make demo` grades the samples marked demo = true: a first run's worth that still shows
    every graded item failing on a mistake, and a notebook that passes."""
    for name in spec.available():
        exercise = spec.load_exercise(name)
        expected = tomllib.loads((exercise.samples / "expected.toml").read_text())
        chosen = demo_samples(name)
        assert chosen and all(p.parent == exercise.samples for p in chosen)
        verdicts = [expected[p.stem] for p in chosen]
        assert any(v.get("failed") == [] and "status" not in v for v in verdicts), f"{name}: no correct sample"
        failed = {item for v in verdicts for item in v.get("failed", [])}
        assert failed == {i.name for i in exercise.items}, f"{name}: the demo fails no sample on {failed ^ {i.name for i in exercise.items}}"


def test_demo_samples_are_the_marked_ones_or_all(tmp_path):
    samples = tmp_path / "ex" / "samples"
    samples.mkdir(parents=True)
    (tmp_path / "ex" / "spec.toml").write_text("")
    for stem in ("a", "b", "c"):
        (samples / f"{stem}.ipynb").write_text("{}")
    (samples / "expected.toml").write_text("[a]\nfailed = []\n[b]\nfailed = []\n[c]\nfailed = []\n")
    assert [p.name for p in demo_samples("ex", tmp_path)] == ["a.ipynb", "b.ipynb", "c.ipynb"]
    (samples / "expected.toml").write_text("[a]\ndemo = true\n[b]\ndemo = false\n[c]\nfailed = []\n")
    assert [p.name for p in demo_samples("ex", tmp_path)] == ["a.ipynb"]
    (samples / "expected.toml").write_text("[a]\ndemo = \"yes\"\n")
    with pytest.raises(SpecError, match="demo must be true or false"):
        demo_samples("ex", tmp_path)
