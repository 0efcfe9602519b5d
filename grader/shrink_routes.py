"""Shrink routes: a failed property check's shrinking, replayed for the next submission that fails alike.

hypothesis shrinks a failure by trying smaller inputs one after another; which input it tries
next depends only on whether the earlier ones failed (same seed, settings and strategy: the
property checks' PROPERTY_SEED), as long as its shrinking clock (SHRINK_CLOCK) does not stop it.
A route is that sequence as one grading saw it: every input the check tried, in order, whether
it failed, and which one was reported. For a later submission, if its answers fail and pass at
exactly the same steps, hypothesis would walk exactly that route and report the same input: so
the route's inputs are asked in a few batches (one kernel round trip each, instead of one per
input, and no hypothesis run), every step's outcome is compared, and only a route that matches
at every step is taken. The first step that differs ends the route; the check then runs
hypothesis as it would without routes, asking every input anew.

A route never decides a verdict by itself, and for a function that answers each input the same
way it gives the example hypothesis would: each step is this submission's own answer, compared
here with the reference. Routes are kept in the data cache beside the drawn examples
(examples_cache.ExamplesCache.routes), under the same key (hypothesis, grader, exercise and
library versions): a route from another version is never read, nor one changed since it was
written (its digest), nor a walk hypothesis' clock may have cut short (never kept).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

# Kept per check: the newest routes first (a class has a few common mistakes per function).
ROUTES_PER_CHECK = 4
# No walk is longer (checks.SHRINK_CALL_BUDGET calls, the examples before the first failure, and
# hypothesis' replays): a longer route read from the cache is not read.
MAX_STEPS = 2048
# hypothesis stops shrinking after this many seconds (its MAX_SHRINKING_SECONDS): a walk that
# took that long may have been cut short by the clock, not by its outcomes, so it is not kept.
try:
    from hypothesis.internal.conjecture.engine import MAX_SHRINKING_SECONDS as SHRINK_CLOCK
except ImportError:  # pragma: no cover - another hypothesis: its default
    SHRINK_CLOCK = 300
# Inputs asked in the first batch of a route; each next batch is twice as large. A batch may
# run past the step where the route stops matching: at most that batch's inputs are asked in vain.
FIRST_BATCH = 16


@dataclass(frozen=True)
class Route:
    """The inputs one property check tried, in order, with whether each failed; `reported`: the
    index of the step whose input the check reported (hypothesis' minimal failing input)."""

    steps: tuple[tuple[Any, bool], ...]
    reported: int

    def __post_init__(self) -> None:
        if not 0 <= self.reported < len(self.steps) or not self.steps[self.reported][1]:
            raise ValueError("a route reports one of its failing steps")


def follow(routes: Sequence[Route], failed: Callable[[Any], bool | None],
           ask: Callable[[list[Any]], bool], first: int = FIRST_BATCH) -> Route | None:
    """The first of `routes` whose every step fails or passes as it did when it was recorded.

    failed(case): whether this submission fails on `case`, from answers already asked (None: not
    asked yet). ask(cases): ask those of `cases` not asked yet, in one round trip; False if that
    could not be done (then no route is followed further). A route's steps are checked in order;
    from the first one not yet answered, the next `first` steps are given to ask(), then twice
    as many each time. A route that differs at an answered step before any unanswered one
    (e.g. among the drawn examples, answered first) costs no round trip.
    """
    for route in routes:
        matched = _matches(route, failed, ask, first)
        if matched is None:
            return None
        if matched:
            return route
    return None


def _matches(route: Route, failed: Callable[[Any], bool | None], ask: Callable[[list[Any]], bool],
             first: int) -> bool | None:
    """Whether every step of `route` fails or passes as recorded (None: a batch could not be asked)."""
    steps, at, size = route.steps, 0, max(1, first)
    while at < len(steps):
        outcome = failed(steps[at][0])
        if outcome is None:
            if not ask([case for case, _ in steps[at:at + size]]):
                return None
            size *= 2
            outcome = failed(steps[at][0])
            if outcome is None:  # asked, but its answer is not kept (too large, or not gradable data)
                return False
        if outcome is not steps[at][1]:
            return False
        at += 1
    return True


def newest_first(route: Route, kept: Sequence[Route], same: Callable[[Route, Route], bool],
                 limit: int = ROUTES_PER_CHECK) -> list[Route]:
    """The routes to keep after `route` was walked: it first, then the others kept (not a
    second copy of it), at most `limit`."""
    return [route, *(r for r in kept if not same(r, route))][:limit]
