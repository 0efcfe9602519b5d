"""grader/examples_cache.py: property checks' drawn inputs kept on disk and read back exactly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import strategies as st

from grader.boundary import KerasInitializer
from grader.checks import Case, Context, agrees_with_reference, draw_examples, small_arrays
from grader.examples_cache import (ExamplesCache, Uncacheable, decode_examples, encode_examples,
                                   examples_prefix)
from grader.spec import Tolerance, load_exercise


def same(a: Any, b: Any) -> bool:
    """Equal in value, type, dtype, shape and memory layout, all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Case):
        return same(a.args, b.args) and same(dict(a.kwargs), dict(b.kwargs)) and same(a.names, b.names)
    if isinstance(a, np.ndarray):
        return (a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
                and a.flags.c_contiguous == b.flags.c_contiguous and b.flags.writeable)
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    if isinstance(a, KerasInitializer):
        return a.class_name == b.class_name and same(a.config, b.config)
    return a == b


def round_trip(examples: list) -> list:
    return decode_examples(encode_examples(examples))


def test_every_kind_of_value_comes_back_with_its_type():
    case = Case((np.arange(6, dtype=np.float32).reshape(2, 3), np.zeros((0, 4)), np.array([True, False]),
                 np.array(3 + 4j), np.int64(7), np.float32(-0.0), 2, 2.0, -0.0, float("nan"), float("inf"),
                 True, None, "max", (1, 2), [1, 2], {"stride": 1, "pad": 2}, (), [[]], {},
                 KerasInitializer("RandomUniform", {"minval": -0.5, "seed": 3})),
                {"mode": "average", "shape": (2, 2)}, names=("A", "B"))
    back = round_trip([case])
    assert len(back) == 1 and same(case, back[0])
    assert type(back[0].args[5]) is np.float32 and type(back[0].args[7]) is float and type(back[0].args[6]) is int
    assert type(back[0].args[14]) is tuple and type(back[0].args[15]) is list


@pytest.mark.parametrize("value", [object(), np.array([object()], dtype=object), np.arange(6).reshape(2, 3).T,
                                   {1.5j}, b"bytes"])
def test_what_the_codec_does_not_know_is_not_kept(value):
    with pytest.raises(Uncacheable):
        encode_examples([Case((value,))])


@pytest.mark.parametrize("name", ["conv_step_by_step", "cnn_arithmetic"])
def test_each_exercises_drawn_examples_come_back_exactly(name):
    """The examples of the exercise's strategies are read back exactly as drawn (those holding
    a type of the exercise's own, e.g. cnn_arithmetic's InputShape, are not kept: drawn each time)."""
    module = load_exercise(name).checks
    strategies = [getattr(module, attr)() for attr in dir(module) if attr.endswith("_cases")
                  and callable(getattr(module, attr))]
    kept = 0
    for strategy in strategies:
        drawn = draw_examples(strategy, 10)
        try:
            back = round_trip(drawn)
        except Uncacheable:
            continue
        kept += 1
        assert drawn and all(same(a, b) for a, b in zip(drawn, back, strict=True)), repr(strategy)
    assert kept >= 3


def counting(strategy: st.SearchStrategy, count: int) -> tuple[list[int], Any]:
    calls = [0]

    def draw() -> list:
        calls[0] += 1
        return draw_examples(strategy, count)
    return calls, draw


STRATEGY = st.builds(lambda n, x: Case((n, np.full((2, 2), x)), names=("n", "x")), st.integers(0, 9), st.floats(-2, 2))


def test_drawn_once_then_read_back_by_another_process_s_cache(tmp_path):
    calls, draw = counting(STRATEGY, 8)
    first = ExamplesCache(tmp_path, "prefix").scoped("item: aspect").drawn(STRATEGY, 8, draw)
    again = ExamplesCache(tmp_path, "prefix").scoped("item: aspect").drawn(STRATEGY, 8, draw)  # as a new process would
    assert calls == [1] and len(first) == 8
    assert all(same(a, b) for a, b in zip(first, again, strict=True))
    assert [p.suffix for p in tmp_path.iterdir()] == [".json"]


@pytest.mark.parametrize("change", ["prefix", "count", "strategy", "scope"])
def test_anything_in_the_key_changed_draws_again(tmp_path, change):
    other = st.builds(lambda n: Case((n,), names=("n",)), st.integers(0, 9))
    calls, draw = counting(STRATEGY, 8)
    ExamplesCache(tmp_path, "prefix").scoped("item: aspect").drawn(STRATEGY, 8, draw)
    prefix, count, strategy, scope = {"prefix": ("other", 8, STRATEGY, "item: aspect"),
                                      "count": ("prefix", 9, STRATEGY, "item: aspect"),
                                      "strategy": ("prefix", 8, other, "item: aspect"),
                                      "scope": ("prefix", 8, STRATEGY, "item: other aspect")}[change]
    calls2, draw2 = counting(strategy, count)
    ExamplesCache(tmp_path, prefix).scoped(scope).drawn(strategy, count, draw2)
    assert calls2 == [1] and len(list(tmp_path.iterdir())) == 2


def test_the_prefix_holds_the_exercise_files_version_grader_and_libraries():
    import hypothesis

    base = examples_prefix("files1", "2021", "grader1")
    assert len({base, examples_prefix("files2", "2021", "grader1"), examples_prefix("files1", "2024", "grader1"),
                examples_prefix("files1", "2021", "grader2")}) == 4
    assert hypothesis.__version__ in base and np.__version__ in base


@pytest.mark.parametrize("garbage", [b"", b"{", b"[1]", b'[{"args": {"tuple": []}}]', json.dumps(
    [{"args": {"tuple": [{"array": ["|O", [1], "AAAA"]}]}, "kwargs": {"dict": []}, "names": {"tuple": []}}]).encode()])
