"""grader/shrink_routes.py: a kept shrink route changes how many round trips a failed property check
costs, never its verdict or the counterexample it reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from grader.checks import Case, Context, Failure, draw_examples
from grader.examples_cache import ExamplesCache
from grader.shrink_routes import Route, follow, newest_first

from .conftest import InProcessStudent
from .test_conv_step_by_step_checks import MUTANTS, REFERENCE
from .test_conv_step_by_step_checks import run_checks as feedback


# -- the pure parts ---------------------------------------------------------------------------------
def test_a_route_must_report_one_of_its_failing_steps():
    with pytest.raises(ValueError):
        Route((("a", False),), 0)
    with pytest.raises(ValueError):
        Route((("a", True),), 1)
    assert Route((("a", False), ("b", True)), 1).reported == 1


def run_follow(routes: list[Route], fails: Callable[[Any], bool], first: int = 2, ask_ok: bool = True,
               known: dict[Any, bool] | None = None):
    """follow() over a submission whose outcome on each case is fails(case) (`known`: those already
    answered); what it asked, per batch."""
    known = dict(known or {})
    asked: list[list[Any]] = []

    def ask(cases: list[Any]) -> bool:
        cases = [case for case in cases if case not in known]
        asked.append(cases)
        if ask_ok:
            known.update((case, fails(case)) for case in cases)
        return ask_ok

    return follow(routes, known.get, ask, first=first), asked


def test_follow_takes_the_route_that_matches_at_every_step():
    wrong = Route(((1, True), (2, True), (3, True)), 1)        # differs at its third step
    right = Route(((1, True), (2, True), (4, True)), 2)
    chosen, asked = run_follow([wrong, right], fails=lambda n: n in (1, 2, 4))
    assert chosen is right
    assert asked == [[1, 2], [3], [4]]  # each case asked once, in batches; 1 and 2 not asked again


def test_follow_stops_a_route_at_the_batch_where_it_differs():
    steps = tuple((n, True) for n in range(100))
    chosen, asked = run_follow([Route(steps, 99)], fails=lambda n: n != 5)
    assert chosen is None
    assert sum(map(len, asked)) == 6    # batches of 2 and 4: the one holding step 5 is the last asked


def test_a_route_whose_answered_steps_differ_costs_no_round_trip():
    """The drawn examples' answers are known before any route is followed: a route recorded by
    another mistake, which failed elsewhere among them, is left without asking anything."""
    other = Route((("drawn0", False), ("drawn1", True), ("shrunk", True)), 2)
    chosen, asked = run_follow([other], fails=lambda n: True, known={"drawn0": True, "drawn1": True})
    assert chosen is None and asked == []


def test_follow_gives_up_when_the_answers_cannot_be_asked():
    chosen, asked = run_follow([Route(((1, True),), 0)], fails=lambda n: True, ask_ok=False)
    assert chosen is None and asked == [[1]]


def test_newest_first_keeps_one_copy_and_a_limit():
    a, b, c = (Route(((n, True),), 0) for n in "abc")
    same = lambda x, y: x.steps == y.steps  # noqa: E731
    assert newest_first(b, [a, b, c], same, limit=2) == [b, a]


# -- the property checks with routes kept ---------------------------------------------------------
class CountingStudent(InProcessStudent):
    """An in-process student with call_many, counting its round trips."""

    def __init__(self, functions, root):
        super().__init__(functions, root)
        self.trips = 0

    def call(self, function: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.trips += 1
        return super().call(function, args, kwargs)

    def call_many(self, function: str, calls: list) -> list:
        self.trips += 1
        return [super(CountingStudent, self).call(function, args, kwargs) for args, kwargs in calls]


# Mistakes of one function that shrink along different routes (and one that raises).
ROUTED = {"pool_forward": ["pool_forward-ignores-example-index", "pool_forward-average-divides-by-f",
                           "pool_forward-ignores-mode"],
          "zero_pad": ["zero_pad-pads-channels-too", "zero_pad-wrong-pad-on-width", "raises"]}


@pytest.mark.slow
@pytest.mark.parametrize("item", sorted(ROUTED))
def test_kept_routes_give_every_mistake_the_feedback_hypothesis_gives(item, conv_exercise, tmp_path):
    """Each mistake graded without routes, then all of them twice in turn with routes kept in one
    cache (so each is graded beside the others' routes, then along its own): the same feedback,
    word for word, every time; and along its own route a failed check costs a few round trips."""
    functions = {p.id: p.values[1] for p in MUTANTS if p.id in ROUTED[item]}
    plain = Context(conv_exercise.tolerance, conv_exercise.max_examples)
    truth = {name: feedback(CountingStudent({**REFERENCE, item: f}, tmp_path), conv_exercise, plain, item)
             for name, f in functions.items()}
    kept = Context(conv_exercise.tolerance, conv_exercise.max_examples,
                   examples=ExamplesCache(tmp_path / "cache", "prefix"))
    trips: dict[str, list[int]] = {name: [] for name in functions}
    for _ in range(2):
        for name, f in functions.items():
            student = CountingStudent({**REFERENCE, item: f}, tmp_path)
            assert feedback(student, conv_exercise, kept, item) == truth[name], name
            trips[name].append(student.trips)
    assert any(path.name.endswith(".routes.json") for path in (tmp_path / "cache").iterdir())
    for name, (first, second) in trips.items():  # per check: one batch; per failure: its route's batches
        failing = sum(message is not None for message in truth[name].values())
        assert second <= len(truth[name]) + 10 * failing, (name, first, second)
    assert sum(first for first, _ in trips.values()) > 2 * sum(second for _, second in trips.values()), trips


@pytest.mark.slow
def test_a_function_that_keeps_state_is_told_so_along_a_kept_route(conv_exercise, tmp_path):
    """A student whose wrong answers change from call to call (a call counter) but fail and pass
    where a kept route's mistake did: the route matches, and the input it reports, asked once more,
    is answered differently: "returns different results", as the check says without routes."""
    mistake = dict((p.id, p.values[1]) for p in MUTANTS)["pool_forward-average-divides-by-f"]
    calls = iter(range(10**6))

    def drifting(A, hp, mode="max"):
        A_out, cache = mistake(A, hp, mode)
        right = REFERENCE["pool_forward"](A, hp, mode)[0]
        return (A_out if (A_out == right).all() else A_out + next(calls)), cache

    kept = Context(conv_exercise.tolerance, conv_exercise.max_examples,
                   examples=ExamplesCache(tmp_path / "cache", "prefix"))
    plain = Context(conv_exercise.tolerance, conv_exercise.max_examples)
    feedback(CountingStudent({**REFERENCE, "pool_forward": mistake}, tmp_path), conv_exercise, kept, "pool_forward")
    trips = []
    for ctx in (kept, plain):
        student = CountingStudent({**REFERENCE, "pool_forward": drifting}, tmp_path)
        said = feedback(student, conv_exercise, ctx, "pool_forward")
        assert "pool_forward returns different results for the same input" in said["random inputs"], said
        trips.append(student.trips)
    assert trips[0] * 3 < trips[1], trips  # with the route kept, it was followed (not hypothesis' walk)


def test_the_answers_kept_to_match_routes_are_bounded(monkeypatch, conv_exercise, tmp_path):
    """A student whose answers are huge cannot make a check keep them all: past KNOWN_BYTES its
    route's steps stay unknown (hypothesis walks instead), and the feedback is the same."""
    import grader.checks as checks

    mistake = dict((p.id, p.values[1]) for p in MUTANTS)["zero_pad-wrong-pad-on-width"]
    kept = Context(conv_exercise.tolerance, conv_exercise.max_examples,
                   examples=ExamplesCache(tmp_path / "cache", "prefix"))
    truth = feedback(CountingStudent({**REFERENCE, "zero_pad": mistake}, tmp_path), conv_exercise, kept, "zero_pad")
    monkeypatch.setattr(checks, "KNOWN_BYTES", 0)
    student = CountingStudent({**REFERENCE, "zero_pad": mistake}, tmp_path)
    assert feedback(student, conv_exercise, kept, "zero_pad") == truth
    monkeypatch.setattr(checks, "KNOWN_BYTES", 32 * 2**20)
    followed = CountingStudent({**REFERENCE, "zero_pad": mistake}, tmp_path)
    assert feedback(followed, conv_exercise, kept, "zero_pad") == truth
    assert followed.trips < student.trips   # with room to keep them, the route is followed


# -- what the data cache holds is checked before it is followed -----------------------------------
def _routes_file(folder) -> Any:
    files = [p for p in folder.iterdir() if p.name.endswith(".routes.json")]
    assert len(files) == 1, files
    return files[0]


WIDTH = dict((p.id, p.values[1]) for p in MUTANTS)["zero_pad-wrong-pad-on-width"]


def _zero_pad_random(exercise) -> Any:
    return next(c for c in exercise.checks.CHECKS["zero_pad"] if c.aspect == "random inputs")


def _graded(exercise, folder, tmp_path, function=WIDTH) -> tuple[str, int]:
    student = CountingStudent({**REFERENCE, "zero_pad": function}, tmp_path)
    ctx = Context(exercise.tolerance, exercise.max_examples,
                  examples=ExamplesCache(folder, "prefix").scoped("zero_pad: random inputs"))
    with pytest.raises(Failure) as failure:
        _zero_pad_random(exercise).run(student, ctx)
    return str(failure.value), student.trips


@pytest.mark.parametrize("damage", ["routes cut short, digest kept", "one byte changed"])
def test_a_routes_file_changed_since_it_was_written_is_not_followed(damage, conv_exercise, tmp_path):
    import json

    truth, walked = _graded(conv_exercise, tmp_path / "c", tmp_path)
    path = _routes_file(tmp_path / "c")
    doc = json.loads(path.read_bytes())
    if damage == "routes cut short, digest kept":
        routes = json.loads(doc["routes"])
        failing = next(i for i, step in enumerate(routes[0]["steps"]) if step[2])
        routes[0]["steps"], routes[0]["reported"] = routes[0]["steps"][:failing + 1], failing
        doc["routes"] = json.dumps(routes)
        path.write_text(json.dumps(doc))
    else:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    said, trips = _graded(conv_exercise, tmp_path / "c", tmp_path)
    assert said == truth
    assert trips == walked  # hypothesis walked again: the damaged file was not read


def test_a_kept_input_the_reference_cannot_take_makes_hypothesis_walk(conv_exercise, tmp_path):
    """A route (with a right digest) whose step the reference raises on: the check does not error;
    hypothesis walks, and the feedback is its own."""
    from grader.examples_cache import encode_routes

    def lenient(X, pad):  # the mistake, and an answer where the reference raises (pad < 0)
        return X if pad < 0 else WIDTH(X, pad)

    truth, walked = _graded(conv_exercise, tmp_path / "c", tmp_path, lenient)
    path = _routes_file(tmp_path / "c")
    bad = Case((np.zeros((1, 1, 1, 1)), -1), names=("X", "pad"))
    drawn = draw_examples(conv_exercise.checks.zero_pad_cases(), conv_exercise.max_examples)
    path.write_bytes(encode_routes([Route(((bad, True),), 0)], drawn, path.name.split(".")[0]))
    said, trips = _graded(conv_exercise, tmp_path / "c", tmp_path, lenient)
    assert said == truth
    assert trips == walked + 1  # the route's one batch, then hypothesis' walk


def test_a_fifo_in_place_of_the_routes_file_is_not_waited_on(conv_exercise, tmp_path):
    import os
    import threading

    _graded(conv_exercise, tmp_path / "c", tmp_path)
    path = _routes_file(tmp_path / "c")
    path.unlink()
    os.mkfifo(path)
    done: list[str] = []
    worker = threading.Thread(target=lambda: done.append(_graded(conv_exercise, tmp_path / "c", tmp_path)[0]),
                              daemon=True)
    worker.start()
    worker.join(60)
    assert done, "grading waited on the FIFO"


def test_a_walk_as_long_as_hypothesis_shrinking_clock_is_not_kept(monkeypatch, conv_exercise, tmp_path):
    """hypothesis stops shrinking after its clock: such a walk ends where the clock stopped it, not
    where this student's answers lead, so it must not be handed to the next student."""
    import grader.shrink_routes as shrink_routes

    monkeypatch.setattr(shrink_routes, "SHRINK_CLOCK", 0.0)
    _graded(conv_exercise, tmp_path / "c", tmp_path)
    assert not list((tmp_path / "c").glob("*.routes.json"))


def test_routes_are_not_read_beside_other_drawn_examples(tmp_path):
    """Routes name drawn examples by index: read beside drawn examples other than those they were
    kept with (the examples file changed), they are not read."""
    strategy = object()
    drawn = [Case((np.zeros(2), 0), names=("x", "n")), Case((np.ones(2), 1), names=("x", "n"))]
    route = Route(((drawn[0], False), (drawn[1], True)), 1)
    cache = ExamplesCache(tmp_path, "p").scoped("i: a")
    cache.keep_routes(strategy, 2, [route], drawn)
    assert [r.reported for r in cache.routes(strategy, 2, drawn)] == [1]
    changed = [drawn[0], Case((np.full(2, 7.0), 1), names=("x", "n"))]
    assert cache.routes(strategy, 2, changed) == []


def test_a_slow_function_is_not_asked_a_routes_inputs(monkeypatch, conv_exercise, tmp_path):
    """Route batches are asked only while quick (ROUTE_BATCH_SECONDS at the pace of the latest
    batch): time is the student's, and a slow function's walk would not ask them all."""
    import grader.checks as checks

    truth, walked = _graded(conv_exercise, tmp_path / "c", tmp_path)
    monkeypatch.setattr(checks, "ROUTE_BATCH_SECONDS", 0.0)
    said, trips = _graded(conv_exercise, tmp_path / "c", tmp_path)
    assert said == truth and trips == walked   # no route batch: hypothesis walked
    monkeypatch.setattr(checks, "ROUTE_BATCH_SECONDS", 2.0)
    said, trips = _graded(conv_exercise, tmp_path / "c", tmp_path)
    assert said == truth and trips < walked


def test_kept_answers_are_counted_with_their_containers_and_keys():
    from grader.checks import _answer_bytes

    assert _answer_bytes([[]] * 1000) >= 64 * 1000
    assert _answer_bytes({"k" * 10_000: 0}) >= 10_000


def test_a_route_another_process_kept_during_a_walk_is_kept_too(tmp_path):
    """Two grading processes walk different mistakes of one check at once: the one that ends last
    keeps its route before the other's, read again when it keeps it (not as it was when its walk
    began: that lost the first route, and the next student with that mistake walked again)."""
    from grader.checks import _same_route

    strategy = object()
    drawn = [Case((np.zeros(2), 0), names=("x", "n")), Case((np.ones(2), 1), names=("x", "n"))]
    first, second = Route(((drawn[0], True),), 0), Route(((drawn[1], True),), 0)
    one, other = (ExamplesCache(tmp_path, "p").scoped("i: a") for _ in range(2))
    assert one.routes(strategy, 2, drawn) == []            # `one` begins its walk: nothing kept
    other.add_route(strategy, 2, first, drawn, _same_route)  # meanwhile `other` ends its walk
    one.add_route(strategy, 2, second, drawn, _same_route)
    kept = one.routes(strategy, 2, drawn)
    assert [r.steps[0][0].args[1] for r in kept] == [1, 0]   # the newest first, both kept
    one.add_route(strategy, 2, first, drawn, _same_route)    # taken again: first again, one copy
    assert [r.steps[0][0].args[1] for r in one.routes(strategy, 2, drawn)] == [0, 1]
    assert list(tmp_path.glob("*.routes.lock"))               # the lock file sits beside the routes