def test_a_file_that_does_not_decode_is_drawn_again_and_replaced(tmp_path, garbage):
    calls, draw = counting(STRATEGY, 5)
    cache = ExamplesCache(tmp_path, "prefix").scoped("item: aspect")
    path = tmp_path / f"{cache.key(STRATEGY, 5)}.json"
    path.write_bytes(garbage)
    drawn = cache.drawn(STRATEGY, 5, draw)
    assert calls == [1] and all(same(a, b) for a, b in zip(drawn, decode_examples(path.read_bytes()), strict=True))


def test_examples_that_cannot_be_kept_are_drawn_each_time(tmp_path):
    odd = st.builds(lambda n: Case((object(),)), st.integers(0, 3))
    calls, draw = counting(odd, 3)
    ExamplesCache(tmp_path, "p").scoped("i: a").drawn(odd, 3, draw)
    ExamplesCache(tmp_path, "p").scoped("i: a").drawn(odd, 3, draw)
    assert calls == [2] and list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_still_gives_the_examples(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    calls, draw = counting(STRATEGY, 4)
    assert len(ExamplesCache(blocked / "examples", "p").scoped("i: a").drawn(STRATEGY, 4, draw)) == 4


class Doubler:
    """A student whose function returns twice its input (wrong for the reference below)."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def call(self, function: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        return args[1] * self.factor

    def call_many(self, function: str, calls: list) -> list:  # as the kernel: all examples in one round trip
        return [self.call(function, args, kwargs) for args, kwargs in calls]


def test_a_check_with_kept_examples_gives_the_same_verdict_and_feedback(tmp_path):
    """The check that reads its examples back behaves as the one that drew them: the same pass,
    and the same shrunk counterexample for a wrong function."""
    check = agrees_with_reference("double", lambda n, x: x * 2, STRATEGY)
    outcomes = []
    for _ in range(2):  # first: drawn and kept; second: a fresh check (process) reading them back
        check = agrees_with_reference("double", lambda n, x: x * 2, STRATEGY)
        ctx = Context(Tolerance(1e-7, 1e-9), 10, examples=ExamplesCache(tmp_path, "p").scoped("double: random"))
        check(Doubler(2.0), ctx)  # passes
        with pytest.raises(AssertionError) as failed:
            check(Doubler(3.0), ctx)
        outcomes.append(str(failed.value))
    assert outcomes[0] == outcomes[1] and "n = 0" in outcomes[0]
    assert sorted(p.name.split(".", 1)[1] for p in tmp_path.iterdir()) == ["json", "routes.json", "routes.lock"]


def test_unscoped_nothing_is_kept(tmp_path):
    """Only the runner's per-check scopes keep examples (a check run outside it draws)."""
    calls, draw = counting(STRATEGY, 4)
    ExamplesCache(tmp_path, "p").drawn(STRATEGY, 4, draw)
    ExamplesCache(tmp_path, "p").drawn(STRATEGY, 4, draw)
    assert calls == [2] and list(tmp_path.iterdir()) == []


def windows(side: int) -> st.SearchStrategy[Case]:
    """Max-pool windows of one size: a factory, so both sizes' strategies print the same."""
    return small_arrays((side, side), unique=True).map(lambda x: Case((x,), names=("x",)))


class TopLeftMask:
    """create_mask_from_window right on 2x2 windows only (it looks at the top-left 2x2)."""

    def defined(self, names):
        return set(names)

    def call(self, function: str, args: tuple = (), kwargs: dict | None = None) -> Any:
        x = args[0]
        return x == x[:2, :2].max()

    def call_many(self, function: str, calls: list) -> list:  # as the kernel: all examples in one round trip
        return [self.call(function, args, kwargs) for args, kwargs in calls]


def test_checks_whose_strategies_print_alike_keep_their_own_examples(tmp_path, monkeypatch):
    """A red-team finding: keyed by the strategy's repr, a 3x3-window check was served the
    2x2 check's examples (or the other way round, depending on which submission drew first).
    Through the runner, each check keeps its own: the 3x3 check fails a mask right on 2x2 windows
    only, in the process that drew them and in a later one reading them back."""
    import nbformat
    from types import SimpleNamespace

    from grader import spec
    from grader.checks import Check
    from grader.grading import _grade_item, examples_cache_for
    from grader.spec import Item

    assert repr(windows(2)) == repr(windows(3))
    mask = lambda x: x == x.max()  # noqa: E731
    monkeypatch.setattr(spec, "DATA_CACHE", tmp_path)
    settings = SimpleNamespace(exercise_digest="d")
    item = Item("create_mask_from_window", 10)
    verdicts = []
    for order in ([2, 3], [3, 2], [2, 3]):  # the last: read back, in either order
        checks = {item.name: [Check(f"{n}x{n} windows", agrees_with_reference("create_mask_from_window", mask,
                                                                              windows(n), output="mask"))
                              for n in order]}
        exercise = SimpleNamespace(name="ex", version="", checks=SimpleNamespace(CHECKS=checks),
                                   item_checks=checks.__getitem__)
        ctx = Context(Tolerance(1e-7, 1e-9), 10, examples=examples_cache_for(exercise, settings))
        tests = _grade_item(item, exercise, TopLeftMask(), SimpleNamespace(cells=[], skipped=[]),
                            nbformat.v4.new_notebook(), ctx)
        verdicts.append({t.name: t.status for t in tests})
    expected = {"create_mask_from_window: 2x2 windows": "passed", "create_mask_from_window: 3x3 windows": "failed"}
    assert verdicts == [expected] * 3
